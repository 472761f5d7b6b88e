// Ordering checks of a stack, made when a pipeline is built (docs/composition.md): orders of
// layers that multiply or waste time are refused with a message that says why, unless the stack
// opts out of that one check with an `allow_...` layer, which does nothing else.
// Invariant: a check looks only at layer_traits (bounds.hpp), so a user's own policy that
// states `traits{.repeats = true}` is checked like stockade::retry.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include "bounds.hpp"
#include "context.hpp"
#include "detail/duration_text.hpp"
#include "policy.hpp"

namespace stockade {

/// The checks a stack can opt out of.
/// Each is named for the library's own layers and applies to any with the same traits.
enum class stack_check : std::uint8_t {
  nested_retries,             ///< two layers that repeat: attempts and waits multiply
  breaker_outside_retry,      ///< a layer that sees each attempt, outside one that repeats
  bulkhead_outside_retry,     ///< a layer that holds capacity, outside one that repeats
  inner_timeout_not_shorter,  ///< a timeout inside a retry >= one outside it: no time to retry
};

constexpr const char* to_string(stack_check check) noexcept {
  switch (check) {
    case stack_check::nested_retries:
      return "nested retries";
    case stack_check::breaker_outside_retry:
      return "breaker outside retry";
    case stack_check::bulkhead_outside_retry:
      return "bulkhead outside retry";
    case stack_check::inner_timeout_not_shorter:
      return "inner timeout not shorter";
  }
  return "unknown";
}

/// A layer that turns the named checks off for its stack and otherwise passes calls through:
/// `pipeline{stockade::allow_nested_retries, retry{...}, ..., retry{...}}`. Put it first, where
/// a reader sees it.
template <stack_check... Allowed>
struct allow {
  static constexpr bool allows(stack_check check) noexcept { return ((check == Allowed) || ...); }

  template <class Next>
  constexpr auto invoke(context& ctx, Next&& next) const {
    return std::forward<Next>(next)(ctx);
  }
  constexpr stack_bounds worst_case(const stack_bounds& inner) const noexcept { return inner; }
  std::string describe() const {
    std::string text = "allow (checks turned off:";
    ((text += std::string(" ") + to_string(Allowed) + ";"), ...);
    text.back() = ')';
    return text;
  }
};

inline constexpr allow<stack_check::nested_retries> allow_nested_retries{};
inline constexpr allow<stack_check::breaker_outside_retry> allow_breaker_outside_retry{};
inline constexpr allow<stack_check::bulkhead_outside_retry> allow_bulkhead_outside_retry{};
inline constexpr allow<stack_check::inner_timeout_not_shorter> allow_inner_timeout_not_shorter{};

namespace detail {

/// The layer type an element of a pipeline stands for: what layer_of (policy.hpp) gives.
template <class P>
using layer_type_t = std::remove_cvref_t<decltype(layer_of(std::declval<const P&>()))>;

template <class P>
constexpr layer_traits traits_of() noexcept {
  using layer = layer_type_t<P>;
  static_assert(
      !requires { layer::role; },
      "stockade: a policy states `static constexpr stockade::layer_traits traits{...}` "
      "for the order checks; the `role` member they read before is gone");
  if constexpr (requires {
                  { layer::traits } -> std::convertible_to<layer_traits>;
                }) {
    return layer::traits;
  } else {
    return layer_traits{};
  }
}

/// One property of a layer's traits, e.g. &layer_traits::repeats.
using layer_property = bool layer_traits::*;

template <class P>
constexpr bool allows(stack_check check) noexcept {
  using layer = layer_type_t<P>;
  if constexpr (requires { layer::allows(check); }) {
    return layer::allows(check);
  } else {
    return false;
  }
}

/// The shape of a stack, outermost first: what the type-level checks read.
template <class... Policies>
struct stack_shape {
  static constexpr std::array<layer_traits, sizeof...(Policies)> traits{traits_of<Policies>()...};

