// Retry: runs the layers inside it again when an attempt fails in a way that may pass, waiting a
// backoff delay in between, within limits on attempts, elapsed time, the deadline and a budget.
// Invariant: a call ends in its last attempt's own result (value or error, unchanged), a
// permanent verdict is never retried, and no wait is started that would end at or after the
// deadline or max_elapsed: the retry gives up at once instead.
#pragma once

#include <algorithm>
#include <chrono>
#include <concepts>
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

#include "backoff.hpp"
#include "bounds.hpp"
#include "clock.hpp"
#include "context.hpp"
#include "detail/describe_text.hpp"
#include "detail/parts.hpp"
#include "detail/reset_on_fatal.hpp"
#include "detail/saturating.hpp"
#include "detail/validate.hpp"
#include "events.hpp"
#include "random.hpp"
#include "result.hpp"
#include "retry_budget.hpp"
#include "runtime.hpp"
#include "verdict.hpp"

namespace stockade {

/// Why a retry layer made no further attempt.
enum class give_up_reason : std::uint8_t {
  verdict,    ///< not retryable: permanent, not in retry_on, refused by retry_if, or a rejection
              ///< while retry_rejections is off
  attempts,   ///< max_attempts reached
  elapsed,    ///< the next attempt would start at or after max_elapsed since the first began
  deadline,   ///< the next attempt would start at or after the call's deadline
  budget,     ///< the shared retry budget refused
  pushback,   ///< the hint said "do not retry" (a negative retry_after, as gRPC's pushback)
  cancelled,  ///< the caller's stop token fired, before or during the wait
};

constexpr const char* to_string(give_up_reason reason) noexcept {
  switch (reason) {
    case give_up_reason::verdict:
      return "verdict";
    case give_up_reason::attempts:
      return "attempts";
    case give_up_reason::elapsed:
      return "elapsed";
    case give_up_reason::deadline:
      return "deadline";
    case give_up_reason::budget:
      return "budget";
    case give_up_reason::pushback:
      return "pushback";
    case give_up_reason::cancelled:
      return "cancelled";
  }
  return "unknown";
}

/// An attempt failed and another follows after `delay`.
struct retry_scheduled {
  static constexpr event_kind kind = event_kind::retry_scheduled;
  std::string_view name;   ///< the call's name (context::name)
  int attempt = 0;         ///< the attempt that failed, 1 for the first
  duration delay{};        ///< the wait before the next attempt
  outcome result{};        ///< the failed attempt's verdict, rejection flag and hint
  bool from_hint = false;  ///< the delay is the outcome's retry_after, not the backoff's
};

/// No further attempt: the call ends with the last attempt's value or exception.
struct retry_gave_up {
  static constexpr event_kind kind = event_kind::retry_gave_up;
  std::string_view name;
  int attempts = 0;  ///< attempts made in this call
  give_up_reason reason = give_up_reason::verdict;
  outcome result{};  ///< the last attempt's outcome
  duration delay{};  ///< elapsed, deadline, budget: the wait that would have come next
};

/// Refines retry_on: called for each failed attempt whose verdict retry_on allows; false means
/// "do not retry this one". A plain function (a lambda without captures converts), so options
/// stay a literal type; inspect the failure itself in the classifier.
using retry_predicate = bool (*)(const outcome& result, const context& ctx);

/// The options of a retry layer; every default is explained in docs/retry.md.
template <backoff Backoff = backoff_schedule>
struct retry_options {
  /// Attempts in total, the first one included (1 disables retrying). 4 = Polly v8's default
  /// MaxRetryAttempts (3) plus the first; also gRPC A6's example policy.
  int max_attempts = 4;
  /// A budget for all attempts and waits, counted from the start of the first attempt: no
  /// attempt starts at or after it. Unlimited by default (as Failsafe): the call's deadline,
  /// set by a timeout outside, is the usual bound. Setting it costs one clock read per call.
  duration max_elapsed = duration::max();
  /// Which verdicts are retried. permanent and success never are (validated).
  verdict_set retry_on{verdict::transient, verdict::fatal};
  /// Optional refinement of retry_on; nullptr: none.
  retry_predicate retry_if = nullptr;
  /// Retry a policy's rejection (breaker open, bulkhead full) like a transient failure, waiting
  /// at least its retry-after hint. Off: a rejection ends the call at once.
  bool retry_rejections = true;
  /// The delay schedule before jitter. Default exponential{100ms, x2, 20s}: see backoff.hpp.
  Backoff backoff{};
  /// Full jitter by default, as the AWS SDKs' standard mode and the AWS note on backoff and
  /// jitter recommend: clients that failed together do not come back together.
  stockade::jitter jitter = stockade::jitter::full();
  /// Cap on every wait, retry-after hints included. The backoff's own cap (its max_delay) also
  /// bounds every wait it gives, whatever the jitter; the lower of the two holds.
  duration max_delay = std::chrono::seconds(30);
  /// A positive retry_after in the outcome (a server's Retry-After, a breaker's remaining open
  /// time) replaces the computed delay; a negative one means "do not retry" (gRPC pushback).
  bool use_retry_after = true;

