// The circuit breaker: an object the application owns and shares across call sites, which
// stops calling a dependency that keeps failing, then lets a few trial calls (or one health
// probe) find out whether it has recovered. Stack it in a pipeline with std::ref(breaker).
// Invariant: a call is counted only in the state epoch (state + generation) that admitted it,
// and every half-open permit is returned by an RAII guard, whatever the call does.
//
//                 trip strategy says so                open_for has passed
//     +--------+ ----------------------> +------+ ----------------------> +-----------+
//     | closed |                         | open |                         | half_open |
//     +--------+ <---------+             +------+ <---------------------- +-----------+
//        ^   |             |                 a trial fails (open_for grows)    |
//        |   |             +-----------------------------------------------------+
//        |   |                 enough trials succeed (or the health probe passes)
//        |   +-- disable() --> disabled (lets every call through, still counts)
//        +------ reset() ----- any state;   isolate() --> isolated (rejects every call)
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "backoff.hpp"
#include "bounds.hpp"
#include "clock.hpp"
#include "context.hpp"
#include "detail/parts.hpp"
#include "detail/probe_run.hpp"
#include "detail/validate.hpp"
#include "detail/with_context.hpp"
#include "errors.hpp"
#include "events.hpp"
#include "random.hpp"
#include "result.hpp"
#include "runtime.hpp"
#include "trip_strategy.hpp"
#include "verdict.hpp"

namespace stockade {

enum class circuit_state : std::uint8_t {
  closed,     ///< calls go through and are counted
  open,       ///< calls are rejected (errc::circuit_open) until open_for has passed
  half_open,  ///< a few trial calls (or one health probe) decide: close or open again
  isolated,   ///< forced open by isolate(): every call rejected (errc::circuit_isolated)
  disabled,   ///< forced closed by disable(): every call goes through, still counted
};

constexpr const char* to_string(circuit_state state) noexcept {
  switch (state) {
    case circuit_state::closed:
      return "closed";
    case circuit_state::open:
      return "open";
    case circuit_state::half_open:
      return "half_open";
    case circuit_state::isolated:
      return "isolated";
    case circuit_state::disabled:
      return "disabled";
  }
  return "unknown";
}

/// Reported on every change of state, by the thread that caused it.
struct breaker_state_changed {
  static constexpr event_kind kind = event_kind::breaker_state_changed;
  std::string_view breaker;  ///< the breaker's options().name
  circuit_state from = circuit_state::closed;
  circuit_state to = circuit_state::closed;
  time_point at{};
  duration open_for{0};    ///< to == open: how long it stays open before half-open
  window_counts window{};  ///< the trip strategy's counts at the change (what tripped it)
};

/// Reported for every call the breaker refuses.
struct breaker_rejected {
  static constexpr event_kind kind = event_kind::breaker_rejected;
  std::string_view breaker;                   ///< the breaker's options().name
  std::string_view call;                      ///< the refused call's context name
  circuit_state state = circuit_state::open;  ///< open, half_open (no permit left) or isolated
  duration retry_after{0};                    ///< the hint the error carries (zero: none)
};

/// A snapshot of a breaker, from metrics().
struct circuit_breaker_metrics {
  circuit_state state = circuit_state::closed;
  time_point since{};            ///< when the breaker entered `state`
  window_counts window{};        ///< calls, failures, slow calls in the trip strategy's window
  std::uint64_t rejections = 0;  ///< calls refused since the breaker was built
  std::uint64_t times_opened = 0;
  duration open_remaining{0};         ///< while open: time left before half-open
  std::size_t trials_in_flight = 0;   ///< half-open trial calls running now
  std::size_t failed_half_opens = 0;  ///< half-open rounds in a row that reopened it
};

namespace detail {

template <class B>
constexpr B make_default_open_for() {
  if constexpr (std::is_constructible_v<B, constant>) {
    return B(constant{std::chrono::seconds(5)});
  } else {
    return B{};
  }
}
// A variable, not a call in the member initializer below: g++ 12 crashes (internal compiler
// error in build_call_a) on the call when the options are built inside another class's
// default member initializer.
template <class B>
inline constexpr B default_open_for = make_default_open_for<B>();

}  // namespace detail

/// A breaker's configuration; set with designated initializers, checked when the breaker is
/// built (or at compile time: `static_assert((opts.validate(), true))`).
template <trip_strategy Trip = count_window, backoff Backoff = backoff_schedule>
struct circuit_breaker_options {
  /// When to open: the strategy's own options (trip_strategy.hpp has each default and why).
  typename Trip::options trip{};

