// A bulkhead bounds how many calls run at once against one dependency (max_concurrent slots),
// how many may wait for a slot (max_queue, served first in first out) and how long (max_wait).
// Invariant: one atomic word holds both the slots taken and the number of queued waiters, so
// (a) a free slot is taken by one CAS only while nobody waits (no barging past the queue) and
// (b) once anybody waits, every release hands its slot to the oldest waiter under the mutex.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "bounds.hpp"
#include "context.hpp"
#include "detail/duration_text.hpp"
#include "detail/validate.hpp"
#include "detail/waiter_queue.hpp"
#include "errors.hpp"
#include "events.hpp"
#include "result.hpp"
#include "runtime.hpp"
#include "verdict.hpp"

namespace stockade {

/// How a bulkhead is sized. Defaults follow resilience4j's semaphore bulkhead
/// (maxConcurrentCalls 25, maxWaitDuration 0): fail fast, never queue, unless asked to.
struct bulkhead_options {
  /// Calls that may run at once. resilience4j: 25; Polly's concurrency limiter has no default
  /// worth copying (1000 in v8, required in v7); Envoy's per-cluster max_requests is 1024, for a
  /// proxy, not a client. Size it to what the dependency can serve (e.g. its pool size).
  std::size_t max_concurrent = 25;
  /// Callers that may wait for a slot; 0 rejects at once when all slots are taken (resilience4j's
  /// and Polly's QueueLimit default). A bounded queue smooths short bursts; an unbounded one is
  /// how an overload becomes an outage, so there is no "unbounded".
  std::size_t max_queue = 0;
  /// How long a queued caller waits at most (also bounded by its deadline and stop token). Must
  /// be positive exactly when max_queue is; duration::max() means "until the call's deadline".
  duration max_wait = duration::zero();

  /// The most slots or queued callers: the two share one atomic word of the bulkhead.
  static constexpr std::size_t max_count = 0x7FFF'FFFF;

  /// Refuses a bad configuration (std::invalid_argument naming the field; in a constant
  /// expression it fails to compile instead).
  constexpr void validate() const {
    detail::require(max_concurrent >= 1, "bulkhead", "max_concurrent", "must be at least 1",
                    max_concurrent);
    detail::require(max_concurrent <= max_count, "bulkhead", "max_concurrent",
                    "must be at most 2147483647", max_concurrent);
    detail::require(max_queue <= max_count, "bulkhead", "max_queue", "must be at most 2147483647",
                    max_queue);
    detail::require(max_wait >= duration::zero(), "bulkhead", "max_wait", "must not be negative",
                    max_wait);
    detail::require(max_queue == 0 || max_wait > duration::zero(), "bulkhead", "max_wait",
                    "must be positive when max_queue is positive", max_wait);
    detail::require(max_wait == duration::zero() || max_queue > 0, "bulkhead", "max_queue",
                    "must be positive when max_wait is positive", max_queue);
  }
};

/// A snapshot of a bulkhead's counters (each read with a relaxed load: consistent on its own,
/// not with each other while calls run).
struct bulkhead_metrics {
  std::size_t in_flight = 0;       ///< slots taken now
  std::size_t queued = 0;          ///< callers waiting for a slot now
  std::size_t peak_in_flight = 0;  ///< the most slots ever taken at once
  std::uint64_t rejected = 0;      ///< calls refused (full, wait exceeded, cancelled while queued)
};

/// Reported when a call is refused; the call then throws stockade::error with the matching code.
struct bulkhead_rejected {
  static constexpr event_kind kind = event_kind::bulkhead_rejected;
  enum class reason : std::uint8_t {
    full,           ///< errc::bulkhead_full: no free slot and the queue was full (or max_queue 0)
    wait_exceeded,  ///< errc::bulkhead_wait_exceeded: max_wait or the call's deadline ran out
    cancelled,      ///< errc::cancelled: the caller's stop token fired while it was queued
  };
  reason why;
  std::string_view name;  ///< the call's context name
  std::size_t in_flight;  ///< slots taken when the call was refused
  std::size_t queued;     ///< callers waiting when the call was refused
  duration waited;        ///< time spent in the queue (zero if never queued)
};

/// A bulkhead: one object per dependency, shared by every call site; a pipeline takes it by
/// std::ref (it cannot be copied or moved, so a per-call bulkhead cannot be written by mistake).
///   stockade::bulkhead db_slots{{.max_concurrent = 5, .max_queue = 64, .max_wait = 2s}};
///   auto policy = stockade::pipeline{stockade::timeout{8s}, std::ref(db_slots)};
template <class Observer = null_observer>
class bulkhead {
 public:
  /// Refuses a bad configuration (std::invalid_argument naming the field; in a constant
  /// expression, e.g. a constinit bulkhead, it fails to compile instead).
  constexpr explicit bulkhead(bulkhead_options options = {}, Observer observer = Observer{})
      : options_((options.validate(), options)), observer_(std::move(observer)) {}