  constexpr void validate() const {
    detail::require(max_attempts >= 1, "retry", "max_attempts", "must be at least 1", max_attempts);
    detail::require(max_elapsed > duration::zero(), "retry", "max_elapsed", "must be positive",
                    max_elapsed);
    detail::require(!retry_on.contains(verdict::permanent), "retry", "retry_on",
                    "must not contain permanent (the caller's fault is never retried)", retry_on);
    detail::require(!retry_on.contains(verdict::success), "retry", "retry_on",
                    "must not contain success", retry_on);
    detail::require(!retry_on.empty(), "retry", "retry_on",
                    "must contain transient or fatal (to never retry, set max_attempts = 1)",
                    retry_on);
    detail::require(max_delay >= duration::zero(), "retry", "max_delay", "must not be negative",
                    max_delay);
    detail::validate_backoff(backoff);
    jitter.validate();
  }
};

/// Actions run when an attempt's verdict is fatal (the resource is broken), e.g. re-arming a
/// warm-up gate or dropping a pooled connection. They must not throw: they run while the
/// failure they answer is being handled, and that failure must reach the caller unchanged.
/// Made by stockade::on_fatal(actions...).
template <class... Actions>
struct reset_actions {
  static_assert((std::invocable<const Actions&> && ...),
                "a reset action is called with no argument");

  std::tuple<Actions...> actions;

  static constexpr bool empty() noexcept { return sizeof...(Actions) == 0; }
  void run() const noexcept {
    std::apply([](const Actions&... action) { (static_cast<void>(action()), ...); }, actions);
  }
};

/// A retry's reset actions, run in the order given on every attempt whose verdict is fatal:
///   stockade::retry{{.max_attempts = 3}, stockade::on_fatal([&] { gate.reset(); })}
template <class... Actions>
constexpr reset_actions<Actions...> on_fatal(Actions... actions) {
  return {std::tuple<Actions...>(std::move(actions)...)};
}

namespace detail {
// The kinds of part a retry takes after its options (detail/parts.hpp).
template <class P>
struct is_random_part : std::bool_constant<random_source<P>> {};
template <class P>
struct is_reset_part : std::false_type {};
template <class... Actions>
struct is_reset_part<reset_actions<Actions...>> : std::true_type {};
template <class P>
struct is_budget_part : std::false_type {};
template <class B>
struct is_budget_part<std::reference_wrapper<B>> : std::bool_constant<budget_for_retry<B>> {};
template <class P>
struct is_retry_observer_part
    : std::bool_constant<!is_random_part<P>::value && !is_reset_part<P>::value &&
                         !is_budget_part<P>::value> {};

template <class... Parts>
inline constexpr bool retry_parts =
    count_parts<is_random_part, Parts...> <= 1 && count_parts<is_reset_part, Parts...> <= 1 &&
    count_parts<is_budget_part, Parts...> <= 1 &&
    count_parts<is_retry_observer_part, Parts...> <= 1;

template <class... Parts>
using retry_budget_part_t =
    typename part_of_t<is_budget_part, std::reference_wrapper<no_budget>, Parts...>::type;
}  // namespace detail

/// The retry layer: its options, then any of its parts, in any order and each at most once:
/// an observer (e.g. stockade::observer_ref{counters}), a shared budget by std::ref
/// (token_budget, percent_budget, any retry_budget or any type with on_attempt/try_retry; not
/// owned: it must outlive the policy), reset actions (stockade::on_fatal(...)) and a random
/// source for jitter (seeded_random in tests; default thread_random):
///   stockade::retry{{.max_attempts = 4, .backoff = stockade::exponential{200ms, 2.0, 2s}}}
///   stockade::retry{{.max_attempts = 4}, std::ref(shared_budget), stockade::on_fatal([&] { ... })}
/// A user-defined backoff B goes through `stockade::retry{stockade::retry_options<B>{...}}`.
/// The budget is part of the type, not an option: a policy without one must not even test a
/// pointer, because any call the compiler cannot see through, on the success path, makes it keep
/// the whole context in memory (measured: about 3 ns a call, bench/retry_bench.cpp).
// The parameters are checked inside rather than constrained here: a constraint here would also
// constrain the deduction guide made of the constructor, which would then win over the one
// below that reads the parts.
template <class Backoff = backoff_schedule, class Observer = null_observer,
          class Random = default_random, class Reset = reset_actions<>, class Budget = no_budget>
class retry {
  static_assert(backoff<Backoff>, "stockade::retry: Backoff must model stockade::backoff");
  static_assert(random_source<Random>, "stockade::retry: Random must model random_source");
  static_assert(budget_for_retry<Budget>, "stockade::retry: Budget must model budget_for_retry");

