// A timeout narrows the call's deadline to "now + limit" for the layers inside it (never extends
// it), so an outer timeout bounds a whole retry loop and an inner one bounds each attempt.
// Invariant: the success path reads the clock at most once (the cached ctx.now()) and arms
// nothing; the stop token is armed by the context only if the callee asks for it. A late
// transient failure becomes errc::timeout as a value, with the failure kept as its cause.
#pragma once

#include <exception>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "bounds.hpp"
#include "context.hpp"
#include "detail/duration_text.hpp"
#include "detail/validate.hpp"
#include "errors.hpp"
#include "events.hpp"
#include "result.hpp"
#include "runtime.hpp"
#include "verdict.hpp"

namespace stockade {

/// Reported when an attempt failed at or after its deadline. A transient failure is then
/// replaced by stockade::error(errc::timeout) (`converted`); a fatal or permanent verdict is kept,
/// because it says more than "late" (reset the resource; never retry).
struct timeout_expired {
  static constexpr event_kind kind = event_kind::timeout_expired;
  std::string_view name;  ///< the call's context name
  duration limit;         ///< this timeout's limit
  duration late_by;       ///< how long after the deadline the failure came back
  verdict original;       ///< how the failure itself was classified
  bool converted;         ///< true if the caller sees errc::timeout instead of the failure
};

/// Reported when a value came back at or after the deadline; the value is kept (it is correct,
/// only late). Reported only with an observer other than null_observer, so that the success
/// path of an unobserved timeout never reads the clock a second time.
struct deadline_overrun {
  static constexpr event_kind kind = event_kind::deadline_overrun;
  std::string_view name;
  duration limit;
  duration late_by;
};

struct timeout_options {
  duration limit;  ///< no default: a timeout's length is the one thing only the caller knows

  constexpr void validate() const {
    detail::require(limit > duration::zero(), "timeout", "limit", "must be positive", limit);
  }
};

/// The timeout layer: `stockade::timeout{2s}`. Cooperative: it cannot stop a callee that does
/// not look at ctx.stop_token() / ctx.remaining(); see detached_timeout.hpp for those.
template <class Observer = null_observer>
class timeout {
 public:
  constexpr explicit timeout(duration limit, Observer observer = Observer{})
      : limit_((timeout_options{limit}.validate(), limit)), observer_(std::move(observer)) {}

  template <class Next>
  auto invoke(context& ctx, Next&& next) const {
    using result_type = std::invoke_result_t<Next&, context&>;
    const time_point start = ctx.now();
    if (ctx.deadline() <= start) [[unlikely]] {
      return result_type::raised(call_error(errc::deadline_already_passed));
    }
    const deadline_scope scope(ctx, context::deadline_after(start, limit_));
    result_type ended = next(ctx);
    judge_lateness(ctx, ended);
    return ended;
  }

  /// The coroutine driver: the same narrowed deadline for what is inside (its waits end at it,
  /// and ctx.stop_requested() turns true), and the same judgement of a late result. Like the
  /// blocking timeout it is cooperative: a callee that ignores the deadline is waited for.
  template <class Next>
  std::invoke_result_t<Next&, context&> async_invoke(context& ctx, Next next) const {
    using result_type = typename runtime_of<std::invoke_result_t<Next&, context&>>::value_type;
    const time_point start = ctx.now();
    if (ctx.deadline() <= start) {
      co_return result_type::raised(call_error(errc::deadline_already_passed));
    }
    const deadline_scope scope(ctx, context::deadline_after(start, limit_));
    result_type ended = co_await next(ctx);
    judge_lateness(ctx, ended);
    co_return ended;
  }

  constexpr duration limit() const noexcept { return limit_; }

  static constexpr layer_traits traits{.bounds_time = true};
  /// Bounds what is inside it by its limit, for a callee that honours the deadline (a callee
  /// that ignores it can overrun; detached_timeout does not wait for such a callee).
  constexpr stack_bounds worst_case(const stack_bounds& inner) const noexcept {
    return {inner.attempts, inner.elapsed.capped_at(limit_)};
  }
  std::string describe() const { return "timeout " + detail::duration_text(limit_); }
  constexpr timeout_options options() const noexcept { return {limit_}; }

 private:
  template <class Result>
  void judge_lateness(context& ctx, Result& ended) const {
    if (ended.has_value()) {
      if constexpr (!std::is_same_v<Observer, null_observer>) note_if_late(ctx);
    } else {
      convert_if_late(ctx, ended);
    }
  }

  void note_if_late(context& ctx) const {
    const time_point end = ctx.refresh_now();
    if (end >= ctx.deadline()) {
      detail::notify(observer_, deadline_overrun{ctx.name(), limit_, end - ctx.deadline()});
    }
  }

  // Leaves alone: rejections by inner policies (the dependency was not reached), an inner
  // layer's errc::timeout (already converted and reported), and anything that failed before
  // the deadline.
  template <class Result>
  void convert_if_late(context& ctx, Result& failed) const {
    const outcome seen = failed.outcome();
    if (seen.rejected || seen.succeeded() || failed.error().code() == errc::timeout) return;
    const time_point end = ctx.refresh_now();
    if (end < ctx.deadline()) return;
    const bool convert = seen.kind == verdict::transient;
    detail::notify(observer_,
                   timeout_expired{ctx.name(), limit_, end - ctx.deadline(), seen.kind, convert});
    if (convert) {
      // The late failure stays reachable as the timeout's cause (std::nested_exception).
      std::exception_ptr late = failed.error().to_exception_ptr();
      failed.fail(call_error(error_category(), static_cast<int>(errc::timeout), duration::zero(),
                             std::move(late)),
                  outcome{verdict::transient, seen.retry_after});
    }
  }

  duration limit_;
  [[no_unique_address]] mutable Observer observer_;  // events are reported from const invoke
};

template <class Rep, class Period>
timeout(std::chrono::duration<Rep, Period>) -> timeout<null_observer>;

}  // namespace stockade
