// Backoff schedules (how long to wait before retry n) and jitter (how to spread those waits),
// shared by retry, the circuit breaker's growing open duration and the warm-up gate's cool-down.
// Invariant: a jittered delay is never negative and never exceeds its cap; built-in schedules
// saturate at their max_delay instead of overflowing, however large the retry number.
#pragma once

#include <algorithm>
#include <chrono>
#include <concepts>
#include <cstdint>
#include <limits>

#include "clock.hpp"
#include "detail/saturating.hpp"
#include "detail/validate.hpp"
#include "random.hpp"

namespace stockade {

/// What a backoff schedule must provide: `delay(n)`, the wait before retry n (1 = the wait after
/// the first failure), never negative. It is a value type, copied into each policy. Optional:
/// `constexpr void validate() const` (throws std::invalid_argument on a bad configuration); the
/// policies call it when they are built.
///   struct fibonacci { duration unit; duration delay(int n) const { ... } };
template <class B>
concept backoff = std::copy_constructible<B> && requires(const B& schedule, int retry_number) {
  { schedule.delay(retry_number) } -> std::convertible_to<duration>;
};

struct constant;

namespace detail {

/// `value` nanoseconds as a duration, saturating at `cap` (also for +inf and overflow).
constexpr duration saturate(double value, duration cap) noexcept {
  if (!(value < static_cast<double>(cap.count()))) return cap;  // also catches NaN
  if (value <= 0.0) return duration::zero();
  return duration{static_cast<duration::rep>(value)};
}

/// min(base^exponent, limit) by squaring, for base >= 1: O(log exponent), and it stops before a
/// product could overflow (infinity is not allowed in a constant expression).
constexpr double power_up_to(double base, int exponent, double limit) noexcept {
  double result = 1.0;
  while (exponent > 0) {
    if ((exponent & 1) != 0) {
      result *= base;
      if (result >= limit) return limit;
    }
    exponent >>= 1;
    if (exponent == 0) break;
    if (base >= limit) return limit;  // the rest multiplies by at least base (result >= 1)
    base *= base;
  }
  return result;
}

template <class B>
constexpr void validate_backoff(const B& schedule) {
  if constexpr (requires { schedule.validate(); }) schedule.validate();
}

/// The longest delay a schedule allows (its max_delay, a constant's interval), or no cap if it
/// states none: the one cap of every wait drawn from the schedule, whatever the jitter.
template <class B>
constexpr duration schedule_cap(const B& schedule) noexcept {
  if constexpr (requires {
                  { schedule.max_delay() } -> std::convertible_to<duration>;
                }) {
    return schedule.max_delay();
  } else if constexpr (requires {
                         { schedule.max_delay } -> std::convertible_to<duration>;
                       }) {
    return schedule.max_delay;
  } else if constexpr (std::same_as<B, constant>) {
    return schedule.interval;
  } else {
    return duration::max();
  }
}

}  // namespace detail

/// The same wait before every retry. Default 2 s: Polly v8's default Delay (constant backoff).
struct constant {
  duration interval = std::chrono::seconds(2);

  constexpr duration delay(int /*retry_number*/) const noexcept { return interval; }
  constexpr void validate() const {
    detail::require(interval >= duration::zero(), "constant", "interval", "must not be negative",
                    interval);
  }
  friend constexpr bool operator==(const constant&, const constant&) noexcept = default;
};

/// initial, initial + increment, initial + 2 * increment, ... capped at max_delay.
/// Defaults as Polly v8's linear backoff with its 2 s Delay (the step equals the first delay);
/// the 20 s cap as exponential's.
struct linear {
  duration initial = std::chrono::seconds(2);
  duration increment = std::chrono::seconds(2);
  duration max_delay = std::chrono::seconds(20);

  constexpr duration delay(int retry_number) const noexcept {
    if (retry_number <= 1) return std::min(initial, max_delay);
    const auto steps = static_cast<double>(retry_number - 1);
    return detail::saturate(
        static_cast<double>(initial.count()) + steps * static_cast<double>(increment.count()),
        max_delay);
  }
  constexpr void validate() const {
    detail::require(initial >= duration::zero(), "linear", "initial", "must not be negative",
                    initial);
    detail::require(increment >= duration::zero(), "linear", "increment", "must not be negative",
                    increment);
    detail::require(max_delay >= initial, "linear", "max_delay", "must be at least initial",
                    max_delay);
  }
  friend constexpr bool operator==(const linear&, const linear&) noexcept = default;
};

/// initial * multiplier^(n-1), capped at max_delay.
/// Defaults: initial 100 ms and multiplier 2 as gRPC A6's example retry policy (.1 s, x2); cap
/// 20 s, the maximum delay of the AWS SDKs' standard retry strategy.
struct exponential {
  duration initial = std::chrono::milliseconds(100);
  double multiplier = 2.0;
  duration max_delay = std::chrono::seconds(20);

