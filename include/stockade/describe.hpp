// A stack in words, for logs and docs: describe(pipeline) lists the layers outermost first, each
// with its configuration and the worst case of the stack from that layer inward, so a reader
// sees where a bound comes from and which layer leaves a call unbounded (docs/composition.md).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <tuple>
#include <utility>

#include "bounds.hpp"
#include "detail/duration_text.hpp"
#include "pipeline.hpp"

namespace stockade {

/// "4", or "unbounded (because of <layer>)".
inline std::string to_string(const bound<std::int64_t>& attempts) {
  if (!attempts.bounded()) return "unbounded (" + std::string(attempts.unbounded_by()) + ")";
  return std::to_string(attempts.value());
}
/// "15.5s", or "unbounded (because of <layer>)".
inline std::string to_string(const bound<duration>& elapsed) {
  if (!elapsed.bounded()) return "unbounded (" + std::string(elapsed.unbounded_by()) + ")";
  return detail::duration_text(elapsed.value());
}
/// "at most 12 attempts, at most 15.5s", or "time unbounded (...)" for what has no bound.
inline std::string to_string(const stack_bounds& bounds) {
  const bool one = bounds.attempts.bounded() && bounds.attempts.value() == 1;
  const std::string attempts = bounds.attempts.bounded() ? "at most " + to_string(bounds.attempts) +
                                                               (one ? " attempt" : " attempts")
                                                         : "attempts " + to_string(bounds.attempts);
  const std::string elapsed = bounds.elapsed.bounded() ? "at most " + to_string(bounds.elapsed)
                                                       : "time " + to_string(bounds.elapsed);
  return attempts + ", " + elapsed;
}

namespace detail {

template <class Layer>
std::string describe_layer(const Layer& layer) {
  if constexpr (requires { std::string(layer.describe()); }) {
    return std::string(layer.describe());
  } else {
    static_assert(
        !requires(Layer & mutable_layer) { mutable_layer.describe(); },
        "a policy's describe() must be const");
    return "a policy without describe()";
  }
}

}  // namespace detail

/// The layers of `stack`, outermost first, then the callable, e.g.
///   1. timeout 8s
///        from here in: at most 4 attempts, at most 8s
///   2. retry: max_attempts 4, backoff exponential 200ms x2 up to 2s, ...
///   ...
///   callable
///   worst case: at most 4 attempts, at most 8s
/// `callee` states what the callable itself is known to take (default: nothing known).
template <class Classifier, class... Policies>
std::string describe(const basic_pipeline<Classifier, Policies...>& stack,
                     const stack_bounds& callee = stack_bounds::of_callee()) {
  std::string text = "pipeline of " + std::to_string(sizeof...(Policies)) +
                     (sizeof...(Policies) == 1 ? " layer" : " layers") + ", outermost first:\n";
  const auto& layers = stack.layers();
  [&]<std::size_t... I>(std::index_sequence<I...>) {
    ((text += "  " + std::to_string(I + 1) + ". " +
              detail::describe_layer(detail::layer_of(std::get<I>(layers))) +
              "\n       from here in: " + to_string(detail::stack_bounds_from<I>(layers, callee)) +
              "\n"),
     ...);
  }
  (std::index_sequence_for<Policies...>{});
  text += "  callable: " + to_string(callee) + "\n";
  text += "worst case: " + to_string(stack.worst_case(callee));
  return text;
}

}  // namespace stockade
