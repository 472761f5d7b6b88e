// Warm-up gate: holds calls until a warm-up action (connect, verify, fill a cache) has succeeded.
// One caller runs it (single flight), the others wait, each bounded by its own deadline; a failure
// cools down with backoff; reset(generation) re-arms the gate once per generation.
// Invariants: state_ is (generation << 1 | ready). Only a warm-up of the current generation sets
// ready, and only reset() moves the generation, so the ready path is one atomic load. A warm-up
// is shared work: bounded by its own warmup_timeout, never by the deadline of the caller that
// happened to start it, and its result is recorded when it ends, whoever still waits for it.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "backoff.hpp"
#include "bounds.hpp"
#include "clock.hpp"
#include "context.hpp"
#include "detail/describe_text.hpp"
#include "detail/duration_text.hpp"
#include "detail/parts.hpp"
#include "detail/reset_on_fatal.hpp"
#include "detail/validate.hpp"
#include "detail/with_context.hpp"
#include "errors.hpp"
#include "events.hpp"
#include "random.hpp"
#include "result.hpp"
#include "runtime.hpp"
#include "single_flight.hpp"
#include "verdict.hpp"

namespace stockade {

struct warmup_gate_options {
  /// The warm-up's own time limit: the deadline of the context it runs with. It is not bounded
  /// by the deadline or stop token of the caller that runs it (its leader), because the others
  /// wait for it too: work cut short by one caller's give-up would fail for all, and a warm-up
  /// longer than every caller's deadline would never finish. So the leader may return up to
  /// warmup_timeout after its own deadline; every other caller waits no longer than its own.
  /// The action should honour it (ctx.remaining()); one that returns later without failing
  /// still opens the gate, since it did its work (a late health probe, by contrast, counts as
  /// unhealthy: its latency is part of its answer). Default 20 s: gRPC's minimum connect timeout
  /// (MIN_CONNECT_TIMEOUT), since a warm-up is usually a connection being made.
  duration warmup_timeout = std::chrono::seconds(20);
  /// The wait after the n-th consecutive failed warm-up before the next one may run; callers
  /// arriving meanwhile are refused at once (errc::warmup_cooling_down, a rejection: the
  /// dependency is not contacted; retry_after = time left).
  /// Default: gRPC's connection backoff (1 s, x1.6, at most 120 s), since a warm-up is usually
  /// a connection being made.
  backoff_schedule cool_down = exponential{std::chrono::seconds(1), 1.6, std::chrono::seconds(120)};
  /// Spread of the cool-down. Default ±20%, also gRPC's connection backoff, so instances that
  /// failed together do not all warm up again together.
  jitter cool_down_jitter = jitter::proportional(0.2);
  /// As a policy: re-arm the gate when the call inside ends in a fatal verdict (the resource is
  /// broken; warm it again). Only the first fatal of a generation re-arms.
  bool reset_on_fatal = true;

  constexpr void validate() const {
    detail::require(warmup_timeout > duration::zero(), "warmup_gate", "warmup_timeout",
                    "must be positive", warmup_timeout);
    cool_down.validate();
    cool_down_jitter.validate();
  }
};

/// A warm-up began (once per attempt, whatever the number of callers waiting for it).
struct warmup_started {
  static constexpr event_kind kind = event_kind::warmup_started;
  std::uint64_t generation;
  int attempt;  ///< 1 + the consecutive failures before it
  std::string_view name;
};

struct warmup_succeeded {
  static constexpr event_kind kind = event_kind::warmup_succeeded;
  std::uint64_t generation;
  duration took;
  std::string_view name;
};

struct warmup_failed {
  static constexpr event_kind kind = event_kind::warmup_failed;
  std::uint64_t generation;
  int consecutive_failures;
  duration cool_down;  ///< no warm-up runs again before this has passed
  std::string_view name;
};

/// The gate was re-armed: calls wait for a new warm-up.
struct gate_reset {
  static constexpr event_kind kind = event_kind::gate_reset;
  std::uint64_t from_generation;
  std::uint64_t to_generation;
};

/// What a warm-up action may be: takes nothing, `context&`, or `context&` and the generation it
/// warms; returns void or bool (false: failed). It fails by throwing (or returning false).
template <class A>
concept warmup_action = std::copy_constructible<std::decay_t<A>> &&
    (std::is_invocable_v<std::decay_t<A>&, context&, std::uint64_t> ||
     detail::takes_context_or_not<std::decay_t<A>&>);

namespace detail {

template <class A>
std::function<void(context&, std::uint64_t)> as_warmup(A&& action) {
  using F = std::decay_t<A>;
  return [f = F(std::forward<A>(action))](context& ctx, std::uint64_t generation) mutable {
    const auto run = [&]() -> decltype(auto) {
      if constexpr (std::is_invocable_v<F&, context&, std::uint64_t>) {
        return std::invoke(f, ctx, generation);
      } else {
        return detail::call_with_context(f, ctx);
      }
    };
    if constexpr (std::is_same_v<decltype(run()), bool>) {
      if (!run())
        throw std::runtime_error("stockade::warmup_gate: the warm-up action returned false");
    } else {
      run();
    }
  };
}

}  // namespace detail

template <class Observer = null_observer>
class warmup_gate {
 public:
  /// The warm-up, its options, then in any order its clock (by reference; the real clock if
  /// none, used only by start() without a context: calls use their context's clock) and its
  /// observer.
  template <class Action, class... Parts>
  requires(!std::is_same_v<std::remove_cvref_t<Action>, warmup_gate> &&
           warmup_action<Action>) explicit warmup_gate(Action&& action,
                                                       warmup_gate_options options = {},
                                                       Parts&&... parts)
      : action_(detail::as_warmup(std::forward<Action>(action))),
        options_((options.validate(), options)),
        clock_(&detail::clock_in<Parts...>(parts...)),
        observer_(detail::take_part<detail::is_observer_part, Observer>(parts...)) {}

