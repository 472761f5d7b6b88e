// Health check: a probe's result, cached for a max age and refreshed by one caller at a time
// (single flight) while every concurrent caller shares that one result; also a policy that
// refuses calls while the dependency is unhealthy.
// Invariant: freshness is one atomic word (epoch, fresh, healthy) cleared by a clock timer when
// the result ages out, so the fresh path reads no clock and takes no lock; a timer only clears
// the epoch it was armed for.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "bounds.hpp"
#include "clock.hpp"
#include "context.hpp"
#include "detail/duration_text.hpp"
#include "detail/parts.hpp"
#include "detail/probe_run.hpp"
#include "detail/timer_thread.hpp"
#include "detail/validate.hpp"
#include "detail/with_context.hpp"
#include "errors.hpp"
#include "events.hpp"
#include "result.hpp"
#include "runtime.hpp"
#include "single_flight.hpp"

namespace stockade {

struct health_check_options {
  /// How long a healthy result is reused. 10 s: Kubernetes' default probe period (periodSeconds).
  duration max_age = std::chrono::seconds(10);
  /// How long an unhealthy result is reused before the next probe. Shorter than max_age so a
  /// recovery is seen quickly, yet one probe per second at most however many callers are
  /// refused. (Envoy likewise has a separate `unhealthy_interval`.)
  duration unhealthy_max_age = std::chrono::seconds(1);
  /// The probe's own time limit: the deadline of the context it runs with; a probe that takes
  /// longer counts as unhealthy. 1 s: Kubernetes' default probe timeout (timeoutSeconds). The
  /// probe is shared work, so neither the deadline nor the stop token of the caller that runs
  /// it cuts it short (its result would be that one caller's give-up, not the dependency's
  /// health): that caller may return up to probe_timeout after its own deadline.
  duration probe_timeout = std::chrono::seconds(1);

  constexpr void validate() const {
    detail::require(max_age > duration::zero(), "health_check", "max_age", "must be positive",
                    max_age);
    detail::require(unhealthy_max_age > duration::zero(), "health_check", "unhealthy_max_age",
                    "must be positive", unhealthy_max_age);
    detail::require(probe_timeout > duration::zero(), "health_check", "probe_timeout",
                    "must be positive", probe_timeout);
  }
};

/// The probe ran (once, for every caller that was waiting for it).
struct health_probed {
  static constexpr event_kind kind = event_kind::health_probed;
  bool healthy;
  duration took;  ///< how long the probe ran (on the caller's clock)
  std::string_view name;
};

/// A call was refused because the last probe said "unhealthy".
struct health_rejected {
  static constexpr event_kind kind = event_kind::health_rejected;
  duration retry_after;  ///< until the unhealthy result ages out and a probe runs again
  std::string_view name;
};

/// What the health check knows, for dashboards and tests.
struct health_status {
  bool healthy = false;      ///< the last result (false before the first probe)
  bool fresh = false;        ///< younger than its max age
  time_point checked_at{};   ///< when the last probe finished (on the health check's clock)
  std::uint64_t probes = 0;  ///< probes run so far
};

/// What a probe may be: takes `context&` or nothing; returns bool (healthy) or void (healthy
/// unless it throws). A probe that throws reports "unhealthy".
template <class P>
concept health_probe = detail::probe_callable<P>;

namespace detail {

/// A timer on a clock that runs `Action` (once) unless disarmed first. For work that must happen
/// at a time outside any call (a result ageing out) without a thread of its own.
template <class Action>
class clock_alarm {
 public:
  clock_alarm() = default;
  clock_alarm(const clock_alarm&) = delete;
  clock_alarm& operator=(const clock_alarm&) = delete;
  ~clock_alarm() { disarm(); }

  /// Replaces any alarm set before. A time already past runs `action` soon (at once, on this
  /// thread, with a manual clock).
  void arm(clock& on, time_point at, Action action) {
    disarm();
    if (at == no_deadline) return;  // never: no timer at all
    action_.emplace(std::move(action));
    on.arm(timer_, at);
    clock_ = &on;
  }
  /// After disarm() returns, the action is not running (unless it is the caller) and will not
  /// run. The action is kept: an action may disarm its own alarm while it runs.
  void disarm() noexcept {
    if (clock_ != nullptr) (void)clock_->cancel(timer_);
    clock_ = nullptr;
  }

 private:
  static void due(void* self) noexcept { (*static_cast<clock_alarm*>(self)->action_)(); }