  static constexpr bool allowed([[maybe_unused]] stack_check check) noexcept {
    return (allows<Policies>(check) || ...);
  }
  /// How many layers have `property`.
  static constexpr std::size_t count(layer_property property) noexcept {
    std::size_t n = 0;
    for (const layer_traits& t : traits) n += t.*property ? 1 : 0;
    return n;
  }
  /// True if a layer with `outer` sits outside (before) a different layer with `inner`.
  static constexpr bool outside(layer_property outer, layer_property inner) noexcept {
    bool seen_outer = false;
    for (const layer_traits& t : traits) {
      if (t.*inner && seen_outer) return true;
      if (t.*outer) seen_outer = true;
    }
    return false;
  }
};

/// The checks that need only types, made when a pipeline type is instantiated.
template <class... Policies>
struct stack_order_checks {
  using shape = stack_shape<Policies...>;
  static_assert(shape::count(&layer_traits::repeats) <= 1 ||
                    shape::allowed(stack_check::nested_retries),
                "stockade::pipeline: two retry layers (two layers that repeat what is inside "
                "them) in one stack multiply their attempts and their waits (the post-mortem's "
                "three nested retries could take 15.5 s inside a 10 s limit). Keep one, or add "
                "stockade::allow_nested_retries to the stack if that is intended.");
  static_assert(!shape::outside(&layer_traits::sees_each_attempt, &layer_traits::repeats) ||
                    shape::allowed(stack_check::breaker_outside_retry),
                "stockade::pipeline: a circuit breaker outside a retry (any layer that sees each "
                "attempt, outside one that repeats) sees one outcome per call (all its failed "
                "attempts count once), and its rejections never reach the retry. Put it inside "
                "the retry (each attempt counted, its open time used as a retry-after hint), or "
                "add stockade::allow_breaker_outside_retry to the stack.");
  static_assert(!shape::outside(&layer_traits::holds_capacity, &layer_traits::repeats) ||
                    shape::allowed(stack_check::bulkhead_outside_retry),
                "stockade::pipeline: a bulkhead outside a retry (any layer that holds capacity, "
                "outside one that repeats) holds its slot through every back-off wait, so "
                "sleeping calls starve working ones. Put it inside the retry, or add "
                "stockade::allow_bulkhead_outside_retry to the stack.");
  static constexpr bool passed = true;
};

// Named for what went wrong, so a constexpr pipeline's compile error names it too.
[[noreturn]] inline void timeout_inside_a_retry_is_not_shorter_than_the_one_outside_it(
    duration inner, duration outer) {
  throw std::invalid_argument(
      "stockade::pipeline: the timeout inside a retry (" + duration_text(inner) +
      ") is not shorter than the timeout outside it (" + duration_text(outer) +
      "): the first attempt that times out uses up the whole call, so the retry never runs "
      "again. Make the inner timeout shorter, or add stockade::allow_inner_timeout_not_shorter "
      "to the stack if that is intended.");
}
[[noreturn]] inline void timeout_inside_a_retry_is_not_shorter_than_its_max_elapsed(
    duration inner, duration max_elapsed) {
  throw std::invalid_argument(
      "stockade::pipeline: the timeout inside a retry (" + duration_text(inner) +
      ") is not shorter than the retry's max_elapsed (" + duration_text(max_elapsed) +
      "): an attempt that times out ends past max_elapsed, so the retry never runs again. Make "
      "the inner timeout shorter, or add stockade::allow_inner_timeout_not_shorter to the "
      "stack if that is intended.");
}

/// What the timeout check reads of one layer: a timeout's limit, a retry's max_elapsed.
struct timing_of_layer {
  bool retry = false;
  duration timeout = duration::max();      // duration::max(): not a timeout
  duration max_elapsed = duration::max();  // duration::max(): no limit (or not a retry)
};

template <class Element>
constexpr timing_of_layer timing_of(const Element& element) {
  timing_of_layer timing;
  const auto& layer = layer_of(element);
  constexpr layer_traits traits = traits_of<Element>();
  if constexpr (traits.repeats) {
    timing.retry = true;
    if constexpr (requires { duration{layer.options().max_elapsed}; }) {
      timing.max_elapsed = layer.options().max_elapsed;
    }
  }
  if constexpr (traits.bounds_time) {
    static_assert(
        requires { duration{layer.limit()}; },
        "a policy whose traits say bounds_time must have `duration limit() const`");
    timing.timeout = layer.limit();
  }
  return timing;
}

/// The check that needs values, not only types: made when the pipeline is built (at compile
/// time if the pipeline is constexpr). For each retry, the shortest timeout inside it (what
/// bounds an attempt) must be shorter than the shortest one outside it and than its own
/// max_elapsed; a redundant longer timeout beside a shorter one is not this check's business.
template <class Layers, std::size_t... I>
constexpr void check_timeout_order(const Layers& layers, std::index_sequence<I...> /*unused*/) {
  const std::array<timing_of_layer, sizeof...(I)> timings{timing_of(std::get<I>(layers))...};
  for (std::size_t k = 0; k < timings.size(); ++k) {
    if (!timings[k].retry) continue;
    duration outer = duration::max();
    duration inner = duration::max();
    for (std::size_t i = 0; i < k; ++i) outer = std::min(outer, timings[i].timeout);
    for (std::size_t j = k + 1; j < timings.size(); ++j)
      inner = std::min(inner, timings[j].timeout);
    if (inner == duration::max()) continue;
    if (outer != duration::max() && inner >= outer) {
      timeout_inside_a_retry_is_not_shorter_than_the_one_outside_it(inner, outer);
    }
    if (timings[k].max_elapsed != duration::max() && inner >= timings[k].max_elapsed) {
      timeout_inside_a_retry_is_not_shorter_than_its_max_elapsed(inner, timings[k].max_elapsed);
    }
  }
}

}  // namespace detail

}  // namespace stockade
