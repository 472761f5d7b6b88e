// The lock-free ring behind the count-window trip strategies: the outcomes of the last N calls,
// one byte per call, with their totals kept in one packed atomic word.
// Invariant: the packed totals change only by the difference between the byte a slot held and
// the byte that replaced it (read with an exchange), so they always equal the sum of the slots
// once in-flight updates land, however threads interleave.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "window_tally.hpp"

namespace stockade::detail {

class count_ring {
 public:
  /// The largest window: a field holds 2^20 above its bias of 2^20 (21 bits), and the rest
  /// up to 2^20 is headroom for updates in flight.
  static constexpr std::size_t max_size = 1'000'000;

  explicit count_ring(std::size_t size)
      : size_(size), slots_(new std::atomic<std::uint8_t>[size]()) {}

  count_ring(const count_ring&) = delete;
  count_ring& operator=(const count_ring&) = delete;
  ~count_ring() = default;

  std::size_t size() const noexcept { return size_; }

  /// Records one call in the next slot. Returns true if the totals changed, with the totals
  /// right after the change in `after`.
  ///
  /// Why the position is advanced with a plain load and store rather than fetch_add: on the
  /// build machine a locked add costs 8 ns, more than the whole budget of a closed breaker.
  /// Two calls that finish at the same instant may then take the same slot (the later one
  /// wins) or the ring may step back a little: under contention the window is a sample of the
  /// most recent calls instead of exactly the last N. The totals stay exact for the slots'
  /// contents (see the invariant), and a single thread sees an exact window.
  bool record(bool failed, bool slow, window_tally& after) noexcept {
    const std::uint8_t value = encode(failed, slow);
    const std::size_t index = position_.load(std::memory_order_relaxed);
    const std::size_t next = index + 1 == size_ ? 0 : index + 1;
    position_.store(next, std::memory_order_relaxed);
    std::atomic<std::uint8_t>& slot = slots_[index];
    // Replacing an outcome by an equal one changes no total: the common case (a success
    // replacing a success) costs one load and no write to a shared slot.
    if (slot.load(std::memory_order_relaxed) == value) return false;
    return replace(slot, value, after);
  }

  /// The totals now (calls = filled slots).
  window_tally tally() const noexcept { return unpack(packed_.load(std::memory_order_relaxed)); }

  /// Empties every slot. Safe against concurrent record(): each slot is emptied with an
  /// exchange and the totals lose exactly what that slot held, slot by slot, so the totals
  /// never stray from the slots by more than one update per thread.
  void clear() noexcept {
    for (std::size_t i = 0; i < size_; ++i) {
      if (slots_[i].load(std::memory_order_relaxed) == empty) continue;
      const std::uint8_t old = slots_[i].exchange(empty, std::memory_order_relaxed);
      if (old != empty) packed_.fetch_add(difference(old, empty), std::memory_order_relaxed);
    }
  }

  /// Counts the slots one by one: for tests that check the packed totals never drift.
  window_tally recount() const noexcept {
    window_tally result;
    for (std::size_t i = 0; i < size_; ++i) {
      const std::uint8_t value = slots_[i].load(std::memory_order_relaxed);
      result.calls += (value & filled) != 0 ? 1U : 0U;
      result.failures += (value & failure) != 0 ? 1U : 0U;
      result.slow_calls += (value & slowness) != 0 ? 1U : 0U;
    }
    return result;
  }

 private:
  static constexpr std::uint8_t empty = 0;
  static constexpr std::uint8_t filled = 1;
  static constexpr std::uint8_t failure = 2;
  static constexpr std::uint8_t slowness = 4;

  // Three 21-bit fields (calls, failures, slow calls), each stored with a bias of 2^20: two
  // updates of one slot may land in either order, so a field can dip below its true value for
  // a moment; the bias keeps such a dip from borrowing from the next field.
  static constexpr unsigned field_bits = 21;
  static constexpr std::uint64_t field_mask = (std::uint64_t{1} << field_bits) - 1;
  static constexpr std::int64_t bias = std::int64_t{1} << (field_bits - 1);
  static constexpr std::uint64_t biased_zero =
      static_cast<std::uint64_t>(bias) | (static_cast<std::uint64_t>(bias) << field_bits) |
      (static_cast<std::uint64_t>(bias) << (2 * field_bits));

  // Out of line, so that record() stays small enough to inline into every call site.
  [[gnu::noinline]] bool replace(std::atomic<std::uint8_t>& slot, std::uint8_t value,
                                 window_tally& after) noexcept {
    const std::uint8_t old = slot.exchange(value, std::memory_order_relaxed);
    if (old == value) return false;
    const std::uint64_t change = difference(old, value);
    after = unpack(packed_.fetch_add(change, std::memory_order_relaxed) + change);
    return true;
  }

  static constexpr std::uint8_t encode(bool failed, bool slow) noexcept {
    return static_cast<std::uint8_t>(filled | (failed ? failure : 0U) | (slow ? slowness : 0U));
  }

  static constexpr std::int64_t bit(std::uint8_t value, std::uint8_t mask) noexcept {
    return (value & mask) != 0 ? 1 : 0;
  }

  /// What replacing `old` by `value` adds to the packed word (mod 2^64: fields may go down).
  static constexpr std::uint64_t difference(std::uint8_t old, std::uint8_t value) noexcept {
    const std::int64_t calls = bit(value, filled) - bit(old, filled);
    const std::int64_t failures = bit(value, failure) - bit(old, failure);
    const std::int64_t slow = bit(value, slowness) - bit(old, slowness);
    return static_cast<std::uint64_t>(calls) +
           (static_cast<std::uint64_t>(failures) << field_bits) +
           (static_cast<std::uint64_t>(slow) << (2 * field_bits));
  }

  static constexpr std::uint64_t field(std::uint64_t packed, unsigned index) noexcept {
    const std::int64_t value =
        static_cast<std::int64_t>((packed >> (index * field_bits)) & field_mask) - bias;
    return value < 0 ? 0 : static_cast<std::uint64_t>(value);  // a dip in flight reads as 0
  }

  /// The totals, clamped to what the slots can hold: while updates of one slot land out of
  /// order (one per thread at most), a field can stray by that much for a moment.
  window_tally unpack(std::uint64_t packed) const noexcept {
    const std::uint64_t calls = std::min<std::uint64_t>(field(packed, 0), size_);
    return {calls, std::min(field(packed, 1), calls), std::min(field(packed, 2), calls)};
  }

  // Written by every call: on a cache line of their own, away from the breaker's state word.
  alignas(64) std::atomic<std::size_t> position_{0};
  std::atomic<std::uint64_t> packed_{biased_zero};
  std::size_t size_;
  std::unique_ptr<std::atomic<std::uint8_t>[]> slots_;
};

}  // namespace stockade::detail