  clock* clock_ = nullptr;  // set while timer_ is armed
  std::optional<Action> action_;
  timer timer_{timer::purpose::alarm, &due, this};
};

/// Keeps the real clock's timer thread alive as long as an object made after this call:
/// function-local statics die in reverse order of construction, so a static health check or
/// resource that disarms an alarm in its destructor never finds the timer already gone.
inline void outlive_me_timer(clock& on) {
  if (&on == &real_clock::instance()) (void)timer_thread::instance();
}

}  // namespace detail

template <class Observer = null_observer>
class health_check {
 public:
  /// `probe` checks the dependency (see health_probe); then its options, then in any order its
  /// clock (by reference; the real clock if none), which times the max age and must be the
  /// clock the callers' contexts use, and its observer.
  template <class Probe, class... Parts>
  requires(!std::is_same_v<std::remove_cvref_t<Probe>, health_check> &&
           health_probe<Probe>) explicit health_check(Probe&& probe,
                                                      health_check_options options = {},
                                                      Parts&&... parts)
      : probe_(detail::as_probe(std::forward<Probe>(probe))),
        options_((options.validate(), options)),
        clock_(&detail::clock_in<Parts...>(parts...)),
        observer_(detail::take_part<detail::is_observer_part, Observer>(parts...)) {
    detail::outlive_me_timer(*clock_);
  }

  health_check(const health_check&) = delete;
  health_check& operator=(const health_check&) = delete;
  ~health_check() {
    std::lock_guard lock(publish_mutex_);
    alarm_.disarm();
  }

  /// A callback run once per probe that reports unhealthy (not once per refused call), e.g. to
  /// reset a warm-up gate or retire a connection. Set it before the health check is shared.
  void on_unhealthy(std::function<void()> reset_action) { reset_action_ = std::move(reset_action); }

  /// The last result while it is fresh; otherwise probes (one caller probes, every concurrent
  /// caller gets its result). A caller whose deadline passes while another caller's probe runs
  /// throws stockade::error(errc::timeout); one whose stop token fires, errc::cancelled.
  bool check(context& ctx) {
    const std::uint64_t word = state_.load(std::memory_order_acquire);
    if ((word & fresh_bit) != 0) [[likely]] {
      return (word & healthy_bit) != 0;
    }
    return probe_flight_.run(ctx, [this](context& leader) { return probe_as_leader(leader); });
  }
  /// check() for a caller without a context: no deadline (the probe still has its timeout).
  bool check() {
    context ctx{*clock_};
    return check(ctx);
  }

  /// True while a fresh result says healthy: what the policy's fast path tests.
  bool fresh_and_healthy() const noexcept {
    return (state_.load(std::memory_order_acquire) & both_bits) == both_bits;
  }

  health_status status() const {
    const std::uint64_t word = state_.load(std::memory_order_acquire);
    std::lock_guard lock(publish_mutex_);
    return {(word & healthy_bit) != 0, (word & fresh_bit) != 0, checked_at_, probes_};
  }

  /// Makes the last result stale: the next check() probes.
  void invalidate() noexcept {
    std::uint64_t word = state_.load(std::memory_order_relaxed);
    while (!state_.compare_exchange_weak(word, word & ~fresh_bit, std::memory_order_acq_rel)) {
    }
  }

  /// As a policy: the call goes through while health is fresh and healthy (one atomic load);
  /// otherwise the health is checked first, and an unhealthy result refuses the call with
  /// stockade::error(errc::unhealthy) (transient, retry_after: until the next probe is due).
  template <class Next>
  auto invoke(context& ctx, Next&& next) {
    using result_type = std::invoke_result_t<Next&, context&>;
    if (!fresh_and_healthy()) [[unlikely]] {
      if (std::optional<call_error> refused = refusal(ctx)) {
        return result_type::raised(std::move(*refused));
      }
    }
    return std::forward<Next>(next)(ctx);
  }

  /// The coroutine driver: the same check; a caller that finds the result stale while another
  /// caller probes waits for that probe as a suspended coroutine (the caller that leads runs
  /// the probe on its own thread).
  template <class Next>
  std::invoke_result_t<Next&, context&> async_invoke(context& ctx, Next next) {
    using runtime = runtime_of<std::invoke_result_t<Next&, context&>>;
    using result_type = typename runtime::value_type;
    if (!fresh_and_healthy()) [[unlikely]] {
      const std::uint64_t word = state_.load(std::memory_order_acquire);
      bool healthy = (word & both_bits) == both_bits;
      std::optional<call_error> refused;
      if ((word & fresh_bit) == 0) {
        try {
          healthy = co_await probe_flight_.template run_async<runtime>(
              ctx, [this](context& leader) { return probe_as_leader(leader); });
        } catch (const error& gave_up) {
          refused.emplace(gave_up);
        }
      }
      if (!refused && !healthy) refused.emplace(unhealthy_refusal(ctx));
      if (refused) co_return result_type::raised(std::move(*refused));
    }
    co_return co_await next(ctx);
  }