  /// How long to stay open: open_for.delay(1) after the breaker trips, delay(n + 1) after n
  /// half-open rounds in a row that failed; the schedule's max_delay caps it. Default a fixed
  /// 5 s, Polly v8's BreakDuration (resilience4j, gobreaker and Failsafe wait 60 s): a blip of
  /// a second should not cost a minute of outage; give a growing schedule
  /// (`stockade::exponential{5s, 2.0, 5min}`) for long outages instead of a long fixed wait.
  Backoff open_for = detail::default_open_for<Backoff>;

  /// Spreads open durations so that many clients' breakers do not try again in step.
  /// Default none. Prefer full or equal jitter: the cap holds jitter included, so jitter above
  /// the schedule's max_delay is cut.
  jitter open_jitter = jitter::none();

  /// Trial calls let through per half-open round; the rest are rejected. Default 1, as Polly
  /// v8, gobreaker (MaxRequests 0 means 1), Failsafe and Hystrix: the least load on a
  /// dependency that may still be down (resilience4j lets 10 through; raise it for high
  /// traffic, where one lucky call is weak evidence). Ignored while a health probe is set.
  std::size_t half_open_permits = 1;

  /// The share of trials that must succeed to close. Default 1.0: every trial (Failsafe's
  /// and gobreaker's rule); with a lower ratio a failed trial reopens only once the ratio can
  /// no longer be reached.
  double half_open_success_ratio = 1.0;

  /// The health probe's own time limit (see set_health_probe): the deadline of the context it
  /// runs with, and what a half-open refusal tells callers to wait while it runs. 1 s, as
  /// health_check_options::probe_timeout (Kubernetes' default probe timeout).
  duration probe_timeout = std::chrono::seconds(1);

  /// Which verdicts count as failures. Default transient and fatal. Success is never a
  /// failure, and permanent (the caller's fault) may not be listed; rejections made by other
  /// policies never count whatever their verdict.
  verdict_set failure_verdicts{verdict::transient, verdict::fatal};

  /// Names the breaker in its events.
  std::string_view name{};

  constexpr void validate() const {
    trip.validate();
    detail::validate_backoff(open_for);
    open_jitter.validate();
    detail::require(open_for.delay(1) > duration::zero(), "circuit_breaker", "open_for",
                    "must give a positive first open duration", open_for.delay(1));
    detail::require(half_open_permits >= 1 && half_open_permits <= 1'000'000, "circuit_breaker",
                    "half_open_permits", "must be between 1 and 1000000", half_open_permits);
    detail::require(probe_timeout > duration::zero(), "circuit_breaker", "probe_timeout",
                    "must be positive", probe_timeout);
    detail::require(half_open_success_ratio > 0.0 && half_open_success_ratio <= 1.0,
                    "circuit_breaker", "half_open_success_ratio", "must be in (0, 1]",
                    half_open_success_ratio);
    detail::require(!failure_verdicts.contains(verdict::permanent), "circuit_breaker",
                    "failure_verdicts",
                    "must not contain permanent (the caller's fault, never the dependency's)",
                    failure_verdicts);
    detail::require(!failure_verdicts.contains(verdict::success), "circuit_breaker",
                    "failure_verdicts", "must not contain success", failure_verdicts);
    detail::require(!failure_verdicts.empty(), "circuit_breaker", "failure_verdicts",
                    "must contain transient or fatal (else the breaker never opens)",
                    failure_verdicts);
  }
};

// Checked inside rather than constrained here, so that the deduction guide below (which reads
// the parts) is the one chosen, not the one made of the constructor.
template <class Trip = count_window, class Observer = null_observer,
          class Backoff = backoff_schedule>
class circuit_breaker {
  static_assert(trip_strategy<Trip>, "stockade::circuit_breaker: Trip must model trip_strategy");
  static_assert(backoff<Backoff>, "stockade::circuit_breaker: Backoff must model backoff");
  static_assert(observer_of<Observer, breaker_state_changed> &&
                    observer_of<Observer, breaker_rejected>,
                "the Observer must accept breaker_state_changed and breaker_rejected");