  constexpr duration delay(int retry_number) const noexcept {
    if (retry_number <= 1 || initial <= duration::zero()) return std::min(initial, max_delay);
    const double initial_ns = static_cast<double>(initial.count());
    const double growth = detail::power_up_to(multiplier, retry_number - 1,
                                              static_cast<double>(max_delay.count()) / initial_ns);
    return detail::saturate(initial_ns * growth, max_delay);
  }
  constexpr void validate() const {
    detail::require(initial >= duration::zero(), "exponential", "initial", "must not be negative",
                    initial);
    detail::require(multiplier >= 1.0 && multiplier <= 1000.0, "exponential", "multiplier",
                    "must be between 1 and 1000", multiplier);
    detail::require(max_delay >= initial, "exponential", "max_delay", "must be at least initial",
                    max_delay);
  }
  friend constexpr bool operator==(const exponential&, const exponential&) noexcept = default;
};

/// One of the built-in schedules, chosen at run time: what policies' options hold by default, so
/// `.backoff = stockade::exponential{...}` or `.backoff = stockade::constant{...}` needs no
/// template argument. A user-defined schedule goes in as the policy's Backoff template argument.
class backoff_schedule {
 public:
  enum class kind : std::uint8_t { constant, linear, exponential };

  constexpr backoff_schedule() noexcept : backoff_schedule(stockade::exponential{}) {}
  constexpr backoff_schedule(stockade::constant s) noexcept  // NOLINT: implicit by design
      : kind_(kind::constant), initial_(s.interval), max_delay_(s.interval) {}
  constexpr backoff_schedule(stockade::linear s) noexcept  // NOLINT: implicit by design
      : kind_(kind::linear), initial_(s.initial), step_(s.increment), max_delay_(s.max_delay) {}
  constexpr backoff_schedule(stockade::exponential s) noexcept  // NOLINT: implicit by design
      : kind_(kind::exponential),
        initial_(s.initial),
        multiplier_(s.multiplier),
        max_delay_(s.max_delay) {}

  constexpr duration delay(int retry_number) const noexcept {
    switch (kind_) {
      case kind::constant:
        return as_constant().delay(retry_number);
      case kind::linear:
        return as_linear().delay(retry_number);
      case kind::exponential:
        break;
    }
    return as_exponential().delay(retry_number);
  }

  constexpr void validate() const {
    switch (kind_) {
      case kind::constant:
        return as_constant().validate();
      case kind::linear:
        return as_linear().validate();
      case kind::exponential:
        return as_exponential().validate();
    }
  }

  constexpr kind which() const noexcept { return kind_; }
  /// The largest delay the schedule can give (for worst-case analysis of a stack).
  constexpr duration max_delay() const noexcept { return max_delay_; }

  constexpr stockade::constant as_constant() const noexcept { return {initial_}; }
  constexpr stockade::linear as_linear() const noexcept { return {initial_, step_, max_delay_}; }
  constexpr stockade::exponential as_exponential() const noexcept {
    return {initial_, multiplier_, max_delay_};
  }

  friend constexpr bool operator==(const backoff_schedule&,
                                   const backoff_schedule&) noexcept = default;