  bulkhead(const bulkhead&) = delete;
  bulkhead& operator=(const bulkhead&) = delete;
  ~bulkhead() = default;  // destroying a bulkhead while calls hold or wait for slots is a bug

  /// One slot, held for the guard's lifetime and given back by its destructor, whatever the
  /// call did (returned, threw, was cancelled).
  class slot {
   public:
    slot(slot&& other) noexcept : owner_(std::exchange(other.owner_, nullptr)) {}
    slot& operator=(slot&& other) noexcept {
      if (this != &other) {
        reset();
        owner_ = std::exchange(other.owner_, nullptr);
      }
      return *this;
    }
    slot(const slot&) = delete;
    slot& operator=(const slot&) = delete;
    ~slot() { reset(); }

    /// Gives the slot back now (idempotent).
    void reset() noexcept {
      if (owner_ != nullptr) std::exchange(owner_, nullptr)->release();
    }

   private:
    friend class bulkhead;
    explicit slot(bulkhead& owner) noexcept : owner_(&owner) {}
    bulkhead* owner_;
  };

  /// The policy: holds a slot while the layers inside (and the callee) run.
  /// Refused, it returns bulkhead_full, bulkhead_wait_exceeded or cancelled (all rejections).
  template <class Next>
  auto invoke(context& ctx, Next&& next) {
    using result_type = std::invoke_result_t<Next&, context&>;
    errc refused{};
    if (!take_free_slot() && !wait_for_slot(ctx, refused)) [[unlikely]] {
      return result_type::raised(call_error(refused));
    }
    const slot held{*this};
    return std::forward<Next>(next)(ctx);
  }

  /// The coroutine driver: the same slots, queue and refusals; a queued caller is a suspended
  /// coroutine, handed its slot by a release like a blocked thread, from either path.
  template <class Next>
  std::invoke_result_t<Next&, context&> async_invoke(context& ctx, Next next) {
    using runtime = runtime_of<std::invoke_result_t<Next&, context&>>;
    using result_type = typename runtime::value_type;
    if (!take_free_slot()) [[unlikely]] {
      errc refused{};
      if (!co_await wait_for_slot_async<runtime>(ctx, refused)) {
        co_return result_type::raised(call_error(refused));
      }
    }
    const slot held{*this};
    co_return co_await next(ctx);
  }

  /// Takes a slot, waiting in the queue if the options allow; throws stockade::error
  /// (bulkhead_full, bulkhead_wait_exceeded or cancelled; all rejections) when refused.
  [[nodiscard]] slot acquire(context& ctx) {
    errc refused{};
    if (take_free_slot() || wait_for_slot(ctx, refused)) return slot{*this};
    throw error(refused);
  }

  /// Takes a free slot if one is free and nobody waits; never waits, never counts a rejection.
  [[nodiscard]] std::optional<slot> try_acquire() noexcept {
    if (take_free_slot()) return slot{*this};
    return std::nullopt;
  }

  bulkhead_metrics metrics() const noexcept {
    const std::uint64_t word = state_.load(std::memory_order_relaxed);
    return {taken(word), waiting(word), peak_.load(std::memory_order_relaxed),
            rejected_.load(std::memory_order_relaxed)};
  }

  constexpr const bulkhead_options& options() const noexcept { return options_; }

  static constexpr layer_traits traits{.holds_capacity = true};
  /// Adds the longest a call may wait in the queue for a slot.
  constexpr stack_bounds worst_case(const stack_bounds& inner) const noexcept {
    if (options_.max_wait == duration::max()) {
      return {inner.attempts,
              bound<duration>::unbounded("bulkhead: max_wait lets a call wait until its deadline")};
    }
    return {inner.attempts, inner.elapsed + options_.max_wait};
  }
  std::string describe() const {
    return "bulkhead: " + std::to_string(options_.max_concurrent) +
           (options_.max_concurrent == 1 ? " slot" : " slots") + ", queue " +
           std::to_string(options_.max_queue) + ", max_wait " +
           (options_.max_wait == duration::max() ? std::string("until the call's deadline")
                                                 : detail::duration_text(options_.max_wait));
  }