 public:
  using trip_type = Trip;
  using observer_type = Observer;
  using backoff_type = Backoff;
  using options_type = circuit_breaker_options<Trip, Backoff>;
  /// Decides a half-open round instead of live calls: true means healthy.
  using health_probe = std::function<bool(context&)>;

  /// The options, then in any order its clock (by reference; the real clock if none) and its
  /// observer. The clock is read outside calls (state(), metrics(), reset()); during a call the
  /// breaker reads the call's context, so both must be the same clock.
  template <class... Parts>
  explicit circuit_breaker(const options_type& config = {}, Parts&&... parts)
      : options_((config.validate(), config)),
        clock_(&detail::clock_in<Parts...>(parts...)),
        observer_(detail::take_part<detail::is_observer_part, Observer>(parts...)),
        trials_needed_(static_cast<std::size_t>(
            detail::count_for_ratio(config.half_open_permits, config.half_open_success_ratio))),
        since_(clock_->now().time_since_epoch().count()),
        trip_(config.trip) {}

  circuit_breaker(const circuit_breaker&) = delete;
  circuit_breaker& operator=(const circuit_breaker&) = delete;
  ~circuit_breaker() = default;

  /// The policy: runs `next` if the state allows and counts its outcome, or refuses with
  /// errc::circuit_open or errc::circuit_isolated (a rejection with a retry-after hint).
  template <class Next>
  auto invoke(context& ctx, Next&& next) {
    const std::uint64_t word = state_.load(std::memory_order_acquire);
    if (lets_all_through(word)) [[likely]] {
      return run_counted(ctx, next, word);
    }
    return run_guarded(ctx, next, word);
  }

  /// The coroutine driver: the same admission and recording, with `next` awaited. A half-open
  /// breaker with a health probe still runs the probe on the awaiting thread (docs/async.md).
  template <class Next>
  std::invoke_result_t<Next&, context&> async_invoke(context& ctx, Next next) {
    using result_type = typename runtime_of<std::invoke_result_t<Next&, context&>>::value_type;
    std::uint64_t word = state_.load(std::memory_order_acquire);
    if (!lets_all_through(word)) {
      const admission let_in = admit_guarded(ctx, word);
      if (let_in.refused != errc{}) {
        co_return result_type::raised(call_error(let_in.refused, let_in.retry_after));
      }
      if (let_in.trial) {
        trial_permit permit(*this, ctx, let_in.word);  // ignored if the coroutine is destroyed
        time_point started{};
        if constexpr (Trip::measures_duration) started = ctx.now();
        result_type ended = co_await next(ctx);
        permit.finish(judge_trial(ctx, ended.outcome(), started));
        co_return ended;
      }
      word = let_in.word;
    }
    time_point started{};
    if constexpr (Trip::measures_duration) started = ctx.now();
    result_type ended = co_await next(ctx);
    record_closed(ctx, word, ended.outcome(), started);
    co_return ended;
  }

  // --- operator controls ---------------------------------------------------------------------
  /// Forces the breaker open: every call is rejected with errc::circuit_isolated until reset().
  void isolate() { force(circuit_state::isolated); }
  /// Lets every call through and keeps counting, but never opens, until reset().
  void disable() { force(circuit_state::disabled); }
  /// Back to closed from any state, with an empty window and the open duration's growth reset.
  /// Trials still running from before are no longer counted.
  void reset() {
    std::optional<breaker_state_changed> event;
    {
      std::lock_guard lock(mutex_);
      event = close_locked(clock_->now());
    }
    emit(event);
  }

