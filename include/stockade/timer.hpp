// A one-shot timer: a clock calls its action once when its time comes, unless it is cancelled
// first. Every wait a policy makes is a timer (plus, for a queue, a waiter:
// detail/waiter_queue.hpp), so whoever drives the wait decides what "resume" means: wake a blocked
// thread (detail/parking.hpp) or, later, resume a coroutine. The node lives with whoever waits (a
// stack frame, a coroutine frame), so arming one allocates nothing. Invariant: once clock::cancel
// returns, the clock no longer touches the timer and its action has either run to the end or will
// never run; only then may the timer be destroyed.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>

namespace stockade {

using duration = std::chrono::nanoseconds;
/// Every stockade clock shares steady_clock's time_point type, so a context, a deadline or a
/// breaker's window never depends on which clock is in use.
using time_point = std::chrono::steady_clock::time_point;

namespace detail {
class timer_list;
}

class timer {
 public:
  /// What the timer is for. A manual clock counts sleeps and waits as waiters (await_waiting), and
  /// in its advance_time mode moves time at once to a sleep's end (only a stop can cut a sleep).
  enum class purpose : unsigned char {
    sleep,  ///< a pure delay: a retry's backoff, injected latency
    wait,   ///< the time limit of a wait for something else (a free slot, a leader's result)
    alarm,  ///< work due at a time, nobody blocked on it (a deadline's stop request)
  };
  /// Runs on whichever thread the clock fires timers on; must not throw, and should be brief.
  using action = void (*)(void* target) noexcept;

  timer(purpose what, action on_due, void* target) noexcept
      : action_(on_due), target_(target), purpose_(what) {}
  timer(const timer&) = delete;
  timer& operator=(const timer&) = delete;
  ~timer() = default;

  time_point due() const noexcept { return due_; }
  purpose what() const noexcept { return purpose_; }
  /// True from arm until it fires or is cancelled.
  bool armed() const noexcept { return state_.load(std::memory_order_acquire) != idle; }

 private:
  friend class detail::timer_list;
  enum state : unsigned char { idle, armed_now, firing };

  action action_;
  void* target_;
  time_point due_{};
  timer* prev_ = nullptr;
  timer* next_ = nullptr;
  std::atomic<unsigned char> state_{idle};
  purpose purpose_;
};

}  // namespace stockade