 public:
  using options_type = retry_options<Backoff>;

  template <class... Parts>
  constexpr explicit retry(options_type options = {}, Parts... parts)
      : options_((options.validate(), std::move(options))),
        observer_(detail::take_part<detail::is_retry_observer_part, Observer>(parts...)),
        random_(detail::take_part<detail::is_random_part, Random>(parts...)),
        reset_(detail::take_part<detail::is_reset_part, Reset>(parts...)),
        budget_(budget_in(parts...)),
        waits_are_zero_(std::min(options_.max_delay, detail::schedule_cap(options_.backoff)) <=
                        duration::zero()) {
    static_assert(detail::retry_parts<Parts...>,
                  "stockade::retry takes, after its options, at most one each of: an observer, "
                  "a random source, reset actions (stockade::on_fatal) and a budget (std::ref)");
  }

  constexpr const options_type& options() const noexcept { return options_; }

  /// The longest the waits of one call can add up to (hints count as max_delay), for analysis
  /// of a stack's worst case; attempts themselves are not included. The first waits are added
  /// one by one; once a wait reaches the longest any wait can be (longest_any_wait), or after
  /// exact_waits of them, the rest count as that longest: never less than can happen, and at
  /// most exact_waits steps, so it stays cheap and usable in a constant expression.
  constexpr duration worst_case_delay() const noexcept {
    constexpr int exact_waits = 256;
    const duration longest = longest_any_wait();
    duration total{};
    for (int retry_number = 1; retry_number < options_.max_attempts; ++retry_number) {
      const duration wait = longest_wait(retry_number);
      if (wait >= longest || retry_number > exact_waits) {
        const int remaining = options_.max_attempts - retry_number;
        total = detail::saturating_sum(total, detail::saturating_product(longest, remaining));
        break;
      }
      total = detail::saturating_sum(total, wait);
      if (total >= options_.max_elapsed) break;
    }
    return std::min(total, options_.max_elapsed);
  }

  static constexpr layer_traits traits{.repeats = true};

  /// max_attempts times what is inside, plus the waits; the last attempt starts before
  /// max_elapsed, so max_elapsed plus one attempt also bounds the whole.
  constexpr stack_bounds worst_case(const stack_bounds& inner) const noexcept {
    stack_bounds outer = inner;
    if (inner.attempts.bounded()) {
      const std::int64_t attempts =
          detail::saturating_product(inner.attempts.value(), options_.max_attempts);
      outer.attempts = attempts == std::numeric_limits<std::int64_t>::max()
                           ? bound<std::int64_t>::unbounded("retry: attempts multiply past 2^63")
                           : bound<std::int64_t>(attempts);
    }
    if (!inner.elapsed.bounded()) return outer;
    const duration attempt = inner.elapsed.value();
    duration all = detail::saturating_sum(
        detail::saturating_product(attempt, options_.max_attempts), worst_case_delay());
    if (has_elapsed_limit()) {
      all = std::min(all, detail::saturating_sum(options_.max_elapsed, attempt));
    }
    outer.elapsed = all == duration::max()
                        ? bound<duration>::unbounded("retry: its waits add up past any limit")
                        : bound<duration>(all);
    return outer;
  }

  /// One line for describe(pipeline): the limits and the schedule.
  std::string describe() const {
    std::string text = "retry: max_attempts " + std::to_string(options_.max_attempts);
    text += ", backoff " + detail::backoff_text(options_.backoff);
    text += ", jitter " + detail::jitter_text(options_.jitter);
    text += ", max_delay " + detail::duration_text(options_.max_delay);
    if (options_.use_retry_after) text += " (retry-after hints count up to it)";
    if (has_elapsed_limit()) text += ", max_elapsed " + detail::duration_text(options_.max_elapsed);
    text += ", retry_on " + detail::value_text(options_.retry_on);
    if (has_budget) text += ", with a retry budget";
    return text;
  }

