// When a circuit breaker opens: the trip strategies, each a type with its own options.
// consecutive_failures, count_window (last N calls), time_window (last T of time), and
// slow_calls<count_window | time_window> (adds a slow-call ratio to the failure ratio).
// Invariant: record() runs on every closed-state call, so it takes no lock and allocates
// nothing; only a failed or slow call can make it return true ("open now").
#pragma once

#include <atomic>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>

#include "clock.hpp"
#include "detail/count_window.hpp"
#include "detail/time_window.hpp"
#include "detail/validate.hpp"
#include "detail/window_tally.hpp"

namespace stockade {

/// One finished call, as the breaker reports it to its strategy. `elapsed` is measured only for
/// strategies that declare `measures_duration`, `finished` only for those that declare
/// `reads_time` or `measures_duration`.
struct call_record {
  bool failed = false;
  duration elapsed{0};
  time_point finished{};
};

/// What a strategy's window holds now (for metrics): calls, failures and slow calls counted.
using window_counts = detail::window_tally;

namespace detail {
/// A window's failure ratio alone decides (count_window and time_window on their own).
struct no_other_ratio {
  constexpr bool operator()(const window_counts& /*unused*/) const noexcept { return false; }
};
}  // namespace detail

/// What a trip strategy must provide. The breaker owns one, calls record() for each counted
/// closed-state call (from many threads at once) and clear() when it closes again.
template <class T>
concept trip_strategy = requires {
  typename T::options;
}
&&std::constructible_from<T, const typename T::options&>&& requires(
    T& strategy, const T& held, const call_record& call, time_point at,
    const typename T::options& config) {
  { T::measures_duration } -> std::convertible_to<bool>;
  { T::reads_time } -> std::convertible_to<bool>;
  { strategy.record(call) } -> std::same_as<bool>;  // true: open the breaker now
  strategy.clear();
  { held.counts(at) } -> std::same_as<window_counts>;
  { held.is_slow(duration{}) } -> std::same_as<bool>;
  { held.config() } -> std::same_as<const typename T::options&>;
  config.validate();
};

/// Opens after `threshold` failures in a row; any success starts the count again.
/// The cheapest strategy (one atomic counter; a success that follows a success writes nothing)
/// and the easiest to reason about; right for low or uneven traffic, where a ratio over a
/// window would wait long for its minimum number of calls.
class consecutive_failures {
 public:
  static constexpr const char* name = "consecutive failures";  ///< for describe()
  struct options {
    /// Default 5: gobreaker's default ReadyToTrip opens on more than 5 consecutive failures;
    /// we open on the 5th, a round number that rides out a short burst.
    std::size_t threshold = 5;

    constexpr void validate() const {
      detail::require(threshold >= 1, "consecutive_failures", "threshold", "must be at least 1",
                      threshold);
    }
  };

  static constexpr bool measures_duration = false;
  static constexpr bool reads_time = false;

  explicit consecutive_failures(const options& config) : options_(config) { config.validate(); }

  bool record(const call_record& call) noexcept {
    if (!call.failed) {
      if (streak_.load(std::memory_order_relaxed) != 0) {
        streak_.store(0, std::memory_order_relaxed);
      }
      return false;
    }
    return streak_.fetch_add(1, std::memory_order_relaxed) + 1 >= options_.threshold;
  }
  void clear() noexcept { streak_.store(0, std::memory_order_relaxed); }
  /// The current run of failures (calls and failures both count it).
  window_counts counts(time_point /*at*/) const noexcept {
    const std::uint64_t streak = streak_.load(std::memory_order_relaxed);
    return {streak, streak, 0};
  }
  bool is_slow(duration /*elapsed*/) const noexcept { return false; }
  const options& config() const noexcept { return options_; }

 private:
  options options_;
  alignas(64) std::atomic<std::uint64_t> streak_{0};
};

/// Opens when, over the last `size` calls, failures reach `failure_ratio` of the calls and at
/// least `minimum_calls` were made. Defaults as resilience4j's count-based sliding window
/// (slidingWindowSize 100, minimumNumberOfCalls 100, failureRateThreshold 50%): a decision on
/// a full window of 100 calls, at a ratio no healthy dependency comes near.
class count_window {
 public:
  static constexpr const char* name = "failure ratio over a count window";  ///< for describe()
  static constexpr const char* slow_calls_name = "failure and slow-call ratios over a count window";
  struct options {
    std::size_t size = 100;
    double failure_ratio = 0.5;
    std::size_t minimum_calls = 100;