  warmup_gate(const warmup_gate&) = delete;
  warmup_gate& operator=(const warmup_gate&) = delete;

  bool ready() const noexcept { return (state_.load(std::memory_order_acquire) & ready_bit) != 0; }
  /// Generations count re-arms: 1 until the first reset.
  std::uint64_t generation() const noexcept { return state_.load(std::memory_order_acquire) >> 1; }
  int consecutive_failures() const {
    std::lock_guard lock(failure_mutex_);
    return consecutive_failures_;
  }

  /// Returns the ready generation, warming up first if needed: the first caller runs the
  /// warm-up (see warmup_timeout), the others wait for it. Throws stockade::error with
  ///  - errc::warmup_failed (transient): the warm-up this caller ran or waited for failed; the
  ///    action's own exception is nested (std::nested_exception);
  ///  - errc::warmup_cooling_down (a rejection): a warm-up failed lately and the next may not run
  ///    yet (retry_after: the time left); the last failure is nested;
  ///  - errc::warmup_wait_exceeded: this caller's deadline passed while it waited;
  ///  - errc::cancelled: this caller's stop token fired while it waited.
  std::uint64_t wait_ready(context& ctx) {
    std::optional<call_error> refused;
    const std::uint64_t generation = wait_ready_or_refuse(ctx, refused);
    if (refused) refused->raise();
    return generation;
  }

  /// wait_ready() without throwing: the ready generation, or 0 with the error it would throw in
  /// `refused`.
  std::uint64_t wait_ready_or_refuse(context& ctx, std::optional<call_error>& refused) {
    for (;;) {
      const std::uint64_t word = state_.load(std::memory_order_acquire);
      if ((word & ready_bit) != 0) return word >> 1;
      if (const warm_result refusal = cooling_down(ctx, word >> 1);
          refusal.ended_in != ended::ready) {
        refused.emplace(failure_of(refusal));
        return 0;
      }
      warm_result result;
      try {
        result = flight_.run(ctx, [this](context& leader) { return warm_as_leader(leader); });
      } catch (const error& gave_up) {  // the wait for another caller's warm-up was cut short
        refused.emplace(gave_up);
        return 0;
      }
      if (result.ended_in != ended::ready) {
        refused.emplace(failure_of(result));
        return 0;
      }
      // Success, or a warm-up of a generation reset meanwhile: look again.
    }
  }

  /// wait_ready_or_refuse() on the coroutine path of `Runtime`: a caller that waits for another
  /// caller's warm-up is a suspended coroutine; the caller that leads runs the warm-up action
  /// on its own thread.
  template <class Runtime>
  typename Runtime::template task<std::uint64_t> wait_ready_or_refuse_async(
      context& ctx, std::optional<call_error>& refused) {
    for (;;) {
      const std::uint64_t word = state_.load(std::memory_order_acquire);
      if ((word & ready_bit) != 0) co_return word >> 1;
      if (const warm_result refusal = cooling_down(ctx, word >> 1);
          refusal.ended_in != ended::ready) {
        refused.emplace(failure_of(refusal));
        co_return 0;
      }
      warm_result result;
      std::optional<error> gave_up;
      try {
        result = co_await flight_.template run_async<Runtime>(
            ctx, [this](context& leader) { return warm_as_leader(leader); });
      } catch (const error& cut_short) {  // the wait for another caller's warm-up
        gave_up.emplace(cut_short);
      }
      if (gave_up) {
        refused.emplace(*gave_up);
        co_return 0;
      }
      if (result.ended_in != ended::ready) {
        refused.emplace(failure_of(result));
        co_return 0;
      }
    }
  }