  /// Sets (or replaces) the health probe. While one is set, the first call to arrive in
  /// half-open runs it on its own thread, while other calls are rejected; healthy closes the
  /// breaker (and that call proceeds), unhealthy (false, an exception, or later than
  /// probe_timeout) opens it again. Only one probe runs at a time, across every transition and
  /// operator action. The probe gets a context of its own on the caller's clock, with the
  /// caller's name and a deadline probe_timeout away, and should honour it. It is shared work:
  /// the caller's own deadline and stop token do not cut it short (its result would then be the
  /// caller's give-up, not the dependency's health), so that caller may return up to
  /// probe_timeout late; a caller that has already given up never starts a probe.
  template <class F>
  void set_health_probe(F probe) {
    static_assert(detail::probe_callable<F>,
                  "a health probe is callable as bool(stockade::context&), bool(), or void "
                  "(healthy unless it throws)");
    auto held = std::make_shared<const health_probe>(detail::as_probe(std::move(probe)));
    std::lock_guard lock(mutex_);
    probe_ = std::move(held);
  }
  void clear_health_probe() {
    std::lock_guard lock(mutex_);
    probe_.reset();
  }

  // --- observation ---------------------------------------------------------------------------
  /// The state now. An open breaker whose open time has passed reports half_open (the next
  /// call makes the move and reports the event); state() itself changes nothing. Whether the
  /// open time has passed is read as a call reads it (clock::recent()).
  circuit_state state() const noexcept {
    const std::uint64_t word = state_.load(std::memory_order_acquire);
    if (state_of(word) == circuit_state::open && clock_->recent() >= open_until()) {
      return circuit_state::half_open;
    }
    return state_of(word);
  }

  circuit_breaker_metrics metrics() const {
    std::lock_guard lock(mutex_);
    const time_point now = clock_->now();
    circuit_breaker_metrics snapshot;
    snapshot.state = state_of(state_.load(std::memory_order_acquire));
    snapshot.since = time_point{duration{since_.load(std::memory_order_relaxed)}};
    if (snapshot.state == circuit_state::open) {
      const time_point recent = std::min(now, clock_->recent());  // as a call reads it
      if (recent >= open_until()) {
        snapshot.state = circuit_state::half_open;
        snapshot.since = open_until();
      } else {
        snapshot.open_remaining = open_until() - recent;
      }
    }
    snapshot.window = trip_.counts(now);
    snapshot.rejections = rejections_.load(std::memory_order_relaxed);
    snapshot.times_opened = times_opened_.load(std::memory_order_relaxed);
    snapshot.trials_in_flight = trials_in_flight_;
    snapshot.failed_half_opens = failed_half_opens_;
    return snapshot;
  }

  const options_type& options() const noexcept { return options_; }

  static constexpr layer_traits traits{.sees_each_attempt = true};
  /// Adds nothing (a rejection is immediate), unless a health probe is set: a caller in
  /// half-open may run it first, for at most probe_timeout.
  stack_bounds worst_case(const stack_bounds& inner) const {
    std::lock_guard lock(mutex_);
    if (!probe_) return inner;
    return {inner.attempts, inner.elapsed + bound<duration>(options_.probe_timeout)};
  }
  std::string describe() const {
    std::string text = "circuit_breaker";
    if (!options_.name.empty()) text += " \"" + std::string(options_.name) + "\"";
    if constexpr (requires { Trip::name; }) text += std::string(": ") + Trip::name;
    text += ", half_open_permits " + std::to_string(options_.half_open_permits);
    text += ", failures " + detail::value_text(options_.failure_verdicts);
    return text;
  }
  std::string_view name() const noexcept { return options_.name; }
  const Trip& strategy() const noexcept { return trip_; }
  Observer& observer() noexcept { return observer_; }

 private:
  enum class tally : std::uint8_t { succeeded, failed, ignored };

  struct admission {
    std::uint64_t word;
    bool trial = false;
    errc refused{};  // errc{}: let in
    duration retry_after{};
  };

