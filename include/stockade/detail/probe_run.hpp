// The one engine that runs a health probe, for the health check and the breaker's probe alike:
// shared work on a context of its own, judged healthy only if it says so in time.
// Invariant: the probe sees the caller's clock and name and its own deadline, never the
// caller's deadline, stop token, attempt, outcome or classifier.
#pragma once

#include <functional>

#include "../clock.hpp"
#include "../context.hpp"

namespace stockade::detail {

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