 private:
  // The state word: low 32 bits are the slots taken, high 32 bits the callers queued. The queued
  // count changes only under mutex_; while it is non-zero, every slot is taken or being handed.
  static constexpr std::uint64_t one_waiter = std::uint64_t{1} << 32;
  static constexpr std::size_t taken(std::uint64_t word) noexcept {
    return static_cast<std::size_t>(word & 0xFFFF'FFFFU);
  }
  static constexpr std::size_t waiting(std::uint64_t word) noexcept {
    return static_cast<std::size_t>(word >> 32);
  }

  // The whole success path: one load and one CAS, no lock, no allocation.
  bool take_free_slot() noexcept {
    std::uint64_t word = state_.load(std::memory_order_relaxed);
    while (waiting(word) == 0 && taken(word) < options_.max_concurrent) {
      if (state_.compare_exchange_weak(word, word + 1, std::memory_order_acquire,
                                       std::memory_order_relaxed)) {
        note_in_flight(taken(word) + 1);
        return true;
      }
    }
    return false;
  }

  void release() noexcept {
    const std::uint64_t before = state_.fetch_sub(1, std::memory_order_release);
    if (waiting(before) != 0) [[unlikely]]
      hand_over();
  }

  // A release saw queued callers: give the slot it freed to the oldest one. The slot may already
  // be gone (the waiter it was meant for left, and a newcomer took it while nobody waited); then
  // the queue waits for the next release, which will see it too.
  void hand_over() noexcept {
    const std::lock_guard lock(mutex_);
    if (queue_.empty()) return;
    std::uint64_t word = state_.load(std::memory_order_relaxed);
    while (taken(word) < options_.max_concurrent) {
      if (state_.compare_exchange_weak(word, word + 1 - one_waiter, std::memory_order_acq_rel,
                                       std::memory_order_relaxed)) {
        note_in_flight(taken(word) + 1);
        queue_.pop_front().serve();  // handed the slot; under mutex_, so it cannot leave yet
        return;
      }
    }
  }

  void note_in_flight(std::size_t in_flight) noexcept {
    std::size_t peak = peak_.load(std::memory_order_relaxed);
    while (in_flight > peak &&
           !peak_.compare_exchange_weak(peak, in_flight, std::memory_order_relaxed)) {
    }
  }

  // The decisions of a call that found no free slot, written once for every way of waiting:
  // refusal_at_once (no queue, or no time left to wait in it), join_queue (a slot, a place in
  // the queue, or a refusal), then, once the wait ended, after_wait. wait_for_slot below is the
  // blocking driver; a coroutine driver suspends between the two instead. Refusals are reported
  // (refuse) by the driver, outside the lock: an observer may call back into the bulkhead.
  using refusal = bulkhead_rejected::reason;
  enum class queue_entry { got_slot, queued, refused };

  /// Before any lock: a call that cannot wait at all.
  std::optional<refusal> refusal_at_once(const context& ctx, time_point start) const noexcept {
    if (options_.max_queue == 0) return refusal::full;
    if (ctx.has_deadline() && start >= ctx.deadline()) return refusal::wait_exceeded;
    return std::nullopt;
  }

  /// Under mutex_: takes a slot that came free, or queues `self`, or refuses (why in `why`).
  queue_entry join_queue(detail::waiter& self, refusal& why) noexcept {
    std::uint64_t word = state_.load(std::memory_order_relaxed);
    for (;;) {
      if (waiting(word) == 0 && taken(word) < options_.max_concurrent) {
        // A slot came free between the fast path and the lock, and nobody queued meanwhile.
        if (state_.compare_exchange_weak(word, word + 1, std::memory_order_acquire,
                                         std::memory_order_relaxed)) {
          note_in_flight(taken(word) + 1);
          return queue_entry::got_slot;
        }
      } else if (waiting(word) >= options_.max_queue) {
        why = refusal::full;
        return queue_entry::refused;
      } else if (state_.compare_exchange_weak(word, word + one_waiter, std::memory_order_relaxed,
                                              std::memory_order_relaxed)) {
        queue_.push_back(self);
        return queue_entry::queued;
      }
    }
  }

  /// Under mutex_, once the wait of a queued `self` ended: true if a releaser handed it a slot
  /// (counted as ours, and the peak); otherwise it leaves the queue, refused (why in `why`).
  bool after_wait(context& ctx, detail::waiter& self, refusal& why) noexcept {
    if (self.served) return true;
    leave_queue(self);
    why = ctx.caller_stop_token().stop_requested() ? refusal::cancelled : refusal::wait_exceeded;
    return false;
  }

  /// Gives up a place in the queue whose wait did not end normally (the wait threw, or the
  /// coroutine was destroyed while queued): leaves the queue, or gives back the slot it was
  /// handed meanwhile. `lock` may or may not be held.
  class queue_place {
   public:
    queue_place(bulkhead& owner, std::unique_lock<std::mutex>& lock, detail::waiter& self) noexcept
        : owner_(&owner), lock_(lock), self_(self) {}
    queue_place(const queue_place&) = delete;
    queue_place& operator=(const queue_place&) = delete;
    ~queue_place() {
      if (owner_ == nullptr) return;
      if (!lock_.owns_lock()) lock_.lock();
      if (self_.served) {
        lock_.unlock();
        owner_->release();
      } else {
        owner_->leave_queue(self_);
      }
    }
    void settled() noexcept { owner_ = nullptr; }

   private:
    bulkhead* owner_;
    std::unique_lock<std::mutex>& lock_;
    detail::waiter& self_;
  };

  /// No free slot at first sight: waits in the queue for one, blocking this thread, as the
  /// options allow. True once this caller holds a slot (the caller makes the slot object);
  /// false when refused, with the rejection's code in `refused`.
  bool wait_for_slot(context& ctx, errc& refused) {
    const time_point start = options_.max_queue == 0 ? time_point{} : ctx.refresh_now();
    if (const std::optional<refusal> at_once = refusal_at_once(ctx, start)) {
      refuse(ctx, *at_once, duration::zero(), refused);
      return false;
    }
    detail::waiter self;
    refusal why{};
    std::unique_lock lock(mutex_);
    const queue_entry entry = join_queue(self, why);
    if (entry == queue_entry::got_slot) return true;
    if (entry == queue_entry::queued) {
      // The node lives on this frame: it must not stay queued, nor a handed slot stay taken.
      queue_place place(*this, lock, self);
      (void)ctx.wait_for_turn(lock, self, context::saturating_add(start, options_.max_wait));
      place.settled();
      if (after_wait(ctx, self, why)) return true;
    }
    lock.unlock();
    refuse(ctx, why, entry == queue_entry::queued ? ctx.now() - start : duration::zero(), refused);
    return false;
  }

  /// The coroutine driver of wait_for_slot: the same decisions, the wait a suspension.
  template <class Runtime>
  typename Runtime::template task<bool> wait_for_slot_async(context& ctx, errc& refused) {
    const time_point start = options_.max_queue == 0 ? time_point{} : ctx.refresh_now();
    if (const std::optional<refusal> at_once = refusal_at_once(ctx, start)) {
      refuse(ctx, *at_once, duration::zero(), refused);
      co_return false;
    }
    detail::waiter self;
    refusal why{};
    std::unique_lock lock(mutex_);
    const queue_entry entry = join_queue(self, why);
    if (entry == queue_entry::got_slot) co_return true;
    if (entry == queue_entry::queued) {
      queue_place place(*this, lock, self);
      (void)co_await Runtime::wait_for_turn(ctx, lock, self,
                                            context::saturating_add(start, options_.max_wait));
      place.settled();
      if (after_wait(ctx, self, why)) co_return true;
    }
    lock.unlock();
    refuse(ctx, why, entry == queue_entry::queued ? ctx.now() - start : duration::zero(), refused);
    co_return false;
  }

  void leave_queue(detail::waiter& self) noexcept {  // under mutex_, for a waiter not handed a slot
    queue_.erase(self);
    state_.fetch_sub(one_waiter, std::memory_order_relaxed);
  }

  void refuse(context& ctx, refusal why, duration waited, errc& refused) noexcept {
    rejected_.fetch_add(1, std::memory_order_relaxed);
    const std::uint64_t word = state_.load(std::memory_order_relaxed);
    detail::notify(observer_,
                   bulkhead_rejected{why, ctx.name(), taken(word), waiting(word), waited});
    switch (why) {
      case refusal::full:
        refused = errc::bulkhead_full;
        return;
      case refusal::wait_exceeded:
        refused = errc::bulkhead_wait_exceeded;
        return;
      case refusal::cancelled:
        break;
    }
    refused = errc::cancelled;
  }

  bulkhead_options options_;
  // state_ and peak_ side by side: the success path touches one cache line.
  alignas(64) std::atomic<std::uint64_t> state_{0};
  std::atomic<std::size_t> peak_{0};
  alignas(64) std::atomic<std::uint64_t> rejected_{0};
  std::mutex mutex_;
  detail::waiter_queue<detail::waiter> queue_;
  [[no_unique_address]] Observer observer_;
};

/// bulkhead{{...}} with no observer names bulkhead<null_observer>.
bulkhead(bulkhead_options)->bulkhead<null_observer>;

}  // namespace stockade