  /// Returns a half-open permit when it goes out of scope, as "ignored" unless finish() gave
  /// the trial's result first: a trial that throws, or whose classification throws, can never
  /// keep its permit.
  class trial_permit {
   public:
    trial_permit(circuit_breaker& owner, context& ctx, std::uint64_t word) noexcept
        : owner_(&owner), ctx_(&ctx), word_(word) {}
    trial_permit(const trial_permit&) = delete;
    trial_permit& operator=(const trial_permit&) = delete;
    ~trial_permit() {
      if (owner_ != nullptr) owner_->finish_trial(word_, tally::ignored, *ctx_);
    }
    void finish(tally result) noexcept {
      std::exchange(owner_, nullptr)->finish_trial(word_, result, *ctx_);
    }

   private:
    circuit_breaker* owner_;
    context* ctx_;
    std::uint64_t word_;
  };

  // The state word: the state in the low 3 bits, a generation (bumped by every transition)
  // above, so a call can tell whether the epoch that admitted it is still current.
  static constexpr std::uint64_t state_bits = 3;
  static constexpr circuit_state state_of(std::uint64_t word) noexcept {
    return static_cast<circuit_state>(word & ((std::uint64_t{1} << state_bits) - 1));
  }
  static constexpr bool lets_all_through(std::uint64_t word) noexcept {
    const circuit_state state = state_of(word);
    return state == circuit_state::closed || state == circuit_state::disabled;
  }

  time_point open_until() const noexcept {
    return time_point{duration{open_until_.load(std::memory_order_acquire)}};
  }

  /// Open time left, from a recent reading (context::recent_now): never ahead of the clock, so
  /// the breaker may stay open up to one tick past open_for but never half-opens early, and its
  /// hint never sends a retry in early. Zero or less: the open time is over.
  duration open_left(const context& ctx) const noexcept { return open_until() - ctx.recent_now(); }

  tally judge(const outcome& result) const noexcept {
    if (result.rejected) return tally::ignored;  // another policy refused: says nothing
    if (result.kind == verdict::success) return tally::succeeded;
    if (result.kind != verdict::permanent && options_.failure_verdicts.contains(result.kind)) {
      return tally::failed;
    }
    return tally::ignored;
  }

  // --- closed and disabled: the hot path -----------------------------------------------------
  template <class Next>
  auto run_counted(context& ctx, Next& next, std::uint64_t word) {
    time_point started{};
    if constexpr (Trip::measures_duration) started = ctx.now();
    auto ended = next(ctx);
    record_closed(ctx, word, ended.outcome(), started);
    return ended;
  }

  [[gnu::always_inline]] void record_closed(context& ctx, std::uint64_t word, const outcome& result,
                                            time_point started) {
    const tally kind = judge(result);
    if (kind == tally::ignored) return;
    call_record call;
    call.failed = kind == tally::failed;
    if constexpr (Trip::measures_duration) {
      call.finished = ctx.refresh_now();
      call.elapsed = call.finished - started;
    } else if constexpr (Trip::reads_time) {
      call.finished = ctx.now();
    }
    // A call admitted before a transition belongs to an epoch that is over: it must not
    // count in the new window (nor in a half-open round).
    if (state_.load(std::memory_order_relaxed) != word) [[unlikely]] {
      return;
    }
    if (trip_.record(call) && state_of(word) == circuit_state::closed) [[unlikely]] {
      trip_from_closed(word, ctx.now());
    }
  }

  void trip_from_closed(std::uint64_t word, time_point now) {
    std::optional<breaker_state_changed> event;
    {
      std::lock_guard lock(mutex_);
      if (state_.load(std::memory_order_relaxed) == word) {
        failed_half_opens_ = 0;
        event = move_locked(circuit_state::open, now, next_open_duration_locked());
      }
    }
    emit(event);
  }

  // --- open, half-open, isolated -------------------------------------------------------------
  template <class Next>
  auto run_guarded(context& ctx, Next& next, std::uint64_t word) {
    using result_type = std::invoke_result_t<Next&, context&>;
    const admission let_in = admit_guarded(ctx, word);
    if (let_in.refused != errc{}) {
      return result_type::raised(call_error(let_in.refused, let_in.retry_after));
    }
    if (!let_in.trial) return run_counted(ctx, next, let_in.word);
    // The permit goes back as "ignored" if next throws (a policy's own failure inside).
    trial_permit permit(*this, ctx, let_in.word);
    time_point started{};
    if constexpr (Trip::measures_duration) started = ctx.now();
    auto ended = next(ctx);
    permit.finish(judge_trial(ctx, ended.outcome(), started));
    return ended;
  }

