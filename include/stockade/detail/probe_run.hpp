// The one engine that runs a health probe, for the health check and the breaker's probe alike:
// shared work on a context of its own, judged healthy only if it says so in time.
// Invariant: the probe sees the caller's clock and name and its own deadline, never the
// caller's deadline, stop token, attempt, outcome or classifier.
#pragma once

#include <concepts>
#include <functional>
#include <type_traits>
#include <utility>

#include "../clock.hpp"
#include "../context.hpp"
#include "with_context.hpp"

namespace stockade::detail {

/// What a probe may be (the public name is stockade::health_probe): takes `context&` or nothing
/// and returns bool (healthy) or void (healthy unless it throws).
template <class P>
concept probe_callable =
    std::copy_constructible<std::decay_t<P>> && takes_context_or_not < std::decay_t<P>
& > &&(std::is_void_v<result_with_context_t<std::decay_t<P>&>> ||
       std::is_convertible_v<result_with_context_t<std::decay_t<P>&>, bool>);

/// A probe as both engines hold it.
template <probe_callable P>
std::function<bool(context&)> as_probe(P&& probe) {
  using F = std::decay_t<P>;
  return [f = F(std::forward<P>(probe))](context& ctx) mutable -> bool {
    if constexpr (std::is_void_v<result_with_context_t<F&>>) {
      call_with_context(f, ctx);
      return true;
    } else {
      return static_cast<bool>(call_with_context(f, ctx));
    }
  };
}

/// Runs `probe` for `caller` until `deadline`: healthy if it returns true by then; false, an
/// exception of any type, or an answer after the deadline are unhealthy. Returns the verdict
/// and the caller's time when the probe ended.
struct probe_answer {
  bool healthy = false;
  time_point finished{};
};

inline probe_answer run_probe(const std::function<bool(context&)>& probe, context& caller,
                              time_point deadline) {
  bool healthy = false;
  {
    context probe_ctx{caller.clock()};
    probe_ctx.set_deadline(deadline).set_name(caller.name());
    try {
      healthy = probe(probe_ctx);
    } catch (...) {  // NOLINT(bugprone-empty-catch): a probe that cannot tell says unhealthy
      healthy = false;
    }
  }
  const time_point finished = caller.refresh_now();
  return {healthy && finished <= deadline, finished};
}

}  // namespace stockade::detail
