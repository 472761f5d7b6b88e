// The one time source every policy reads and waits through. Tests inject
// stockade::testing::manual_clock (manual_clock.hpp); production uses real_clock.
// Invariant: every wait is a timer armed on a clock (timer.hpp), so a manual clock can release
// every wait deterministically; how a wait blocks (a thread, later a coroutine) is the business
// of whoever drives it (detail/parking.hpp for threads), not of the clock.
#pragma once

#include <chrono>
#if defined(__linux__)
#include <time.h>
#endif

#include "detail/timer_thread.hpp"
#include "timer.hpp"

namespace stockade {

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

/// std::chrono::steady_clock as of its last tick: on Linux CLOCK_MONOTONIC_COARSE, the same
/// timeline as steady_clock (CLOCK_MONOTONIC) read without the hardware counter, never ahead
/// of it and at most one kernel tick (1 to 10 ms) behind.
inline time_point coarse_steady_now() noexcept {
#if defined(__linux__) && defined(CLOCK_MONOTONIC_COARSE)
  timespec at{};
  if (::clock_gettime(CLOCK_MONOTONIC_COARSE, &at) == 0) {
    return time_point{std::chrono::seconds{at.tv_sec} + std::chrono::nanoseconds{at.tv_nsec}};
  }
#endif
  return std::chrono::steady_clock::now();
}

/// How far coarse_steady_now() can lag behind steady_clock: the coarse clock's resolution (one
/// kernel tick), read once; zero where there is no coarse clock (the reading is then exact).
inline duration coarse_lag() noexcept {
#if defined(__linux__) && defined(CLOCK_MONOTONIC_COARSE)
  static const duration lag = [] {
    timespec tick{};
    if (::clock_getres(CLOCK_MONOTONIC_COARSE, &tick) != 0) return duration::zero();
    return duration{std::chrono::seconds{tick.tv_sec} + std::chrono::nanoseconds{tick.tv_nsec}};
  }();
  return lag;
#else
  return duration::zero();
#endif
}

/// True once steady_clock has reached `when`, with an exact reading only near it (within two
/// ticks, a margin over the one tick the coarse clock can lag): a time further ahead is judged
/// from the coarse reading, which is never ahead of the clock.
inline bool steady_clock_reached(time_point when) noexcept {
  const time_point coarse = coarse_steady_now();
  if (coarse >= when) return true;
  if (when - coarse > 2 * coarse_lag()) return false;
  return std::chrono::steady_clock::now() >= when;
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

  /// A reading that may be up to one tick old but is never ahead of now(), for decisions that
  /// a millisecond late does not change: an open breaker's refusal reads this. The default
  /// reads now().
  virtual time_point recent() const noexcept { return now(); }

  /// Fires `t` (runs its action once) when this clock reaches `when`; a time already past fires
  /// it soon. `t` must not be armed already, and must stay alive until it has fired or cancel()
  /// has returned. May throw if the clock cannot take timers; `t` is then not armed.
  virtual void arm(timer& t, time_point when) = 0;

  /// Stops `t` from firing. True if it was armed and now never fires; false if it has fired or
  /// was never armed. If its action is running, returns once the action has finished.
  virtual bool cancel(timer& t) noexcept = 0;
};

/// std::chrono::steady_clock, with one shared timer thread (detail/timer_thread.hpp).
class real_clock final : public clock {
 public:
  static real_clock& instance() noexcept {
    static real_clock the_clock;
    return the_clock;
  }

  time_point now() const noexcept override { return std::chrono::steady_clock::now(); }
  time_point recent() const noexcept override { return detail::coarse_steady_now(); }
  void arm(timer& t, time_point when) override { detail::timer_thread::instance().arm(t, when); }
  bool cancel(timer& t) noexcept override { return detail::timer_thread::instance().cancel(t); }

 private:
  real_clock() = default;
};

}  // namespace stockade