  /// The admission of a call that found the breaker not closed. The refusal of an open breaker
  /// is inline: load shedding is when refusals come by the thousand. Any other state, or an
  /// open time that has passed, goes through admit().
  [[gnu::always_inline]] admission admit_guarded(context& ctx, std::uint64_t word) {
    if (state_of(word) == circuit_state::open) {
      const duration left = open_left(ctx);
      if (left > duration::zero()) {
        count_rejection(ctx, circuit_state::open, left);
        return {word, false, errc::circuit_open, left};
      }
    }
    return admit(ctx, word);
  }

  /// A trial fails on a failure verdict and, with a slow-call strategy, also when it is slow:
  /// a breaker opened for slowness must not close on a slow success.
  tally judge_trial(context& ctx, const outcome& result, time_point started) const noexcept {
    const tally kind = judge(result);
    if constexpr (Trip::measures_duration) {
      if (kind == tally::succeeded && trip_.is_slow(ctx.refresh_now() - started)) {
        return tally::failed;
      }
    }
    return kind;
  }

  /// Decides what happens to a call that found the breaker not closed: a trial permit, a
  /// counted call (the breaker closed meanwhile, or the probe passed), or a rejection.
  admission admit(context& ctx, std::uint64_t word) {
    for (;;) {
      switch (state_of(word)) {
        case circuit_state::closed:
        case circuit_state::disabled:
          return {word};
        case circuit_state::isolated:
          return reject(ctx, errc::circuit_isolated, circuit_state::isolated, duration::zero());
        case circuit_state::open: {
          if (const duration left = open_left(ctx); left > duration::zero()) {
            return reject(ctx, errc::circuit_open, circuit_state::open, left);
          }
          word = begin_half_open(word, ctx.now());
          break;
        }
        case circuit_state::half_open: {
          std::unique_lock lock(mutex_);
          const std::uint64_t current = state_.load(std::memory_order_relaxed);
          if (current != word) {
            word = current;
            break;
          }
          if (probe_) {
            if (probing_) {
              const duration hint = verdict_hint_locked(probe_started_, probe_due_, ctx.now());
              lock.unlock();
              return reject(ctx, errc::circuit_open, circuit_state::half_open, hint);
            }
            // A probe run for a caller that has given up would report the caller, not the
            // dependency; the round stays half-open for the next caller.
            const bool cancelled = ctx.caller_stop_token().stop_requested();
            if (cancelled || ctx.expired()) {
              lock.unlock();
              return reject(ctx, cancelled ? errc::cancelled : errc::deadline_already_passed,
                            circuit_state::half_open, duration::zero());
            }
            probing_ = true;
            probe_started_ = ctx.now();
            probe_due_ = context::deadline_after(probe_started_, options_.probe_timeout);
            const time_point due = probe_due_;
            std::shared_ptr<const health_probe> probe = probe_;
            lock.unlock();
            word = run_probe(ctx, word, *probe, due);
            const time_point now = ctx.now();
            if (state_of(word) == circuit_state::open) {
              const time_point until = open_until();
              return reject(ctx, errc::circuit_open, circuit_state::open,
                            until > now ? until - now : duration::zero());
            }
            // The probe's round ended while it ran and another is half-open: that one is the
            // next caller's to probe. This caller has run its probe (at most probe_timeout).
            if (state_of(word) == circuit_state::half_open) {
              return reject(ctx, errc::circuit_open, circuit_state::half_open, duration::zero());
            }
            break;
          }
          // Both bounds: this round's admissions decide it, and trials still running from
          // an earlier round keep their permits, so the dependency never sees more than
          // half_open_permits trial calls at once.
          if (trials_admitted_ < options_.half_open_permits &&
              trials_in_flight_ < options_.half_open_permits) {
            if (trials_admitted_++ == 0) trials_started_ = ctx.now();
            ++trials_in_flight_;
            trials_due_ = std::max(trials_due_, ctx.deadline());
            return {word, true};
          }
          const duration hint = verdict_hint_locked(trials_started_, trials_due_, ctx.now());
          lock.unlock();
          return reject(ctx, errc::circuit_open, circuit_state::half_open, hint);
        }
      }
    }
  }

