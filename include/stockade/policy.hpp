// What a type must provide to be stacked in a pipeline (the `policy` concept), and the result
// types a policy sees. docs/custom-policy.md is the guide to writing one.
// Invariant: a policy calls `next(ctx)` at most once per attempt it allows, and ends every
// call in a result next returned or a documented error of its own, returned as a value.
#pragma once

#include <concepts>
#include <exception>
#include <functional>
#include <string>
#include <type_traits>
#include <utility>

#include "bounds.hpp"
#include "context.hpp"
#include "result.hpp"
#include "task.hpp"
#include "verdict.hpp"

namespace stockade {

namespace detail {

/// A stand-in for `next` when checking the concept: what every `next` a pipeline hands a layer
/// can do.
struct next_archetype {
  result<int> operator()(context& /*unused*/) const { return 0; }
  outcome classify_exception(const std::exception_ptr& /*unused*/) const { return {}; }
  template <class V>
  outcome classify_result(const V& /*unused*/) const {
    return {};
  }
};

/// The layer a pipeline element stands for: the element itself (held by value, used as const),
/// or the object a std::reference_wrapper points to (shared state, used as is).
template <class P>
constexpr const P& layer_of(const P& element) noexcept {
  return element;
}
template <class P>
constexpr P& layer_of(const std::reference_wrapper<P>& element) noexcept {
  return element.get();
}

}  // namespace detail

/// A policy is a type with
///   template <class Next> result<T> invoke(context& ctx, Next&& next) const;
/// where `next(ctx)` runs the layers inside (and finally the callee) and returns a
/// stockade::result<T>: the callee's value or the error it failed with, and its outcome. The
/// policy decides from it and returns it, or a result of its own (a rejection:
/// `result<T>::raised(call_error(code, hint))`); it never needs to catch. A policy that makes
/// an attempt's result in place of the callee (an injected fault, a fallback's value) has it
/// classified as the callee's would be: `next.classify_exception(exception_ptr)`,
/// `next.classify_result(value)`. Shared state (a
/// breaker, a bulkhead) is held by std::ref, in which case invoke may be non-const. Optional
/// members used by analysis: traits, worst_case(), describe().
template <class P>
concept policy = requires(const P& element, context& ctx, detail::next_archetype next) {
  { detail::layer_of(element).invoke(ctx, next) } -> std::same_as<result<int>>;
};

namespace detail {
/// A layer with a coroutine driver: `async_invoke(ctx, next)`, whose `next(ctx)` returns a
/// runtime's task of result<T>, returns a task of the same type (docs/async.md).
struct async_next_archetype {
  task<result<int>> operator()(context& ctx) const;
  outcome classify_exception(const std::exception_ptr& failure) const;
  template <class V>
  outcome classify_result(const V& value) const;
};
template <class P>
concept async_layer = requires(const P& element, context& ctx, async_next_archetype next) {
  detail::layer_of(element).async_invoke(ctx, next);
};
}  // namespace detail

/// A policy that does nothing but call the next layer; for tests and benchmarks, and the
/// smallest example of the concept.
struct pass_through {
  template <class Next>
  constexpr auto invoke(context& ctx, Next&& next) const {
    return std::forward<Next>(next)(ctx);
  }
  /// On the coroutine path, the inner task itself: no frame of its own.
  template <class Next>
  auto async_invoke(context& ctx, Next next) const {
    return next(ctx);
  }
  constexpr stack_bounds worst_case(const stack_bounds& inner) const noexcept { return inner; }
  static std::string describe() { return "pass_through"; }
};

}  // namespace stockade
