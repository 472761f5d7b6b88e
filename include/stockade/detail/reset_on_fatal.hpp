// The one way a layer answers a fatal verdict of the call inside it (the resource is broken:
// re-arm a warm-up, retire a connection): run the call, and if its outcome is fatal, reset.
// Invariant: the reset runs before the call's result goes on, which is unchanged.
#pragma once

#include <utility>

#include "../context.hpp"
#include "../verdict.hpp"

namespace stockade::detail {

/// A fatal verdict that the dependency gave (a rejection by a policy says nothing of it).
constexpr bool calls_for_reset(const outcome& result) noexcept {
  return result.kind == verdict::fatal && !result.rejected;
}

/// next(ctx), then reset() (noexcept) if the attempt's outcome calls for it.
template <class Next, class Reset>
auto run_resetting_on_fatal(context& ctx, Next&& next, Reset&& reset) {
  static_assert(noexcept(reset()),
                "a reset answers a failure that must reach the caller unchanged");
  auto ended = std::forward<Next>(next)(ctx);
  if (calls_for_reset(ended.outcome())) [[unlikely]] {
    reset();
  }
  return ended;
}

}  // namespace stockade::detail