  std::uint64_t begin_half_open(std::uint64_t word, time_point now) {
    std::optional<breaker_state_changed> event;
    std::uint64_t current = 0;
    {
      std::lock_guard lock(mutex_);
      if (state_.load(std::memory_order_relaxed) == word) {
        event = move_locked(circuit_state::half_open, now, duration::zero());
      }
      current = state_.load(std::memory_order_relaxed);
    }
    emit(event);
    return current;
  }

  /// Runs the probe (this thread is the only prober: probing_ stays set until it returns,
  /// whatever transitions happen meanwhile) and applies its verdict if the round is still
  /// current; returns the state word after.
  std::uint64_t run_probe(context& ctx, std::uint64_t word, const health_probe& probe,
                          time_point due) {
    // A context of its own: a probe that runs a pipeline must not overwrite the caller's
    // attempt, outcome or classifier; and its own deadline (see set_health_probe).
    const auto [healthy, now] = detail::run_probe(probe, ctx, due);
    std::optional<breaker_state_changed> event;
    std::uint64_t current = 0;
    {
      std::lock_guard lock(mutex_);
      probing_ = false;
      if (state_.load(std::memory_order_relaxed) == word) {
        event = healthy ? close_locked(now) : reopen_locked(now);
      }
      current = state_.load(std::memory_order_relaxed);
    }
    emit(event);
    return current;
  }

  /// What a half-open refusal tells the caller to wait, so that an outer retry does not spend
  /// its attempts while a trial (or the probe) runs: as long again as it has run so far (at
  /// least 1 ms), so a caller's waits double while a slow trial goes on and stay short while
  /// trials are quick; never past the verdict's due time (the latest deadline of the round's
  /// trials, or the probe's), nor longer than the open duration that preceded the round.
  duration verdict_hint_locked(time_point started, time_point due, time_point now) const noexcept {
    constexpr duration floor = std::chrono::milliseconds(1);
    duration wait = std::max(now > started ? now - started : duration::zero(), floor);
    if (due > now && due < latest_deadline) wait = std::min(wait, due - now);
    if (last_open_for_ > duration::zero()) wait = std::min(wait, last_open_for_);
    return wait;
  }

  void finish_trial(std::uint64_t word, tally result, context& ctx) noexcept {
    const time_point now = ctx.now();
    std::optional<breaker_state_changed> event;
    {
      std::lock_guard lock(mutex_);
      --trials_in_flight_;
      if (state_.load(std::memory_order_relaxed) == word) {
        switch (result) {
          case tally::ignored:
            --trials_admitted_;  // the permit goes back: another call may try
            break;
          case tally::succeeded:
            ++trial_successes_;
            break;
          case tally::failed:
            ++trial_failures_;
            break;
        }
        if (trial_failures_ > options_.half_open_permits - trials_needed_) {
          event = reopen_locked(now);
        } else if (trial_successes_ >= trials_needed_) {
          event = close_locked(now);
        }
      }
    }
    emit(event);
  }

  void count_rejection(const context& ctx, circuit_state seen, duration retry_after) noexcept {
    rejections_.fetch_add(1, std::memory_order_relaxed);
    detail::notify(observer_, breaker_rejected{options_.name, ctx.name(), seen, retry_after});
  }
  admission reject(context& ctx, errc code, circuit_state seen, duration retry_after) noexcept {
    count_rejection(ctx, seen, retry_after);
    return {state_.load(std::memory_order_relaxed), false, code, retry_after};
  }

  // --- transitions (under mutex_) ------------------------------------------------------------
  void force(circuit_state to) {
    std::optional<breaker_state_changed> event;
    {
      std::lock_guard lock(mutex_);
      if (state_of(state_.load(std::memory_order_relaxed)) != to) {
        event = move_locked(to, clock_->now(), duration::zero());
      }
    }
    emit(event);
  }