    constexpr void validate() const {
      detail::require(size >= 1 && size <= detail::count_ring::max_size, "count_window", "size",
                      "must be between 1 and 1000000", size);
      detail::require(failure_ratio > 0.0 && failure_ratio <= 1.0, "count_window", "failure_ratio",
                      "must be in (0, 1]", failure_ratio);
      detail::require(minimum_calls >= 1 && minimum_calls <= size, "count_window", "minimum_calls",
                      "must be between 1 and size", minimum_calls);
    }
  };

  static constexpr bool measures_duration = false;
  static constexpr bool reads_time = false;

  explicit count_window(const options& config)
      : options_((config.validate(), config)), ring_(config.size) {}

  bool record(const call_record& call) noexcept {
    return record_with(call, false, detail::no_other_ratio{});
  }
  /// Records a call that may also be slow; true when the failure ratio, or `also_opens` of
  /// the counts (slow_calls adds its ratio), says "open now". Only a failed or slow call can.
  template <class AlsoOpens>
  bool record_with(const call_record& call, bool slow, const AlsoOpens& also_opens) noexcept {
    window_counts after;
    const bool changed = ring_.record(call.failed, slow, after);
    return (call.failed || slow) && opens(changed, after, also_opens);
  }
  void clear() noexcept { ring_.clear(); }
  window_counts counts(time_point /*at*/) const noexcept { return ring_.tally(); }
  bool is_slow(duration /*elapsed*/) const noexcept { return false; }
  const options& config() const noexcept { return options_; }

 private:
  template <class AlsoOpens>
  [[gnu::noinline]] bool opens(bool changed, window_counts after,
                               const AlsoOpens& also_opens) const noexcept {
    if (!changed) after = ring_.tally();
    return after.calls >= options_.minimum_calls &&
           (detail::ratio_reached(after.failures, after.calls, options_.failure_ratio) ||
            also_opens(after));
  }

  options options_;
  detail::count_ring ring_;
};

/// Opens when, over the last `length` of time, failures reach `failure_ratio` of the calls and
/// at least `minimum_calls` were made. The window moves in `buckets` steps (length / buckets).
/// Defaults: length 30 s and minimum_calls 100 as Polly v8 (SamplingDuration, MinimumThroughput);
/// failure_ratio 0.5 as resilience4j and Hystrix (Polly's 0.1 opens on a failure rate that many
/// healthy dependencies reach under load); 10 buckets as Hystrix's rolling statistics.
/// Pick it over count_window when traffic varies a lot: old failures expire by age.
class time_window {
 public:
  static constexpr const char* name = "failure ratio over a time window";  ///< for describe()
  static constexpr const char* slow_calls_name = "failure and slow-call ratios over a time window";
  struct options {
    duration length = std::chrono::seconds(30);
    std::size_t buckets = 10;
    double failure_ratio = 0.5;
    std::size_t minimum_calls = 100;

    constexpr void validate() const {
      detail::require(buckets >= 1 && buckets <= 10'000, "time_window", "buckets",
                      "must be between 1 and 10000", buckets);
      detail::require(length >= std::chrono::microseconds(1) * static_cast<duration::rep>(buckets),
                      "time_window", "length", "must give each bucket at least 1 us", length);
      detail::require(failure_ratio > 0.0 && failure_ratio <= 1.0, "time_window", "failure_ratio",
                      "must be in (0, 1]", failure_ratio);
      detail::require(minimum_calls >= 1, "time_window", "minimum_calls", "must be at least 1",
                      minimum_calls);
    }
  };

  static constexpr bool measures_duration = false;
  static constexpr bool reads_time = true;

  explicit time_window(const options& config)
      : options_((config.validate(), config)), buckets_(config.length, config.buckets) {}