  template <class Next>
  auto invoke(context& ctx, Next&& next) const {
    using result_type = std::invoke_result_t<Next&, context&>;
    // The first attempt is written apart from the loop that follows a failure (which is kept
    // out of line), so the success path is straight-line code in which the compiler can keep
    // the context in registers instead of writing it to memory (measured in
    // bench/retry_bench.cpp: about 3 ns a call).
    const time_point elapsed_limit = has_elapsed_limit()
                                         ? context::saturating_add(ctx.now(), options_.max_elapsed)
                                         : no_deadline;
    ctx.begin_attempt(1);
    result_type first = next(ctx);
    if (first.outcome().succeeded()) [[likely]] {
      if constexpr (has_budget) budget_->on_attempt(verdict::success, true);
      return first;
    }
    plan step;
    if (!plan_after_failure(ctx, first.outcome(), 1, duration::zero(), elapsed_limit, step)) {
      return first;
    }
    // Kept across the wait only if there is one (a wait cut short ends the call in it).
    const outcome failed = first.outcome();
    std::optional<result_type> kept;
    if (step.delay > duration::zero()) kept.emplace(std::move(first));
    return retry_after_failure(ctx, next, std::move(kept), failed, step, elapsed_limit);
  }

  /// The coroutine driver: the same plan after each failure, and the wait a suspension of the
  /// coroutine (the runtime's sleep), so no thread is held during a backoff.
  template <class Next>
  std::invoke_result_t<Next&, context&> async_invoke(context& ctx, Next next) const {
    using runtime = runtime_of<std::invoke_result_t<Next&, context&>>;
    using result_type = typename runtime::value_type;
    const time_point elapsed_limit = has_elapsed_limit()
                                         ? context::saturating_add(ctx.now(), options_.max_elapsed)
                                         : no_deadline;
    plan step;
    for (int attempt = 1;; ++attempt) {
      ctx.begin_attempt(attempt);
      result_type ended = co_await next(ctx);
      if (ended.outcome().succeeded()) {
        if constexpr (has_budget) budget_->on_attempt(verdict::success, attempt == 1);
        co_return ended;
      }
      const duration previous_delay = step.delay;
      if (!plan_after_failure(ctx, ended.outcome(), attempt, previous_delay, elapsed_limit, step)) {
        co_return ended;
      }
      if (step.reset) reset_.run();
      detail::notify(observer_, retry_scheduled{ctx.name(), attempt, step.delay, ended.outcome(),
                                                step.hinted});
      if (step.delay > duration::zero() && !co_await runtime::sleep_until(ctx, step.wake)) {
        detail::notify(observer_, retry_gave_up{ctx.name(), attempt, give_up_reason::cancelled,
                                                ended.outcome(), step.delay});
        co_return ended;
      }
    }
  }

 private:
  static constexpr bool has_budget = !std::is_same_v<Budget, no_budget>;

  template <class... Parts>
  static constexpr Budget* budget_in(Parts&... parts) noexcept {
    Budget* found = nullptr;
    (
        [&] {
          if constexpr (detail::is_budget_part<Parts>::value) found = &parts.get();
        }(),
        ...);
    return found;
  }

  struct plan {
    bool retry = false;
    bool reset = false;   // the verdict was fatal: run the reset actions
    bool hinted = false;  // the delay came from the outcome's retry_after
    give_up_reason reason = give_up_reason::verdict;
    duration delay{};
    time_point wake{};
  };

  /// Attempts 2 and on. Each round waits as planned for the attempt that failed (`failed` is its
  /// outcome), keeping what it failed with only while there is a wait that may be cut short,
  /// then tries again.
  template <class Next, class Result>
  [[gnu::noinline]] Result retry_after_failure(context& ctx, Next& next, std::optional<Result> kept,
                                               outcome failed, plan step,
                                               time_point elapsed_limit) const {
    for (int attempt = 2;; ++attempt) {
      if (step.reset) reset_.run();
      detail::notify(observer_,
                     retry_scheduled{ctx.name(), attempt - 1, step.delay, failed, step.hinted});
      if (step.delay > duration::zero()) {
        if (!ctx.sleep_until(step.wake)) {
          detail::notify(observer_, retry_gave_up{ctx.name(), attempt - 1,
                                                  give_up_reason::cancelled, failed, step.delay});
          return std::move(*kept);
        }
        kept.reset();
      }

      ctx.begin_attempt(attempt);
      Result ended = next(ctx);
      if (ended.outcome().succeeded()) {
        if constexpr (has_budget) budget_->on_attempt(verdict::success, false);
        return ended;
      }
      const duration previous_delay = step.delay;
      if (!plan_after_failure(ctx, ended.outcome(), attempt, previous_delay, elapsed_limit, step)) {
        return ended;
      }
      failed = ended.outcome();
      if (step.delay > duration::zero()) kept.emplace(std::move(ended));
    }
  }

