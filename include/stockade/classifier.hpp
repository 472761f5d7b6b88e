// The classifier turns each attempt's result or exception into an `outcome`, exactly once per
// attempt; it is the main customization point and is chosen per pipeline.
// Invariant: stockade's own rejections are recognised before any user rule, so a broad user
// rule (say, on<std::exception, ...>) can never turn "bulkhead full" into a dependency failure.
#pragma once

#include <concepts>
#include <cstddef>
#include <exception>
#include <new>
#include <optional>
#include <stdexcept>
#include <tuple>
#include <type_traits>
#include <utility>

#include "errors.hpp"
#include "verdict.hpp"

namespace stockade {

/// Exception rule written as a type: an exception of type E (or derived from E) gets verdict V.
template <class E, verdict V>
struct on {
  using exception_type = E;
  constexpr outcome operator()(const E& /*unused*/) const noexcept { return V; }
};

/// Exception rule that inspects the exception: `inspect(const E&)` returns a verdict, an
/// outcome, or std::optional of either (nullopt: "not mine", the next rule decides).
template <class E, class F>
struct exception_rule {
  using exception_type = E;
  F inspect;
  constexpr auto operator()(const E& e) const { return inspect(e); }
};
template <class E, class F>
constexpr exception_rule<E, std::decay_t<F>> when(F&& inspect) {
  return {std::forward<F>(inspect)};
}

/// Rule for returned values: `inspect(const R&)` for the R it accepts returns a verdict, an
/// outcome, or std::optional of either (nullopt: the next rule decides).
template <class F>
struct result_rule {
  F inspect;
};
template <class F>
constexpr result_rule<std::decay_t<F>> on_result(F&& inspect) {
  return {std::forward<F>(inspect)};
}

namespace detail {

template <class T>
concept exception_rule_type = requires {
  typename T::exception_type;
};

template <class T>
struct is_result_rule : std::false_type {};
template <class F>
struct is_result_rule<result_rule<F>> : std::true_type {};

/// A rule's answer as an optional outcome: verdicts and outcomes always decide.
template <class A>
constexpr std::optional<outcome> as_decision(A&& answer) {
  if constexpr (std::is_convertible_v<A, outcome>) {
    return outcome(std::forward<A>(answer));
  } else {
    if (!answer) return std::nullopt;
    return outcome(*answer);
  }
}

/// Types like std::expected and tl::expected: a value or an error.
template <class R>
concept expected_like = requires(const R& r) {
  { r.has_value() } -> std::convertible_to<bool>;
  r.error();
};

}  // namespace detail

/// The defaults, in one place (docs/classifier.md explains each):
/// - stockade::error: rejections stay rejections (transient, flagged, with their retry-after);
///   any other code gets the verdict its family's category gives (stockade's own: resource_closed
///   is permanent, every other one (timeout, warm-up, health) is transient).
/// - std::logic_error and everything derived from it (invalid_argument, out_of_range, ...):
///   permanent, the caller's mistake.
/// - any other exception, of any type: transient.
/// - a returned expected-like value without a value: transient; any other value: success.
struct default_rules {
  static outcome classify_stockade_error(const error& e) noexcept {
    if (e.is_rejection()) return {verdict::transient, e.retry_after(), true};
    const verdict kind = e.default_verdict();
    if (kind == verdict::permanent) return kind;  // never retried: a hint would mean nothing
    // A thrown error is never a success, whatever a category says: it is a transient failure.
    return {kind == verdict::success ? verdict::transient : kind, e.retry_after()};
  }

  static outcome classify_exception(const std::exception_ptr& failure) noexcept {
    try {
      std::rethrow_exception(failure);
    } catch (const error& e) {
      return classify_stockade_error(e);
    } catch (const std::logic_error&) {
      return verdict::permanent;
    } catch (...) {
      return verdict::transient;
    }
  }

  template <class R>
  static constexpr outcome classify_result(const R& result) noexcept {
    if constexpr (detail::expected_like<R>) {
      return result.has_value() ? verdict::success : verdict::transient;
    } else {
      return verdict::success;
    }
  }
};

/// A classifier built from rules, tried in order (first match wins), then the defaults above.
///   classifier{on<timeout_error, verdict::transient>{},
///              when<db_error>([](const db_error& e) { return e.fatal() ? verdict::fatal
///                                                                    : verdict::transient; }),
///              on_result([](const response& r) { return r.status >= 500 ? verdict::transient
///                                                                       : verdict::success; })}
template <class... Rules>
class classifier {
 public:
  constexpr classifier() = default;
  constexpr explicit classifier(Rules... rules) requires(sizeof...(Rules) > 0)
      : rules_(std::move(rules)...) {}

  /// Classifies the exception being handled; call it only inside a catch block.
  outcome classify_current_exception() const {
    return classify_exception(std::current_exception());
  }

  outcome classify_exception(const std::exception_ptr& failure) const {
    // Policies' rejections first, so no user rule can hide them.
    try {
      std::rethrow_exception(failure);
    } catch (const error& e) {
      if (e.is_rejection()) return default_rules::classify_stockade_error(e);
    } catch (...) {
    }
    return match_exception<0>(failure);
  }

  template <class R>
  constexpr outcome classify_result(const R& result) const {
    return match_result<0>(result);
  }

 private:
  template <std::size_t I>
  outcome match_exception(const std::exception_ptr& failure) const {
    if constexpr (I == sizeof...(Rules)) {
      return default_rules::classify_exception(failure);
    } else {
      using rule = std::tuple_element_t<I, std::tuple<Rules...>>;
      if constexpr (detail::exception_rule_type<rule>) {
        std::optional<outcome> decided;
        try {
          std::rethrow_exception(failure);
        } catch (const typename rule::exception_type& e) {
          decided = detail::as_decision(std::get<I>(rules_)(e));
        } catch (...) {
        }
        if (decided) return *decided;
      }
      return match_exception<I + 1>(failure);
    }
  }

  template <std::size_t I, class R>
  constexpr outcome match_result(const R& result) const {
    if constexpr (I == sizeof...(Rules)) {
      return default_rules::classify_result(result);
    } else {
      using rule = std::tuple_element_t<I, std::tuple<Rules...>>;
      if constexpr (detail::is_result_rule<rule>::value) {
        if constexpr (std::is_invocable_v<const decltype(rule::inspect)&, const R&>) {
          if (auto decided = detail::as_decision(std::get<I>(rules_).inspect(result))) {
            return *decided;
          }
        }
      }
      return match_result<I + 1>(result);
    }
  }

  [[no_unique_address]] std::tuple<Rules...> rules_;
};

template <class... Rules>
classifier(Rules...) -> classifier<Rules...>;

/// The classifier a pipeline uses unless told otherwise: the defaults alone.
using default_classifier = classifier<>;

/// What a classifier must provide. Any type with these two members can be a pipeline's
/// classifier; `classifier<...>` is the ready-made one.
template <class C, class R>
concept classifier_for = requires(const C& c, const R& result, const std::exception_ptr& e) {
  { c.classify_exception(e) } -> std::same_as<outcome>;
  { c.classify_result(result) } -> std::same_as<outcome>;
};

}  // namespace stockade
