// The one adapter for what a user hands stockade that may or may not take the call's context: a
// callee, a factory, a warm-up, a probe, a hook that also takes the object it acts on.
// Invariant: the context is passed whenever the callable accepts it, after any other argument.
#pragma once

#include <functional>
#include <type_traits>
#include <utility>

#include "../context.hpp"

namespace stockade::detail {

/// F can be called as f(args..., ctx) or as f(args...).
template <class F, class... Args>
concept takes_context_or_not =
    std::is_invocable_v<F, Args..., context&> || std::is_invocable_v<F, Args...>;

/// f(args..., ctx) if f accepts the context, else f(args...).
template <class F, class... Args>
requires takes_context_or_not<F&&, Args&&...>
decltype(auto) call_with_context(F&& f, context& ctx, Args&&... args) {
  if constexpr (std::is_invocable_v<F&&, Args&&..., context&>) {
    return std::invoke(std::forward<F>(f), std::forward<Args>(args)..., ctx);
  } else {
    return std::invoke(std::forward<F>(f), std::forward<Args>(args)...);
  }
}

/// What call_with_context(f, ctx, args...) returns.
template <class F, class... Args>
using result_with_context_t = decltype(call_with_context(
    std::declval<F>(), std::declval<context&>(), std::declval<Args>()...));

}  // namespace stockade::detail