  constexpr bool has_elapsed_limit() const noexcept {
    return options_.max_elapsed != duration::max();
  }

  bool retryable(const outcome& result, const context& ctx) const {
    if (result.kind == verdict::success || result.kind == verdict::permanent) return false;
    if (!options_.retry_on.contains(result.kind)) return false;
    if (result.rejected && !options_.retry_rejections) return false;
    return options_.retry_if == nullptr || options_.retry_if(result, ctx);
  }

  /// Decides what follows a failed attempt (its outcome `result`) into `step`: true for another
  /// attempt after step.delay; false when giving up (reset actions run and the event is sent
  /// here). Asks the budget last, because a budget charges the retries it grants.
  [[gnu::always_inline]] bool plan_after_failure(context& ctx, const outcome& result, int attempt,
                                                 duration previous_delay, time_point elapsed_limit,
                                                 plan& step) const {
    step = plan{};
    step.reset = !Reset::empty() && detail::calls_for_reset(result);
    if constexpr (has_budget) budget_->on_attempt(result, attempt == 1);

    const auto give_up = [&](give_up_reason why) {
      step.reason = why;
      if (step.reset) reset_.run();
      detail::notify(observer_, retry_gave_up{ctx.name(), attempt, why, result, step.delay});
      return false;
    };
    if (!retryable(result, ctx)) return give_up(give_up_reason::verdict);
    if (options_.use_retry_after && result.retry_after < duration::zero()) {
      return give_up(give_up_reason::pushback);
    }
    if (attempt >= options_.max_attempts) return give_up(give_up_reason::attempts);

    if (options_.use_retry_after && result.retry_after > duration::zero()) {
      step.delay = std::min(result.retry_after, options_.max_delay);
      step.hinted = true;
    } else if (!waits_are_zero_) {
      step.delay = jittered_delay(options_.backoff, options_.jitter, attempt, previous_delay,
                                  options_.max_delay, random_);
    }  // else every wait is zero, whatever the schedule and the jitter: nothing to compute

    if (step.delay > duration::zero() || ctx.has_deadline() || elapsed_limit != no_deadline) {
      step.wake = context::saturating_add(ctx.now(), step.delay);
      if (step.wake >= ctx.deadline() || step.wake >= elapsed_limit) {
        return give_up(elapsed_limit < ctx.deadline() ? give_up_reason::elapsed
                                                      : give_up_reason::deadline);
      }
    }
    if (ctx.caller_stop_token().stop_requested()) return give_up(give_up_reason::cancelled);
    if constexpr (has_budget) {
      if (!budget_->try_retry()) return give_up(give_up_reason::budget);
    }
    step.retry = true;
    return true;
  }

  /// No wait of any retry is longer: max_delay when hints may reach it, else the backoff's own
  /// cap (jitter included, since jittered_delay caps every kind there) if it is lower.
  constexpr duration longest_any_wait() const noexcept {
    const duration cap = options_.max_delay;
    if (options_.use_retry_after) return cap;
    return std::min(cap, detail::schedule_cap(options_.backoff));
  }

  constexpr duration longest_wait(int retry_number) const noexcept {
    const duration cap = options_.max_delay;
    if (options_.use_retry_after) return cap;
    const duration capped = std::min(cap, detail::schedule_cap(options_.backoff));
    const duration computed = std::min(duration{options_.backoff.delay(retry_number)}, capped);
    switch (options_.jitter.kind) {
      case jitter_kind::decorrelated:
        return capped;
      case jitter_kind::proportional:
        return detail::saturate(
            static_cast<double>(computed.count()) * (1.0 + options_.jitter.spread), capped);
      default:
        return computed;
    }
  }

  options_type options_;
  [[no_unique_address]] mutable Observer observer_;
  [[no_unique_address]] mutable Random random_;
  [[no_unique_address]] Reset reset_;
  Budget* budget_;  // null only for no_budget, which is never called through it
  // Every wait is zero, whatever the schedule and the jitter: decided once, not per failure.
  bool waits_are_zero_;
};

/// retry{options, parts...}: the parts given name the observer, random source, reset actions
/// and budget; those not given keep their defaults.
template <class B = backoff_schedule, class... Parts>
retry(retry_options<B>, Parts...)
    -> retry<B, detail::part_of_t<detail::is_retry_observer_part, null_observer, Parts...>,
             detail::part_of_t<detail::is_random_part, default_random, Parts...>,
             detail::part_of_t<detail::is_reset_part, reset_actions<>, Parts...>,
             detail::retry_budget_part_t<Parts...>>;

}  // namespace stockade