  /// Warms up now (on this thread) unless ready: e.g. at start-up, before the first call.
  void start(context& ctx) { (void)wait_ready(ctx); }
  void start() {
    context ctx{*clock_};
    start(ctx);
  }

  /// Re-arms the gate if it is still at `seen_generation` (the generation the caller's failed
  /// call ran under); true if this call re-armed it. So any number of concurrent failures of one
  /// generation re-arm it once.
  bool reset(std::uint64_t seen_generation) noexcept {
    std::uint64_t word = state_.load(std::memory_order_acquire);
    while ((word >> 1) == seen_generation) {
      if (state_.compare_exchange_weak(word, (seen_generation + 1) << 1,
                                       std::memory_order_acq_rel)) {
        detail::notify(observer_, gate_reset{seen_generation, seen_generation + 1});
        return true;
      }
    }
    return false;
  }
  /// Re-arms the gate whatever its generation.
  void reset() noexcept {
    std::uint64_t word = state_.load(std::memory_order_acquire);
    while (!state_.compare_exchange_weak(word, ((word >> 1) + 1) << 1, std::memory_order_acq_rel)) {
    }
    detail::notify(observer_, gate_reset{word >> 1, (word >> 1) + 1});
  }

  /// As a policy: the call goes through once the gate is ready (one atomic load when it is);
  /// with reset_on_fatal, a fatal verdict of the call re-arms the generation it ran under.
  template <class Next>
  auto invoke(context& ctx, Next&& next) {
    using result_type = std::invoke_result_t<Next&, context&>;
    const std::uint64_t word = state_.load(std::memory_order_acquire);
    std::uint64_t generation = word >> 1;
    if ((word & ready_bit) == 0) [[unlikely]] {
      std::optional<call_error> refused;
      generation = wait_ready_or_refuse(ctx, refused);
      if (refused) return result_type::raised(std::move(*refused));
    }
    if (!options_.reset_on_fatal) return std::forward<Next>(next)(ctx);
    return detail::run_resetting_on_fatal(ctx, std::forward<Next>(next),
                                          [this, generation]() noexcept { reset(generation); });
  }

  /// The coroutine driver: the same gate; a caller that finds it cold waits for the warm-up as
  /// a suspended coroutine (the caller that leads runs the action on its own thread).
  template <class Next>
  std::invoke_result_t<Next&, context&> async_invoke(context& ctx, Next next) {
    using runtime = runtime_of<std::invoke_result_t<Next&, context&>>;
    using result_type = typename runtime::value_type;
    const std::uint64_t word = state_.load(std::memory_order_acquire);
    std::uint64_t generation = word >> 1;
    if ((word & ready_bit) == 0) [[unlikely]] {
      std::optional<call_error> refused;
      generation = co_await wait_ready_or_refuse_async<runtime>(ctx, refused);
      if (refused) co_return result_type::raised(std::move(*refused));
    }
    result_type finished = co_await next(ctx);
    if (options_.reset_on_fatal && detail::calls_for_reset(finished.outcome())) [[unlikely]] {
      reset(generation);
    }
    co_return finished;
  }

  constexpr const warmup_gate_options& options() const noexcept { return options_; }

  /// A caller may wait for another caller's warm-up until its own deadline, then for the next
  /// one, and the caller that runs one may overrun its deadline by up to warmup_timeout: put a
  /// timeout outside the gate for the waiters, and size warmup_timeout for the leader.
  constexpr stack_bounds worst_case(const stack_bounds& inner) const noexcept {
    return {inner.attempts, bound<duration>::unbounded(
                                "warmup_gate: a caller waits for the warm-up until the call's "
                                "deadline")};
  }
  std::string describe() const {
    return "warmup_gate: warmup_timeout " + detail::duration_text(options_.warmup_timeout) +
           ", cool_down " + detail::backoff_text(options_.cool_down) +
           (options_.reset_on_fatal ? ", re-armed on a fatal verdict" : "");
  }
  Observer& observer() noexcept { return observer_; }

 private:
  static constexpr std::uint64_t ready_bit = 1;

  /// What one warm-up run gives everyone who waited for it. A failure is carried as its parts,
  /// and each caller makes an error of its own: an exception object shared by threads is freed
  /// by whichever lets go last, which ThreadSanitizer cannot see (libstdc++ counts the
  /// references in uninstrumented code) and reports as a race in the callers' catch blocks.
  enum class ended : std::uint8_t { ready, failed, cooling_down };
  struct warm_result {
    ended ended_in = ended::ready;
    duration retry_after{0};
    std::exception_ptr cause;  ///< the action's exception, nested in the error thrown
  };

