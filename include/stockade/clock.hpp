// The one time source every policy reads and sleeps through. Tests inject
// stockade::testing::manual_clock (manual_clock.hpp); production uses real_clock.
// Invariant: every wait goes through a clock, so a manual clock can make every wait instant
// or release it deterministically, and every wait can be bounded by a deadline and a stop token.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <stop_token>

#include "detail/function_ref.hpp"
#include "detail/timer_thread.hpp"

namespace stockade {

using duration = std::chrono::nanoseconds;
/// Every stockade clock shares steady_clock's time_point type, so a context, a deadline or a
/// breaker's window never depends on which clock is in use.
using time_point = std::chrono::steady_clock::time_point;
/// "No deadline": the latest representable time point.
inline constexpr time_point no_deadline = time_point::max();
/// The latest time a deadline can be. A limit that would reach past it stops here, so that a
/// timeout of any length still sets a deadline (context::deadline_after).
inline constexpr time_point latest_deadline = no_deadline - duration{1};

namespace detail {
/// at + length, but never past `limit` (no_deadline or latest_deadline) instead of overflowing.
constexpr time_point add_up_to(time_point at, duration length, time_point limit) noexcept {
  if (length <= duration::zero()) return at + length;
  return (limit - at) <= length ? limit : at + length;
}
}  // namespace detail

/// What a clock must provide. Implement it to plug in another time source.
class clock {
 public:
  clock() = default;
  clock(const clock&) = delete;
  clock& operator=(const clock&) = delete;
  virtual ~clock() = default;

  virtual time_point now() const noexcept = 0;

  /// Blocks until `until` or until `stop` is requested; false if the stop request woke it.
  virtual bool sleep_until(time_point until, std::stop_token stop) = 0;

  /// With `lock` held, waits on `cv` until `ready()` (checked under `lock`), `until`, or a stop
  /// request; returns `ready()`. Whoever makes `ready()` true must notify `cv`.
  virtual bool wait_until(std::unique_lock<std::mutex>& lock, std::condition_variable_any& cv,
                          time_point until, std::stop_token stop,
                          detail::function_ref<bool()> ready) = 0;

  /// Requests a stop on `source` when this clock reaches `when`; returns a ticket for cancel_stop.
  virtual std::uint64_t schedule_stop(time_point when, std::stop_source source) = 0;
  virtual void cancel_stop(std::uint64_t ticket) noexcept = 0;
};

/// std::chrono::steady_clock, with real sleeps and one shared timer thread for stop requests.
class real_clock final : public clock {
 public:
  static real_clock& instance() noexcept {
    static real_clock the_clock;
    return the_clock;
  }

  time_point now() const noexcept override { return std::chrono::steady_clock::now(); }

  bool sleep_until(time_point until, std::stop_token stop) override {
    std::mutex mutex;
    std::condition_variable_any cv;
    std::unique_lock lock(mutex);
    if (until == no_deadline) {
      cv.wait(lock, stop, [] { return false; });
    } else {
      cv.wait_until(lock, stop, until, [] { return false; });
    }
    return !stop.stop_requested();
  }

  bool wait_until(std::unique_lock<std::mutex>& lock, std::condition_variable_any& cv,
                  time_point until, std::stop_token stop,
                  detail::function_ref<bool()> ready) override {
    if (until == no_deadline) return cv.wait(lock, stop, ready);
    return cv.wait_until(lock, stop, until, ready);
  }

  std::uint64_t schedule_stop(time_point when, std::stop_source source) override {
    return detail::timer_thread::instance().schedule(when, std::move(source));
  }
  void cancel_stop(std::uint64_t ticket) noexcept override {
    detail::timer_thread::instance().cancel(ticket);
  }

 private:
  real_clock() = default;
};

}  // namespace stockade
