// The bucketed time window behind the time-window trip strategies: the calls of the last
// `length`, in `buckets` slices, each counted with atomic adds.
// Invariant: a bucket's counts are zeroed before its new tick is published (release), and a
// recorder adds only after reading that tick (acquire), so no call lands in a bucket that is
// being recycled; recycling takes a mutex, at most once per bucket per slice of time.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>

#include "../clock.hpp"
#include "window_tally.hpp"

namespace stockade::detail {

class time_buckets {
 public:
  time_buckets(duration length, std::size_t buckets)
      : slice_(length / static_cast<duration::rep>(buckets)),
        count_(buckets),
        buckets_(new bucket[buckets]) {}

  time_buckets(const time_buckets&) = delete;
  time_buckets& operator=(const time_buckets&) = delete;
  ~time_buckets() = default;

  /// How long the window covers: buckets times the slice (length rounded down to a multiple).
  duration length() const noexcept { return slice_ * static_cast<duration::rep>(count_); }

  /// Records one call that finished at `at`. False if `at` is older than every bucket (a call
  /// reported late, after its slice was recycled): it is not counted.
  bool record(time_point at, bool failed, bool slow) {
    const auto [tick, index] = locate(at);
    bucket& slot = buckets_[index];
    if (slot.tick.load(std::memory_order_acquire) != tick && !recycle(slot, tick)) return false;
    slot.calls_and_failures.fetch_add(1U | (failed ? std::uint64_t{1} << 32U : 0U),
                                      std::memory_order_relaxed);
    if (slow) slot.slow_calls.fetch_add(1, std::memory_order_relaxed);
    return true;
  }

  /// The counts of the window that ends at `at`.
  window_tally tally(time_point at) const noexcept {
    const std::int64_t newest = tick_of(at);
    const std::int64_t oldest = newest - static_cast<std::int64_t>(count_) + 1;
    window_tally result;
    for (std::size_t i = 0; i < count_; ++i) {
      const bucket& slot = buckets_[i];
      const std::int64_t tick = slot.tick.load(std::memory_order_acquire);
      if (tick < oldest || tick > newest) continue;
      const std::uint64_t both = slot.calls_and_failures.load(std::memory_order_relaxed);
      result.calls += both & 0xffffffffU;
      result.failures += both >> 32U;
      result.slow_calls += slot.slow_calls.load(std::memory_order_relaxed);
    }
    return result;
  }

  void clear() {
    std::lock_guard lock(recycling_);
    for (std::size_t i = 0; i < count_; ++i) {
      buckets_[i].tick.store(unused, std::memory_order_relaxed);
      buckets_[i].calls_and_failures.store(0, std::memory_order_relaxed);
      buckets_[i].slow_calls.store(0, std::memory_order_relaxed);
    }
  }

 private:
  static constexpr std::int64_t unused = -1;

  // One cache line per bucket: calls in different slices do not share a line.
  struct alignas(64) bucket {
    std::atomic<std::int64_t> tick{unused};            // which slice of time it counts
    std::atomic<std::uint64_t> calls_and_failures{0};  // calls in the low 32 bits
    std::atomic<std::uint64_t> slow_calls{0};
  };

  std::int64_t tick_of(time_point at) const noexcept {
    const duration since_epoch = at.time_since_epoch();
    return since_epoch <= duration::zero() ? 0 : since_epoch / slice_;
  }

  struct location {
    std::int64_t tick;
    std::size_t index;
  };

  /// The slice `at` falls in and its bucket. Most calls fall in the same slice as the call
  /// before, so the last answer is kept (tick and index packed in one word) and checked with a
  /// multiplication, sparing two integer divisions per call.
  location locate(time_point at) noexcept {
    const std::uint64_t last = last_location_.load(std::memory_order_relaxed);
    const auto last_tick = static_cast<std::int64_t>(last >> index_bits);
    const duration offset = at.time_since_epoch() - slice_ * last_tick;
    if (offset >= duration::zero() && offset < slice_) {
      return {last_tick, static_cast<std::size_t>(last & index_mask)};
    }
    const std::int64_t tick = tick_of(at);
    const std::size_t index = static_cast<std::size_t>(tick) % count_;
    if (tick > last_tick) {
      last_location_.store((static_cast<std::uint64_t>(tick) << index_bits) | index,
                           std::memory_order_relaxed);
    }
    return {tick, index};
  }

  /// Makes `slot` count `tick`; false if it already counts a newer slice.
  bool recycle(bucket& slot, std::int64_t tick) {
    std::lock_guard lock(recycling_);
    const std::int64_t held = slot.tick.load(std::memory_order_relaxed);
    if (held == tick) return true;
    if (held > tick) return false;
    slot.calls_and_failures.store(0, std::memory_order_relaxed);
    slot.slow_calls.store(0, std::memory_order_relaxed);
    slot.tick.store(tick, std::memory_order_release);
    return true;
  }

  static constexpr unsigned index_bits = 16;  // buckets are at most 10000
  static constexpr std::uint64_t index_mask = (std::uint64_t{1} << index_bits) - 1;

  duration slice_;
  std::size_t count_;
  std::atomic<std::uint64_t> last_location_{0};  // tick 0 is bucket 0: a valid start
  std::unique_ptr<bucket[]> buckets_;
  std::mutex recycling_;
};

}  // namespace stockade::detail
