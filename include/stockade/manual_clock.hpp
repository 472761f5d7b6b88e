// A clock for tests: time moves only when the test (or a sleep) moves it, so every test is
// deterministic and instant. Invariant: timers are armed and taken for firing under this clock's
// mutex, and advance() fires every timer due by the new time before it returns (outside the
// mutex, in order of due time), so no wake-up is lost between a check and a wait.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <mutex>

#include "clock.hpp"
#include "detail/timer_list.hpp"
#include "timer.hpp"

namespace stockade::testing {

class manual_clock final : public clock {
 public:
  /// What a sleep does: move virtual time forward at once (the default, for single-threaded
  /// tests of retry delays), or block until the test advances time (to test wake-ups).
  enum class sleeps { advance_time, wait_for_advance };

  /// Starts at an arbitrary but fixed point (one hour past the epoch), not at zero, so code
  /// that subtracts durations from "now" never underflows.
  explicit manual_clock(sleeps mode = sleeps::advance_time,
                        time_point start = time_point{} + std::chrono::hours(1)) noexcept
      : now_(start.time_since_epoch().count()), mode_(mode) {}

  time_point now() const noexcept override {
    return time_point{duration{now_.load(std::memory_order_acquire)}};
  }

  /// Moves time forward by `step` and fires every timer due by then (waking what waits on them).
  /// A step past the end of time stops at latest_deadline: every deadline has then passed, and
  /// only a wait without one ("until no_deadline") still waits. A step <= 0 moves nothing.
  void advance(duration step) {
    const time_point at = now();
    advance_to(step <= duration::zero() ? at : detail::add_up_to(at, step, latest_deadline));
  }

  /// Moves time forward to `when` (at most latest_deadline) and fires every timer due by then;
  /// a time in the past leaves the clock where it is.
  void advance_to(time_point when) {
    when = std::min(when, latest_deadline);
    timer* due = nullptr;
    {
      std::lock_guard lock(mutex_);
      if (when > now()) now_.store(when.time_since_epoch().count(), std::memory_order_release);
      due = timers_.take_due(now());
    }
    detail::timer_list::fire_all(due);  // outside the lock: actions run user code
  }

  void set_sleep_mode(sleeps mode) noexcept {
    std::lock_guard lock(mutex_);
    mode_ = mode;
  }

  /// How many sleeps began, and the virtual time they asked for in total.
  std::size_t sleep_count() const noexcept { return sleep_count_.load(); }
  duration total_slept() const noexcept { return duration{total_slept_.load()}; }

  /// Waits armed on this clock right now: sleeps, and waits for something else with a time
  /// limit or none (a queued caller, a follower of a single flight); not deadline alarms.
  std::size_t waiting() const {
    std::lock_guard lock(mutex_);
    return timers_.waiters();
  }

  /// Blocks (in real time) until at least `count` waits are armed on this clock. Lets a test
  /// order threads without sleeping. Gives up after `patience` and returns false, so a broken
  /// test fails instead of hanging.
  bool await_waiting(std::size_t count,
                     std::chrono::milliseconds patience = std::chrono::seconds(30)) const {
    std::unique_lock lock(mutex_);
    return waiters_changed_.wait_for(lock, patience, [&] { return timers_.waiters() >= count; });
  }

  /// The earliest time a timer armed on this clock is due; time_point::max() if none. With
  /// every thread of a test blocked on the clock, advance_to(next_wake()) moves time straight to
  /// the next thing that happens, so many threads see time pass alike.
  time_point next_wake() const {
    std::lock_guard lock(mutex_);
    return timers_.earliest(time_point::max());
  }

  /// A time already come fires `t` at once, on this thread. A sleep in advance_time mode moves
  /// time to its end at once (at most latest_deadline, so even a sleep "forever" ends).
  void arm(timer& t, time_point when) override {
    bool advance_now = false;
    {
      std::lock_guard lock(mutex_);
      if (t.what() == timer::purpose::sleep) {
        const time_point at = now();
        sleep_count_.fetch_add(1);
        if (when > at) total_slept_.fetch_add((when - at).count());
        if (mode_ == sleeps::advance_time) {
          advance_now = true;
          when = std::min(when, latest_deadline);
        }
      }
      timers_.insert(t, when);
      waiters_changed_.notify_all();
    }
    advance_to(advance_now ? when : now());
  }

  bool cancel(timer& t) noexcept override {
    {
      std::lock_guard lock(mutex_);
      if (timers_.remove(t)) return true;
    }
    detail::timer_list::wait_while_firing(t);
    return false;
  }

 private:
  std::atomic<duration::rep> now_;
  mutable std::mutex mutex_;
  mutable std::condition_variable waiters_changed_;
  detail::timer_list timers_;
  sleeps mode_;
  std::atomic<std::size_t> sleep_count_{0};
  std::atomic<duration::rep> total_slept_{0};
};

}  // namespace stockade::testing