  bool record(const call_record& call) {
    return record_with(call, false, detail::no_other_ratio{});
  }
  /// As count_window::record_with.
  template <class AlsoOpens>
  bool record_with(const call_record& call, bool slow, const AlsoOpens& also_opens) {
    if (!buckets_.record(call.finished, call.failed, slow) || (!call.failed && !slow)) {
      return false;
    }
    const window_counts now = buckets_.tally(call.finished);
    return now.calls >= options_.minimum_calls &&
           (detail::ratio_reached(now.failures, now.calls, options_.failure_ratio) ||
            also_opens(now));
  }
  void clear() { buckets_.clear(); }
  window_counts counts(time_point at) const noexcept { return buckets_.tally(at); }
  bool is_slow(duration /*elapsed*/) const noexcept { return false; }
  const options& config() const noexcept { return options_; }

 private:
  options options_;
  detail::time_buckets buckets_;
};

namespace detail {
inline constexpr void validate_slow_call_limits(duration slow_call_duration,
                                                double slow_call_ratio) {
  require(slow_call_duration > duration::zero(), "slow_calls", "slow_call_duration",
          "must be positive", slow_call_duration);
  require(slow_call_ratio > 0.0 && slow_call_ratio <= 1.0, "slow_calls", "slow_call_ratio",
          "must be in (0, 1]", slow_call_ratio);
}
}  // namespace detail

/// The options of slow_calls<Window>: the window's own fields and the slow-call limits, side by
/// side, so they read as one list in a designated initializer. Slow-call defaults as
/// resilience4j (slowCallDurationThreshold 60 s, slowCallRateThreshold 100%), the only anchor
/// with slow calls.
template <class Window>
struct slow_call_options;

template <>
struct slow_call_options<count_window> {
  std::size_t size = 100;
  double failure_ratio = 0.5;
  std::size_t minimum_calls = 100;
  duration slow_call_duration = std::chrono::seconds(60);
  double slow_call_ratio = 1.0;

  constexpr count_window::options window() const { return {size, failure_ratio, minimum_calls}; }
  constexpr void validate() const {
    window().validate();
    detail::validate_slow_call_limits(slow_call_duration, slow_call_ratio);
  }
};

template <>
struct slow_call_options<time_window> {
  duration length = std::chrono::seconds(30);
  std::size_t buckets = 10;
  double failure_ratio = 0.5;
  std::size_t minimum_calls = 100;
  duration slow_call_duration = std::chrono::seconds(60);
  double slow_call_ratio = 1.0;

  constexpr time_window::options window() const {
    return {length, buckets, failure_ratio, minimum_calls};
  }
  constexpr void validate() const {
    window().validate();
    detail::validate_slow_call_limits(slow_call_duration, slow_call_ratio);
  }
};

/// A window strategy that also opens when slow calls (longer than `slow_call_duration`, success
/// or not) reach `slow_call_ratio` of the calls: slow_calls<count_window>,
/// slow_calls<time_window>. Either ratio opens the breaker. The breaker reads the clock once
/// more per call (after the callee) only with these strategies.
template <class Window>
class slow_calls {
 public:
  static constexpr const char* name = Window::slow_calls_name;  ///< for describe()
  using options = slow_call_options<Window>;

  static constexpr bool measures_duration = true;
  static constexpr bool reads_time = Window::reads_time;

  explicit slow_calls(const options& config)
      : options_((config.validate(), config)), window_(config.window()) {}

  bool record(const call_record& call) {
    return window_.record_with(call, is_slow(call.elapsed), [this](const window_counts& now) {
      return detail::ratio_reached(now.slow_calls, now.calls, options_.slow_call_ratio);
    });
  }
  void clear() { window_.clear(); }
  window_counts counts(time_point at) const noexcept { return window_.counts(at); }
  /// Strictly longer than the threshold is slow; exactly at it is not.
  bool is_slow(duration elapsed) const noexcept { return elapsed > options_.slow_call_duration; }
  const options& config() const noexcept { return options_; }

 private:
  options options_;
  Window window_;
};

static_assert(trip_strategy<consecutive_failures> && trip_strategy<count_window> &&
              trip_strategy<time_window> && trip_strategy<slow_calls<count_window>> &&
              trip_strategy<slow_calls<time_window>>);

}  // namespace stockade
