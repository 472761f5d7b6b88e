// A clock for tests: time moves only when the test (or a sleep) moves it, so every test is
// deterministic and instant. Invariant: a waiter checks the time under this clock's mutex and
// advance() notifies under it, so no wake-up is ever lost between the check and the wait.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <stop_token>
#include <utility>
#include <vector>

#include "clock.hpp"

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

  /// Moves time forward by `step`, wakes every waiter whose time has come, fires stop timers.
  /// A step past the end of time stops at latest_deadline: every deadline has then passed, and
  /// only a wait without one ("until no_deadline") still waits. A step <= 0 moves nothing.
  void advance(duration step) {
    const time_point at = now();
    advance_to(step <= duration::zero() ? at : detail::add_up_to(at, step, latest_deadline));
  }

  /// Moves time forward to `when` (at most latest_deadline); a time in the past leaves the clock
  /// where it is.
  void advance_to(time_point when) {
    when = std::min(when, latest_deadline);
    std::vector<std::stop_source> fire;
    {
      std::lock_guard lock(mutex_);
      if (when > now()) now_.store(when.time_since_epoch().count(), std::memory_order_release);
      for (waiter* w : waiters_) w->cv->notify_all();
      while (!timers_.empty() && timers_.begin()->first.first <= now()) {
        fire.push_back(std::move(timers_.begin()->second));
        timers_.erase(timers_.begin());
      }
    }
    for (auto& source : fire) source.request_stop();  // outside the lock: callbacks run user code
  }

  void set_sleep_mode(sleeps mode) noexcept {
    std::lock_guard lock(mutex_);
    mode_ = mode;
  }

  /// How many sleeps began, and the virtual time they asked for in total.
  std::size_t sleep_count() const noexcept { return sleep_count_.load(); }
  duration total_slept() const noexcept { return duration{total_slept_.load()}; }

  /// Threads blocked on this clock right now (in wait_until or a blocking sleep).
  std::size_t waiting() const {
    std::lock_guard lock(mutex_);
    return waiters_.size();
  }

  /// Blocks (in real time) until at least `count` threads wait on this clock. Lets a test
  /// order threads without sleeping. Gives up after `patience` and returns false, so a broken
  /// test fails instead of hanging.
  bool await_waiting(std::size_t count,
                     std::chrono::milliseconds patience = std::chrono::seconds(30)) const {
    std::unique_lock lock(mutex_);
    return waiters_changed_.wait_for(lock, patience, [&] { return waiters_.size() >= count; });
  }

  /// The earliest time a thread waiting on this clock (or a stop timer) is due; time_point::max()
  /// if none. With every thread of a test blocked on the clock, advance_to(next_wake()) moves
  /// time straight to the next thing that happens, so many threads see time pass alike.
  time_point next_wake() const {
    std::lock_guard lock(mutex_);
    time_point earliest = time_point::max();
    for (const waiter* w : waiters_) earliest = std::min(earliest, w->until);
    if (!timers_.empty()) earliest = std::min(earliest, timers_.begin()->first.first);
    return earliest;
  }

  bool sleep_until(time_point until, std::stop_token stop) override {
    if (stop.stop_requested()) return false;
    const time_point start = now();
    sleep_count_.fetch_add(1);
    if (until > start) total_slept_.fetch_add((until - start).count());
    bool blocking = false;
    {
      std::lock_guard lock(mutex_);
      blocking = mode_ == sleeps::wait_for_advance;
    }
    if (!blocking) {
      advance_to(until);
      return true;
    }
    std::mutex mutex;
    std::condition_variable_any cv;
    std::unique_lock lock(mutex);
    wait_until(lock, cv, until, stop, [] { return false; });
    return !stop.stop_requested() && now() >= until;
  }

  bool wait_until(std::unique_lock<std::mutex>& lock, std::condition_variable_any& cv,
                  time_point until, std::stop_token stop,
                  detail::function_ref<bool()> ready) override {
    // Hold the caller's mutex and ours together while checking, and let cv release both
    // atomically: advance() takes our mutex to move time, so it cannot slip in between.
    both_locks both{*lock.mutex(), mutex_};
    mutex_.lock();
    waiter self{&cv, until};
    waiters_.push_back(&self);
    waiters_changed_.notify_all();
    struct deregister {
      manual_clock& clock;
      waiter* self;
      ~deregister() {
        clock.waiters_.erase(std::find(clock.waiters_.begin(), clock.waiters_.end(), self));
        clock.mutex_.unlock();
      }
    } on_exit{*this, &self};
    cv.wait(both, stop, [&] { return ready() || now() >= until; });
    return ready();
  }

  std::uint64_t schedule_stop(time_point when, std::stop_source source) override {
    {
      std::lock_guard lock(mutex_);
      if (when > now()) {
        const std::uint64_t ticket = ++last_ticket_;
        timers_.emplace(std::pair{when, ticket}, std::move(source));
        return ticket;
      }
    }
    source.request_stop();
    return 0;
  }

  void cancel_stop(std::uint64_t ticket) noexcept override {
    std::lock_guard lock(mutex_);
    std::erase_if(timers_, [&](const auto& entry) { return entry.first.second == ticket; });
  }

 private:
  struct waiter {
    std::condition_variable_any* cv;
    time_point until;  // when its wait ends by time, if nothing readies it first
  };
  // Locks the caller's mutex, then ours; the order every waiter uses, so it cannot deadlock.
  struct both_locks {
    std::mutex& outer;
    std::mutex& inner;
    void lock() {
      outer.lock();
      inner.lock();
    }
    void unlock() {
      inner.unlock();
      outer.unlock();
    }
  };

  std::atomic<duration::rep> now_;
  mutable std::mutex mutex_;
  mutable std::condition_variable waiters_changed_;
  std::vector<waiter*> waiters_;
  std::map<std::pair<time_point, std::uint64_t>, std::stop_source> timers_;
  std::uint64_t last_ticket_ = 0;
  sleeps mode_;
  std::atomic<std::size_t> sleep_count_{0};
  std::atomic<duration::rep> total_slept_{0};
};

}  // namespace stockade::testing