 private:
  kind kind_;
  duration initial_{};
  duration step_{};
  double multiplier_ = 1.0;
  duration max_delay_{};
};

/// How a computed delay is spread so that clients that failed together do not retry together.
/// The names and formulas follow the AWS Architecture Blog note "Exponential Backoff And Jitter"
/// (M. Brooker, 2015); `proportional` is gRPC's ±20% connection-backoff jitter.
enum class jitter_kind : std::uint8_t {
  none,          ///< d
  full,          ///< uniform in [0, d]
  equal,         ///< d/2 + uniform in [0, d/2]
  decorrelated,  ///< uniform in [base, 3 * previous] (base = first delay), then capped
  proportional,  ///< d * uniform in [1 - spread, 1 + spread], then capped
};

constexpr const char* to_string(jitter_kind kind) noexcept {
  switch (kind) {
    case jitter_kind::none:
      return "none";
    case jitter_kind::full:
      return "full";
    case jitter_kind::equal:
      return "equal";
    case jitter_kind::decorrelated:
      return "decorrelated";
    case jitter_kind::proportional:
      return "proportional";
  }
  return "unknown";
}

/// A jitter choice: `jitter::full()`, `jitter::proportional(0.2)`, ... Usable in constexpr
/// configurations; `apply` draws from a random source (see random.hpp).
struct jitter {
  jitter_kind kind = jitter_kind::none;
  double spread = 0.0;  ///< proportional only: 0.2 means ±20%

  static constexpr jitter none() noexcept { return {jitter_kind::none, 0.0}; }
  static constexpr jitter full() noexcept { return {jitter_kind::full, 0.0}; }
  static constexpr jitter equal() noexcept { return {jitter_kind::equal, 0.0}; }
  static constexpr jitter decorrelated() noexcept { return {jitter_kind::decorrelated, 0.0}; }
  /// Default ±20%: gRPC's connection backoff (JITTER = 0.2, i.e. 0.8 to 1.2 times the delay).
  static constexpr jitter proportional(double spread_fraction = 0.2) noexcept {
    return {jitter_kind::proportional, spread_fraction};
  }

  constexpr void validate() const {
    if (kind == jitter_kind::proportional) {
      detail::require(spread >= 0.0 && spread <= 1.0, "jitter", "spread", "must be between 0 and 1",
                      spread);
    }
  }

  /// The delay to wait, from `computed` (the schedule's delay for this retry), `base` (the
  /// schedule's first delay, decorrelated only) and `previous` (the last delay this call
  /// actually waited, zero before the first; decorrelated only). The result is in [0, cap].
  template <random_source R>
  duration apply(duration computed, duration base, duration previous, duration cap,
                 R& random) const {
    cap = std::max(cap, duration::zero());
    computed = std::clamp(computed, duration::zero(), cap);
    switch (kind) {
      case jitter_kind::none:
        return computed;
      case jitter_kind::full:
        return between(duration::zero(), computed, random);
      case jitter_kind::equal: {
        const duration half = computed / 2;
        return half + between(duration::zero(), computed - half, random);
      }
      case jitter_kind::decorrelated: {
        const duration low = std::clamp(base, duration::zero(), cap);
        const duration last = previous > duration::zero() ? previous : low;
        const duration high =
            last > duration::max() / 3 ? duration::max() : std::max(low, last * 3);
        return std::min(between(low, high, random), cap);
      }
      case jitter_kind::proportional: {
        const double factor = 1.0 - spread + 2.0 * spread * uniform_unit(random);
        return detail::saturate(static_cast<double>(computed.count()) * factor, cap);
      }
    }
    return computed;
  }

  friend constexpr bool operator==(const jitter&, const jitter&) noexcept = default;

 private:
  /// Uniform in [low, high] (to within the 53-bit resolution of a double).
  template <random_source R>
  static duration between(duration low, duration high, R& random) {
    if (high <= low) return low;
    const double span = static_cast<double>(high.count()) - static_cast<double>(low.count());
    const double offset = span * uniform_unit(random);
    return std::min(high, low + detail::saturate(offset, high - low));
  }
};

/// The wait before retry `retry_number` of `schedule`, jittered and capped: the one function the
/// policies call. `previous` is the delay the caller last waited (zero before the first retry).
/// One cap for every jitter kind, as in the AWS note's min(cap, ...): the schedule's own
/// (schedule_cap), and `cap` (a policy's own limit, e.g. retry's max_delay) if lower.
template <backoff B, random_source R>
duration jittered_delay(const B& schedule, const jitter& spread, int retry_number,
                        duration previous, duration cap, R& random) {
  const duration computed = schedule.delay(retry_number);
  const duration base =
      spread.kind == jitter_kind::decorrelated ? schedule.delay(1) : duration::zero();
  return spread.apply(computed, base, previous, std::min(cap, detail::schedule_cap(schedule)),
                      random);
}

static_assert(backoff<constant> && backoff<linear> && backoff<exponential> &&
              backoff<backoff_schedule>);

}  // namespace stockade