  std::optional<breaker_state_changed> close_locked(time_point now) {
    trip_.clear();
    failed_half_opens_ = 0;
    last_open_for_ = duration::zero();
    if (state_of(state_.load(std::memory_order_relaxed)) == circuit_state::closed) {
      // Already closed (reset() of a closed breaker): a fresh window, no new epoch, no event.
      return std::nullopt;
    }
    return move_locked(circuit_state::closed, now, duration::zero());
  }

  std::optional<breaker_state_changed> reopen_locked(time_point now) {
    ++failed_half_opens_;
    return move_locked(circuit_state::open, now, next_open_duration_locked());
  }

  duration next_open_duration_locked() {
    default_random random;
    const int number = static_cast<int>(std::min<std::size_t>(failed_half_opens_, 1'000'000)) + 1;
    last_open_for_ = jittered_delay(options_.open_for, options_.open_jitter, number, last_open_for_,
                                    detail::schedule_cap(options_.open_for), random);
    return last_open_for_;
  }

  breaker_state_changed move_locked(circuit_state to, time_point now, duration open_for) {
    const std::uint64_t old_word = state_.load(std::memory_order_relaxed);
    breaker_state_changed event{options_.name, state_of(old_word), to,
                                now,           open_for,           trip_.counts(now)};
    if (to == circuit_state::open) {
      open_until_.store(context::saturating_add(now, open_for).time_since_epoch().count(),
                        std::memory_order_relaxed);
      times_opened_.fetch_add(1, std::memory_order_relaxed);
    }
    trials_admitted_ = 0;
    trial_successes_ = 0;
    trial_failures_ = 0;
    trials_due_ = time_point{};
    trials_started_ = time_point{};
    // probing_ is left alone: a probe still running belongs to no round, and it must end
    // before another may start (the probe never runs twice at once).
    since_.store(now.time_since_epoch().count(), std::memory_order_relaxed);
    const std::uint64_t generation = (old_word >> state_bits) + 1;
    state_.store((generation << state_bits) | static_cast<std::uint64_t>(to),
                 std::memory_order_release);
    return event;
  }

  // --- events: after the mutex is released (an observer may read metrics()) ---------------
  void emit(const std::optional<breaker_state_changed>& event) noexcept {
    if (event) detail::notify(observer_, *event);
  }

  const options_type options_;
  stockade::clock* clock_;
  [[no_unique_address]] Observer observer_;
  const std::size_t trials_needed_;

  // Read by every call; written only by transitions (under mutex_).
  alignas(64) std::atomic<std::uint64_t> state_{static_cast<std::uint64_t>(circuit_state::closed)};
  std::atomic<duration::rep> open_until_{0};
  std::atomic<duration::rep> since_;

  Trip trip_;  // its hot counters sit on cache lines of their own

  alignas(64) std::atomic<std::uint64_t> rejections_{0};
  std::atomic<std::uint64_t> times_opened_{0};

  mutable std::mutex mutex_;
  // Guarded by mutex_:
  std::size_t trials_admitted_ = 0;   // this round: running or finished with a verdict
  std::size_t trial_successes_ = 0;   // this round
  std::size_t trial_failures_ = 0;    // this round
  std::size_t trials_in_flight_ = 0;  // every round: admitted and not yet finished
  time_point trials_started_{};       // this round: when its first trial was admitted
  time_point trials_due_{};           // this round: the latest deadline of its trials
  bool probing_ = false;              // a probe runs (cleared only by the probe itself)
  time_point probe_started_{};        // the running probe's start
  time_point probe_due_{};            // and its deadline
  std::size_t failed_half_opens_ = 0;
  duration last_open_for_{0};
  std::shared_ptr<const health_probe> probe_;
};

/// circuit_breaker{options, parts...}: the strategy and schedule from the options, the observer
/// from the parts (none: null_observer).
template <class Trip, class Backoff, class... Parts>
circuit_breaker(circuit_breaker_options<Trip, Backoff>, Parts&&...)
    -> circuit_breaker<Trip, detail::part_of_t<detail::is_observer_part, null_observer, Parts...>,
                       Backoff>;

}  // namespace stockade