  /// errc::warmup_failed or errc::warmup_cooling_down, with the action's own exception as its
  /// cause (nested when thrown), so it stays reachable.
  static call_error failure_of(const warm_result& failure) noexcept {
    const errc code =
        failure.ended_in == ended::cooling_down ? errc::warmup_cooling_down : errc::warmup_failed;
    return call_error(error_category(), static_cast<int>(code), failure.retry_after, failure.cause);
  }

  /// A refusal (with the time left) while `generation` cools down after a failed warm-up.
  warm_result cooling_down(context& ctx, std::uint64_t generation) {
    std::lock_guard lock(failure_mutex_);
    if (consecutive_failures_ == 0 || failed_generation_ != generation) return {};
    // A recent reading (context::recent_now) is never ahead: the cool-down may last up to one
    // tick longer, never ends early, and its hint never sends a retry in early.
    const time_point now = ctx.recent_now();
    if (now >= cool_down_until_) return {};
    return {ended::cooling_down, cool_down_until_ - now, last_failure_};
  }

  warm_result warm_as_leader(context& leader) {
    // A run that ended while this caller queued for the flight may have done the work.
    const std::uint64_t word = state_.load(std::memory_order_acquire);
    if ((word & ready_bit) != 0) return {};
    const std::uint64_t generation = word >> 1;
    if (warm_result refusal = cooling_down(leader, generation); refusal.ended_in != ended::ready) {
      return refusal;
    }

    int attempt = 0;
    {
      std::lock_guard lock(failure_mutex_);
      attempt = consecutive_failures_ + 1;
    }
    detail::notify(observer_, warmup_started{generation, attempt, leader.name()});
    const time_point started = leader.refresh_now();
    std::exception_ptr failure;
    {
      // Its own deadline, and neither the leader's deadline nor its stop token (see
      // warmup_timeout): whatever it ends in is the warm-up's answer, recorded below.
      context warm_ctx{leader.clock()};
      warm_ctx.set_deadline(context::deadline_after(started, options_.warmup_timeout))
          .set_name(leader.name());
      try {
        action_(warm_ctx, generation);
      } catch (...) {
        failure = std::current_exception();
      }
    }
    const time_point finished = leader.refresh_now();
    if (failure) return record_failure(leader, generation, failure, finished);

    {
      std::lock_guard lock(failure_mutex_);
      consecutive_failures_ = 0;
      previous_cool_down_ = duration::zero();
    }
    std::uint64_t expected = generation << 1;
    // Fails only if reset() moved on while warming: this warm-up belongs to a generation that
    // is gone, so it must not open the gate; the callers' loop warms the new one.
    if (state_.compare_exchange_strong(expected, expected | ready_bit, std::memory_order_acq_rel)) {
      detail::notify(observer_, warmup_succeeded{generation, finished - started, leader.name()});
    }
    return {};
  }

  warm_result record_failure(context& leader, std::uint64_t generation,
                             const std::exception_ptr& cause, time_point finished) {
    int failures = 0;
    duration cool_down{0};
    {
      std::lock_guard lock(failure_mutex_);
      failures = ++consecutive_failures_;
      default_random random;
      cool_down = jittered_delay(options_.cool_down, options_.cool_down_jitter, failures,
                                 previous_cool_down_, options_.cool_down.max_delay(), random);
      previous_cool_down_ = cool_down;
      failed_generation_ = generation;
      cool_down_until_ = context::saturating_add(finished, cool_down);
      last_failure_ = cause;
    }
    detail::notify(observer_, warmup_failed{generation, failures, cool_down, leader.name()});
    return {ended::failed, cool_down, cause};
  }

  std::function<void(context&, std::uint64_t)> action_;
  warmup_gate_options options_;
  clock* clock_;
  [[no_unique_address]] Observer observer_;
  std::atomic<std::uint64_t> state_{1U << 1U};  // generation 1, not ready
  flight<warm_result> flight_{errc::warmup_wait_exceeded};
  mutable std::mutex failure_mutex_;  // guards the cool-down state below
  int consecutive_failures_ = 0;
  duration previous_cool_down_{0};
  std::uint64_t failed_generation_ = 0;  // the cool-down holds only while this is current
  time_point cool_down_until_{};
  std::exception_ptr last_failure_;
};

/// warmup_gate{action, options, parts...}: the observer from the parts (none: null_observer).
template <class Action, class... Parts>
requires warmup_action<Action> warmup_gate(Action&&, warmup_gate_options, Parts&&...)
->warmup_gate<detail::part_of_t<detail::is_observer_part, null_observer, Parts...>>;

}  // namespace stockade