  constexpr const health_check_options& options() const noexcept { return options_; }

  /// A caller that finds the result stale may run the probe (at most probe_timeout, whatever its
  /// own deadline) or wait for another caller's until its deadline, then for the next one: put a
  /// timeout outside the health check for the waiters.
  constexpr stack_bounds worst_case(const stack_bounds& inner) const noexcept {
    return {inner.attempts,
            bound<duration>::unbounded("health_check: a caller may wait through several callers' "
                                       "probes until its own deadline")};
  }
  std::string describe() const {
    return "health_check: max_age " + detail::duration_text(options_.max_age) +
           ", unhealthy_max_age " + detail::duration_text(options_.unhealthy_max_age) +
           ", probe_timeout " + detail::duration_text(options_.probe_timeout);
  }
  Observer& observer() noexcept { return observer_; }

 private:
  static constexpr std::uint64_t fresh_bit = 1;
  static constexpr std::uint64_t healthy_bit = 2;
  static constexpr std::uint64_t both_bits = fresh_bit | healthy_bit;
  static constexpr unsigned epoch_shift = 2;

  /// Clears `fresh` when the result of `epoch` ages out (a later result has another epoch).
  struct age_out {
    health_check* owner;
    std::uint64_t epoch;
    void operator()() const noexcept {
      std::uint64_t word = owner->state_.load(std::memory_order_relaxed);
      while ((word >> epoch_shift) == epoch && (word & fresh_bit) != 0 &&
             !owner->state_.compare_exchange_weak(word, word & ~fresh_bit,
                                                  std::memory_order_acq_rel)) {
      }
    }
  };

  bool probe_as_leader(context& leader) {
    // A run that finished while this caller queued for the flight already refreshed the result.
    const std::uint64_t word = state_.load(std::memory_order_acquire);
    if ((word & fresh_bit) != 0) return (word & healthy_bit) != 0;

    // Bounded by probe_timeout alone (see there), so whatever it says is the dependency's
    // answer: published below, whoever still waits for it.
    const time_point started = leader.refresh_now();
    const auto [healthy, finished] =
        detail::run_probe(probe_, leader, context::deadline_after(started, options_.probe_timeout));

    publish(healthy);
    detail::notify(observer_, health_probed{healthy, finished - started, leader.name()});
    if (!healthy && reset_action_) reset_action_();
    return healthy;
  }

  void publish(bool healthy) {
    std::lock_guard lock(publish_mutex_);
    const std::uint64_t epoch = ++epoch_;
    state_.store((epoch << epoch_shift) | fresh_bit | (healthy ? healthy_bit : 0),
                 std::memory_order_release);
    checked_at_ = clock_->now();
    ++probes_;
    const duration age = healthy ? options_.max_age : options_.unhealthy_max_age;
    alarm_.arm(*clock_, context::saturating_add(checked_at_, age), age_out{this, epoch});
  }

  /// Why the call may not go on, or nullopt if healthy: errc::unhealthy (with the time until
  /// the next probe), or a wait for another caller's probe cut short (timeout, cancelled).
  std::optional<call_error> refusal(context& ctx) {
    try {
      if (check(ctx)) return std::nullopt;
    } catch (const error& gave_up) {
      return call_error(gave_up);
    }
    return unhealthy_refusal(ctx);
  }

  /// errc::unhealthy, with the time until the next probe is due as its hint.
  call_error unhealthy_refusal(context& ctx) {
    duration retry_after{0};
    const time_point now = ctx.recent_now();  // never ahead: the hint is never early
    {
      std::lock_guard lock(publish_mutex_);
      const time_point due = context::saturating_add(checked_at_, options_.unhealthy_max_age);
      if (due > now) retry_after = due - now;
    }
    detail::notify(observer_, health_rejected{retry_after, ctx.name()});
    return call_error(errc::unhealthy, retry_after);
  }

  std::function<bool(context&)> probe_;
  std::function<void()> reset_action_;
  health_check_options options_;
  clock* clock_;
  [[no_unique_address]] Observer observer_;
  std::atomic<std::uint64_t> state_{0};  // epoch << 2 | healthy | fresh
  flight<bool> probe_flight_{errc::timeout};
  mutable std::mutex publish_mutex_;  // guards the fields below; never held while probing
  std::uint64_t epoch_ = 0;
  time_point checked_at_{};
  std::uint64_t probes_ = 0;
  detail::clock_alarm<age_out> alarm_;
};

/// health_check{probe, options, parts...}: the observer from the parts (none: null_observer).
template <class Probe, class... Parts>
requires health_probe<Probe> health_check(Probe&&, health_check_options, Parts&&...)
->health_check<detail::part_of_t<detail::is_observer_part, null_observer, Parts...>>;

}  // namespace stockade
