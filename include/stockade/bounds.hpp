// What analysis knows of a stack (docs/composition.md): the most attempts that can reach the
// callable and the longest a call can take, each either a number or "unbounded" with the layer
// that has no bound. A policy reports how it changes the bounds of what is inside it through an
// optional member `constexpr stack_bounds worst_case(const stack_bounds& inner) const`.
// Invariant: bounds only grow outward, and arithmetic saturates: a sum or product that would
// overflow stays at the largest value, never wraps to a small one.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <limits>
#include <string_view>

#include "clock.hpp"

namespace stockade {

/// A worst-case quantity: a value, or unbounded because of the layer named by unbounded_by().
/// Compares with plain values (`b <= 10s`, `b <= 12`); an unbounded one is never <= anything.
template <class T>
class bound {
 public:
  constexpr bound() = default;
  constexpr bound(T value) noexcept : value_(value) {}  // NOLINT: a value is a bound

  /// No bound, because of `why` (names the layer; must outlive the bound: a string literal).
  static constexpr bound unbounded(std::string_view why) noexcept {
    bound b;
    b.unbounded_by_ = why;
    return b;
  }

  constexpr bool bounded() const noexcept { return unbounded_by_.empty(); }
  /// The bound; meaningful only when bounded().
  constexpr T value() const noexcept { return value_; }
  /// The layer with no bound; empty when bounded().
  constexpr std::string_view unbounded_by() const noexcept { return unbounded_by_; }

  /// The smaller of this and `limit`: bounded even if this is not (a timeout around it).
  constexpr bound capped_at(T limit) const noexcept {
    return bounded() && value_ < limit ? *this : bound(limit);
  }
  /// a + b; unbounded if either is (named by the first that is), or if the sum overflows.
  friend constexpr bound operator+(const bound& a, const bound& b) noexcept {
    if (!a.bounded()) return a;
    if (!b.bounded()) return b;
    if (b.value_ > largest() - a.value_) {
      return unbounded("a sum past the largest value the type holds");
    }
    return bound(a.value_ + b.value_);
  }

  template <class U>
  friend constexpr bool operator<=(const bound& b, const U& limit) {
    return b.bounded() && b.value_ <= limit;
  }
  template <class U>
  friend constexpr bool operator<(const bound& b, const U& limit) {
    return b.bounded() && b.value_ < limit;
  }
  friend constexpr bool operator==(const bound&, const bound&) = default;

 private:
  static constexpr T largest() noexcept {
    if constexpr (requires { T::max(); }) {
      return T::max();  // a std::chrono::duration
    } else {
      return std::numeric_limits<T>::max();
    }
  }

  T value_{};
  std::string_view unbounded_by_{};
};

/// The worst case of a stack, or of the part of it inside some layer.
struct stack_bounds {
  bound<std::int64_t> attempts = 1;  ///< the most times the callable can run in one call
  bound<duration> elapsed;           ///< the longest one call can take

  /// The callable itself: runs once, for as long as nothing stops it (a timeout inside the
  /// stack, or a limit the caller states with of_callee(longest)).
  static constexpr stack_bounds of_callee() noexcept {
    return {1, bound<duration>::unbounded(
                   "the callable: its own time is not known; state it with worst_case(limit)")};
  }
  /// The callable, which the caller knows never takes longer than `longest`.
  /// (A negative `longest` counts as zero.)
  static constexpr stack_bounds of_callee(duration longest) noexcept {
    return {1, std::max(longest, duration::zero())};
  }

  /// True if every call ends within `limit`: `static_assert(stack.worst_case().fits_within(10s))`.
  template <class Rep, class Period>
  constexpr bool fits_within(std::chrono::duration<Rep, Period> limit) const {
    return elapsed <= limit;
  }

  friend constexpr bool operator==(const stack_bounds&, const stack_bounds&) = default;
};

/// What a layer does, as far as the ordering checks of a stack care (stack_checks.hpp). A policy
/// states the properties it has: `static constexpr stockade::layer_traits traits{.repeats =
/// true};`; one that states none has none. The checks read properties, not names, so a policy
/// written outside the library (a hedge, a rate limiter, a permit leased from another process)
/// is checked where it belongs without an edit to the core.
struct layer_traits {
  /// Runs the layers inside more than once per call (a retry, a hedge): two in one stack
  /// multiply their attempts and their waits.
  bool repeats = false;
  /// Counts or judges each attempt (a circuit breaker, a rate limiter, an adaptive limit):
  /// outside a layer that repeats, it sees one outcome (or takes one permit) per call.
  bool sees_each_attempt = false;
  /// Holds a slot or a permit while the layers inside run (a bulkhead, a concurrency limit):
  /// outside a layer that repeats, it is held through every wait between attempts.
  bool holds_capacity = false;
  /// Bounds the time of the layers inside (a timeout); it must then have `duration limit()
  /// const`, which the timeout-order check reads.
  bool bounds_time = false;

  friend constexpr bool operator==(const layer_traits&, const layer_traits&) noexcept = default;
};

}  // namespace stockade
