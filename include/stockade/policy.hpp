// What a type must provide to be stacked in a pipeline (the `policy` concept), and the result
// types a policy sees. docs/custom-policy.md is the guide to writing one.
// Invariant: a policy calls `next(ctx)` at most once per attempt it allows, and ends every
// call in next's result, next's exception, or a documented stockade::error.
#pragma once

#include <concepts>
#include <functional>
#include <string>
#include <type_traits>
#include <utility>

#include "bounds.hpp"
#include "context.hpp"

namespace stockade {

/// What a policy sees for a callee that returns void.
struct void_result {};

namespace detail {

/// A callee's result as it travels through the layers: always an object type, so a policy can
/// write `auto result = next(ctx); return result;` for every callee.
template <class R>
struct stored_result {
  using type = R;
};
template <>
struct stored_result<void> {
  using type = void_result;
};
template <class R>
struct stored_result<R&> {
  using type = std::reference_wrapper<R>;
};
template <class R>
struct stored_result<R&&> {
  using type = R;
};
template <class R>
using stored_result_t = typename stored_result<R>::type;

/// A stand-in for `next` when checking the concept.
struct next_archetype {
  int operator()(context& /*unused*/) const { return 0; }
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
///   template <class Next> R invoke(context& ctx, Next&& next) const;
/// where `next(ctx)` runs the layers inside (and finally the callee) and returns R, an object
/// type (see void_result). Shared state (a breaker, a bulkhead) is held by std::ref, in which case
/// invoke may be non-const. Optional members used by analysis: worst_case(), describe().
template <class P>
concept policy = requires(const P& element, context& ctx, detail::next_archetype next) {
  { detail::layer_of(element).invoke(ctx, next) } -> std::same_as<int>;
};

/// A policy that does nothing but call the next layer; for tests and benchmarks, and the
/// smallest example of the concept.
struct pass_through {
  template <class Next>
  constexpr auto invoke(context& ctx, Next&& next) const {
    return std::forward<Next>(next)(ctx);
  }
  constexpr stack_bounds worst_case(const stack_bounds& inner) const noexcept { return inner; }
  static std::string describe() { return "pass_through"; }
};

}  // namespace stockade
