// Fault injection: a policy that fails calls on purpose (an exception, an error result, added
// latency), by probability or on a schedule, so a test can watch the rest of a stack react.
// Invariant: whether call n gets fault i is a pure function of (seed, i, n, the context's clock),
// so a seed replays a run exactly; disabled, the policy costs one relaxed load and nothing else.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

#include "bounds.hpp"
#include "classifier.hpp"
#include "clock.hpp"
#include "context.hpp"
#include "detail/saturating.hpp"
#include "detail/validate.hpp"
#include "detail/with_context.hpp"
#include "errors.hpp"
#include "events.hpp"
#include "random.hpp"
#include "result.hpp"
#include "verdict.hpp"

namespace stockade {

/// What a fault does to a call.
enum class fault_kind : std::uint8_t {
  exception,  ///< the call throws the factory's exception; the callee does not run
  result,     ///< the call returns the factory's value; the callee does not run
  latency,    ///< the call waits first (bounded by the deadline), then goes on
};
inline constexpr std::size_t fault_kind_count = 3;

constexpr const char* to_string(fault_kind kind) noexcept {
  switch (kind) {
    case fault_kind::exception:
      return "exception";
    case fault_kind::result:
      return "result";
    case fault_kind::latency:
      return "latency";
  }
  return "unknown";
}

/// max_injections without a limit.
inline constexpr std::uint64_t unlimited_injections = std::numeric_limits<std::uint64_t>::max();

/// When a fault fires: on a call that meets every condition below. Each default is the condition
/// that always holds, so a default trigger fires on every call and each field narrows it.
struct fault_trigger {
  /// Chance per call, in [0, 1], drawn from the injector's seed. 1 (always) rather than Polly's
  /// 0.001: Polly's default is for chaos in production traffic; here a fault a test configured
  /// fires unless the test asks for randomness.
  double probability = 1.0;
  /// Only calls N, 2N, 3N... of this injector (numbered from 1 since construction or reset()).
  std::uint64_t every_nth = 1;
  /// Only calls that start in [from, until) on the context's clock.
  time_point from = time_point::min();
  time_point until = time_point::max();
  /// Stops firing after this many injections (e.g. "fail the first two calls").
  std::uint64_t max_injections = unlimited_injections;
};

/// The exception an inject_exception without a factory throws.
struct injected_fault_error {
  error operator()() const { return error(errc::injected_fault); }
};

namespace detail {

template <class F>
concept fault_factory = takes_context_or_not<const F&>;

template <fault_factory F>
using factory_result_t = std::remove_cvref_t<result_with_context_t<const F&>>;

/// until - from without overflow (only for the message of a refused window).
constexpr duration window_length(time_point from, time_point until) noexcept {
  using rep = duration::rep;
  const rep start = from.time_since_epoch().count();
  const rep end = until.time_since_epoch().count();
  if (end >= start) {
    return start < 0 && end > std::numeric_limits<rep>::max() + start ? duration::max()
                                                                      : duration{end - start};
  }
  return start > 0 && end < std::numeric_limits<rep>::min() + start ? duration::min()
                                                                    : duration{end - start};
}

}  // namespace detail

/// Throws what `make()` (or `make(ctx)`) returns, as that exact type; a returned
/// std::exception_ptr is rethrown. The callee does not run.
template <class Factory = injected_fault_error>
struct inject_exception {
  static_assert(detail::fault_factory<Factory>,
                "inject_exception: the factory must be callable as make() or make(context&)");
  static_assert(!std::is_void_v<detail::factory_result_t<Factory>>,
                "inject_exception: the factory must return the exception to throw");
  static constexpr fault_kind kind = fault_kind::exception;
  fault_trigger when{};
  Factory make{};
};
inject_exception()->inject_exception<>;
inject_exception(fault_trigger)->inject_exception<>;
template <class Factory>
inject_exception(fault_trigger, Factory) -> inject_exception<Factory>;

/// Returns what `make()` (or `make(ctx)`) returns instead of calling the callee, classified by
/// the pipeline's classifier. Only on pipelines whose callee returns exactly that type (as a
/// policy sees it: void_result for void); on others this fault never fires.
template <class Factory>
struct inject_result {
  static_assert(detail::fault_factory<Factory>,
                "inject_result: the factory must be callable as make() or make(context&)");
  static constexpr fault_kind kind = fault_kind::result;
  fault_trigger when{};
  Factory make;
};
template <class Factory>
inject_result(fault_trigger, Factory) -> inject_result<Factory>;

/// Waits `delay` through the context (a manual clock makes it instant), then lets the call go on.
/// A wait cut short by the deadline fails the attempt with errc::timeout, by the caller's stop
/// token with errc::cancelled: the callee never runs late.
struct inject_latency {
  static constexpr fault_kind kind = fault_kind::latency;
  fault_trigger when{};
  duration delay = std::chrono::seconds(30);  ///< Polly's ChaosLatency default (30 s)
};

/// What an injector holds: inject_exception, inject_result or inject_latency (or a type like them).
template <class F>
concept fault = requires(const F& f) {
  { F::kind } -> std::convertible_to<fault_kind>;
  { f.when } -> std::convertible_to<const fault_trigger&>;
};

/// Reported each time a fault is injected, before it takes effect.
struct fault_injected {
  static constexpr event_kind kind = event_kind::fault_injected;
  fault_kind fault;       ///< what was injected
  std::size_t position;   ///< which fault: its place in the injector's list, from 0
  std::uint64_t call;     ///< the injector's call number, from 1; with the seed, replays the run
  std::uint64_t seed;     ///< the injector's seed
  duration delay;         ///< latency: the wait asked for; zero for other faults
  int attempt;            ///< ctx.attempt()
  std::string_view name;  ///< ctx.name()
};

/// A fixed default so that a run is replayable without choosing a seed; pick another (and log
/// it) to vary the faults between runs.
inline constexpr std::uint64_t default_fault_seed = 0x5eed;

struct fault_injection_options {
  /// Whether the injector starts enabled (set_enabled() changes it later). Polly: Enabled = true.
  bool enabled = true;
  /// Every probability draw derives from it: same seed, same calls, same faults.
  std::uint64_t seed = default_fault_seed;
};

/// Shared state (counters, the enabled flag): own one per test or dependency and stack it with
/// std::ref. Faults are tried in the order given; latency faults wait and go on, and the first
/// exception or result fault that fires ends the call.
///
///   stockade::fault_injector chaos{{.seed = 42},
///       stockade::inject_latency{{.every_nth = 4}, 300ms},
///       stockade::inject_exception{{.probability = 0.1}, [] { return db_error("chaos"); }}};
///   auto policy = stockade::pipeline{retry{...}, std::ref(chaos)};
///
/// An observer (events.hpp) may come second: fault_injector chaos{{}, observer_ref{stats}, ...}.
template <class Observer, class... Faults>
requires(fault<Faults>&&...) class fault_injector {
 public:
  static constexpr std::size_t fault_count = sizeof...(Faults);

  constexpr explicit fault_injector(fault_injection_options options,
                                    Faults... faults) requires std::default_initializable<Observer>
      : fault_injector(options, Observer{}, std::move(faults)...) {}

  // type_identity: the deduction guides below, not this constructor, decide what an argument
  // is (clang 14 drops a constructor's constraints from the guide it makes of it).
  constexpr fault_injector(fault_injection_options options, std::type_identity_t<Observer> observer,
                           Faults... faults) requires(!fault<Observer>)
      : options_(options),
        enabled_(options.enabled),
        observer_(std::move(observer)),
        faults_(std::move(faults)...) {
    std::apply([](const Faults&... each) { (validate(each), ...); }, faults_);
  }

  fault_injector(const fault_injector&) = delete;
  fault_injector& operator=(const fault_injector&) = delete;

  template <class Next>
  auto invoke(context& ctx, Next&& next) {
    if constexpr (fault_count == 0) {
      return std::forward<Next>(next)(ctx);  // compiled out: not even the flag is read
    } else {
      if (!enabled_.load(std::memory_order_relaxed)) return std::forward<Next>(next)(ctx);
      const std::uint64_t call = calls_.fetch_add(1, std::memory_order_relaxed) + 1;
      return try_fault<0>(ctx, std::forward<Next>(next), call);
    }
  }

  bool enabled() const noexcept { return enabled_.load(std::memory_order_relaxed); }
  /// Calls that start after this see the new value.
  void set_enabled(bool on) noexcept { enabled_.store(on, std::memory_order_relaxed); }

  /// Calls made while enabled (the last call number handed out).
  std::uint64_t calls_seen() const noexcept { return calls_.load(std::memory_order_relaxed); }
  std::uint64_t injected(fault_kind kind) const noexcept {
    return by_kind_[static_cast<std::size_t>(kind)].load(std::memory_order_relaxed);
  }
  std::uint64_t injected() const noexcept {
    std::uint64_t total = 0;
    for (const auto& count : by_kind_) total += count.load(std::memory_order_relaxed);
    return total;
  }
  /// Injections of the fault at `position` in the list (0 for a position out of range).
  std::uint64_t injected_at(std::size_t position) const noexcept {
    return position < fault_count ? by_fault_[position].load(std::memory_order_relaxed) : 0;
  }

  /// Zeroes the counters and numbers calls from 1 again, so the same calls replay the same
  /// faults. Call it between runs, not while calls are in flight.
  void reset() noexcept {
    calls_.store(0, std::memory_order_relaxed);
    for (auto& count : by_kind_) count.store(0, std::memory_order_relaxed);
    for (auto& count : by_fault_) count.store(0, std::memory_order_relaxed);
  }

  constexpr const fault_injection_options& options() const noexcept { return options_; }
  constexpr const std::tuple<Faults...>& faults() const noexcept { return faults_; }

  /// Adds every latency fault's delay (each may fire on the same call).
  constexpr stack_bounds worst_case(const stack_bounds& inner) const noexcept {
    duration added{};
    std::apply(
        [&](const Faults&... each) {
          ((added = detail::saturating_sum(added, latency_of(each))), ...);
        },
        faults_);
    return {inner.attempts, inner.elapsed + added};
  }
  std::string describe() const {
    return "fault_injection: " + std::to_string(fault_count) + " fault(s), seed " +
           std::to_string(options_.seed) + (enabled() ? ", enabled" : ", disabled");
  }

 private:
  template <class F>
  static constexpr duration latency_of(const F& f) noexcept {
    if constexpr (F::kind == fault_kind::latency) {
      return f.delay;
    } else {
      return duration::zero();
    }
  }

  template <std::size_t I, class Next>
  std::invoke_result_t<Next&, context&> try_fault(context& ctx, Next&& next, std::uint64_t call) {
    if constexpr (I == fault_count) {
      return std::forward<Next>(next)(ctx);
    } else {
      using result_type = std::invoke_result_t<Next&, context&>;
      using F = std::tuple_element_t<I, std::tuple<Faults...>>;
      const F& f = std::get<I>(faults_);
      using value_type = typename result_type::value_type;
      if constexpr (F::kind == fault_kind::latency) {
        if (fires<I>(f.when, ctx, call) && !add_latency(ctx, f.delay, I, call)) {
          // A dependency this slow would have run out of time (or been cancelled): fail the
          // attempt rather than run the callee after its deadline.
          return result_type::raised(call_error(
              ctx.caller_stop_token().stop_requested() ? errc::cancelled : errc::timeout));
        }
      } else if constexpr (F::kind == fault_kind::exception) {
        if (fires<I>(f.when, ctx, call))
          return exception_fault<result_type>(ctx, next, f.make, I, call);
      } else if constexpr (std::same_as<detail::factory_result_t<decltype(f.make)>, value_type>) {
        if (fires<I>(f.when, ctx, call))
          return result_fault<result_type>(ctx, next, f.make, I, call);
      }
      return try_fault<I + 1>(ctx, std::forward<Next>(next), call);
    }
  }

  template <std::size_t I>
  bool fires(const fault_trigger& when, context& ctx, std::uint64_t call) {
    if (when.every_nth != 1 && call % when.every_nth != 0) return false;
    if (when.from != time_point::min() || when.until != time_point::max()) {
      const time_point now = ctx.now();
      if (now < when.from || now >= when.until) return false;
    }
    if (when.probability < 1.0) {
      if (!(when.probability > 0.0) || !(draw(I, call) < when.probability)) return false;
    }
    return claim(by_fault_[I], when.max_injections);
  }

  /// Call `call` of fault `position` draws the first number of a seeded_random keyed by both, so
  /// the draw does not depend on which thread makes the call or on the other faults.
  double draw(std::size_t position, std::uint64_t call) const noexcept {
    constexpr std::uint64_t call_stride = 0x9e3779b97f4a7c15ULL;      // 2^64 / golden ratio
    constexpr std::uint64_t position_stride = 0xd1b54a32d192ed03ULL;  // another odd constant
    seeded_random source{options_.seed + (position + 1) * position_stride + call * call_stride};
    return uniform_unit(source);
  }

  static bool claim(std::atomic<std::uint64_t>& count, std::uint64_t limit) noexcept {
    if (limit == unlimited_injections) {
      count.fetch_add(1, std::memory_order_relaxed);
      return true;
    }
    std::uint64_t seen = count.load(std::memory_order_relaxed);
    do {
      if (seen >= limit) return false;
    } while (!count.compare_exchange_weak(seen, seen + 1, std::memory_order_relaxed));
    return true;
  }

  void report(context& ctx, fault_kind kind, std::size_t position, std::uint64_t call,
              duration delay) {
    by_kind_[static_cast<std::size_t>(kind)].fetch_add(1, std::memory_order_relaxed);
    detail::notify(observer_, fault_injected{kind, position, call, options_.seed, delay,
                                             ctx.attempt(), ctx.name()});
  }

  /// True if the whole delay passed (not cut by the deadline or a stop).
  bool add_latency(context& ctx, duration delay, std::size_t position, std::uint64_t call) {
    report(ctx, fault_kind::latency, position, call, delay);
    return ctx.sleep_for(delay);
  }

  /// Fails the attempt as the callee would have: with the exception the factory makes,
  /// classified by the pipeline's classifier (as the pipeline does for a callee's exception).
  template <class Result, class Next, class Factory>
  Result exception_fault(context& ctx, const Next& next, const Factory& make, std::size_t position,
                         std::uint64_t call) {
    report(ctx, fault_kind::exception, position, call, duration::zero());
    std::exception_ptr thrown;
    try {
      if constexpr (std::same_as<detail::factory_result_t<Factory>, std::exception_ptr>) {
        thrown = detail::call_with_context(make, ctx);
      } else {
        thrown = std::make_exception_ptr(detail::call_with_context(make, ctx));
      }
    } catch (...) {
      thrown = std::current_exception();  // a factory that throws fails the attempt with that
    }
    const outcome classified = next.classify_exception(thrown);
    return Result(call_error(std::move(thrown)), classified);
  }

  template <class Result, class Next, class Factory>
  Result result_fault(context& ctx, const Next& next, const Factory& make, std::size_t position,
                      std::uint64_t call) {
    report(ctx, fault_kind::result, position, call, duration::zero());
    using value_type = typename Result::value_type;
    return Result(
        detail::from_call_t{},
        [&]() -> decltype(auto) { return detail::call_with_context(make, ctx); },
        [&](const value_type& value) { return next.classify_result(value); });
  }

  template <class F>
  static constexpr void validate(const F& f) {
    constexpr auto names = field_names(F::kind);
    const fault_trigger& when = f.when;
    detail::require(when.probability >= 0.0 && when.probability <= 1.0, "fault_injection",
                    names.probability, "must be in [0, 1]", when.probability);
    detail::require(when.every_nth >= 1, "fault_injection", names.every_nth, "must be at least 1",
                    when.every_nth);
    detail::require(when.from < when.until, "fault_injection", names.until,
                    "must be later than when.from (the value is until - from)",
                    detail::window_length(when.from, when.until));
    detail::require(when.max_injections >= 1, "fault_injection", names.max_injections,
                    "must be at least 1", when.max_injections);
    if constexpr (F::kind == fault_kind::latency) {
      detail::require(f.delay > duration::zero(), "fault_injection", "inject_latency.delay",
                      "must be positive", f.delay);
    }
  }

  struct trigger_field_names {
    const char* probability;
    const char* every_nth;
    const char* until;
    const char* max_injections;
  };
  static constexpr trigger_field_names field_names(fault_kind kind) noexcept {
    switch (kind) {
      case fault_kind::exception:
        return {"inject_exception.when.probability", "inject_exception.when.every_nth",
                "inject_exception.when.until", "inject_exception.when.max_injections"};
      case fault_kind::result:
        return {"inject_result.when.probability", "inject_result.when.every_nth",
                "inject_result.when.until", "inject_result.when.max_injections"};
      case fault_kind::latency:
        break;
    }
    return {"inject_latency.when.probability", "inject_latency.when.every_nth",
            "inject_latency.when.until", "inject_latency.when.max_injections"};
  }

  fault_injection_options options_;
  std::atomic<bool> enabled_;
  std::atomic<std::uint64_t> calls_{0};
  std::array<std::atomic<std::uint64_t>, fault_kind_count> by_kind_{};
  std::array<std::atomic<std::uint64_t>, fault_count> by_fault_{};
  [[no_unique_address]] Observer observer_;
  std::tuple<Faults...> faults_;
};

template <class... Faults>
requires(fault<Faults>&&...) fault_injector(fault_injection_options, Faults...)
->fault_injector<null_observer, Faults...>;

template <class Observer, class... Faults>
requires(!fault<Observer> && (fault<Faults> && ...))
    fault_injector(fault_injection_options, Observer, Faults...)
->fault_injector<Observer, Faults...>;

}  // namespace stockade
