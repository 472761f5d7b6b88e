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
#include "result.hpp"
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

/// Inside a handler that caught `const E& e`: the same exception object as a `To` if it is one,
/// else null; `unknown` is set when that cannot be told without rethrowing (E is not a class
/// with virtual functions and To is not a base of it). Mirrors what a catch clause for To would
/// match: public, unambiguous bases only.
template <class To, class E>
const To* also_as(const E& e, bool& unknown) noexcept {
  if constexpr (std::is_convertible_v<const E*, const To*>) {
    return &e;
  } else if constexpr (std::is_class_v<To> != std::is_class_v<E>) {
    return nullptr;  // a class object and a non-class one are never the same exception
  } else if constexpr (std::is_class_v<To> && std::is_polymorphic_v<E>) {
    return dynamic_cast<const To*>(&e);
  } else if constexpr (std::is_arithmetic_v<E> || std::is_enum_v<E>) {
    return nullptr;  // only a handler of its own type matches it (the first case)
  } else {
    unknown = true;
    return nullptr;
  }
}

}  // namespace detail

/// The defaults, in one place (docs/classifier.md explains each):
/// - stockade::error: rejections stay rejections (transient, flagged, with their retry-after);
///   any other code gets the verdict its family's category gives (stockade's own: resource_closed
///   is permanent, every other one (timeout, warm-up, health) is transient).
/// - std::logic_error and everything derived from it (invalid_argument, out_of_range, ...):
///   permanent, the caller's mistake.
/// - any other exception, of any type: transient.
/// - a returned expected-like value without a value: transient; any other value: success.
/// - a returned stockade::result (a nested pipeline's try_call): its own outcome.
struct default_rules {
  static outcome classify_stockade_error(const error& e) noexcept {
    return detail::outcome_of_policy_error(e.category(), e.error_code().value(), e.retry_after());
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
    if constexpr (result_type<R>) {
      return result.outcome();
    } else if constexpr (detail::expected_like<R>) {
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

  /// Classifies a captured exception: one rethrow, caught by the same ladder as run_classified.
  outcome classify_exception(const std::exception_ptr& failure) const {
    return run_classified([&]() -> result<void_result> { std::rethrow_exception(failure); })
        .outcome();
  }

  /// Runs `attempt` (which returns a stockade::result<T>) inside one ladder of handlers, one per
  /// exception rule, so that what it throws is classified where it is caught, without being
  /// thrown again: the first rule whose type matches decides, and a rule that declines
  /// (nullopt) passes it on to the later rules by casting, not by rethrowing. Returns what
  /// `attempt` returned, or the exception (std::exception_ptr, the object unchanged) with its
  /// outcome. A rule that throws fails the attempt with its own exception, as permanent: a bug in
  /// the caller's rules is never retried nor counted against the dependency.
  template <class Attempt>
  auto run_classified(Attempt&& attempt) const -> std::invoke_result_t<Attempt&> {
    using returned = std::invoke_result_t<Attempt&>;
    static_assert(result_type<returned>, "run_classified: the attempt returns a stockade::result");
    try {
      return nest<sizeof...(Rules)>(attempt);
    } catch (const error& e) {
      return caught<returned>([&] { return default_rules::classify_stockade_error(e); });
    } catch (const std::logic_error&) {
      return caught<returned>([] { return outcome(verdict::permanent); });
    } catch (...) {
      return caught<returned>([] { return outcome(verdict::transient); });
    }
  }

  template <class R>
  constexpr outcome classify_result(const R& result) const {
    return match_result<0>(result);
  }

 private:
  template <std::size_t I>
  using rule_t = std::tuple_element_t<I, std::tuple<Rules...>>;

  /// The handlers for rules K-1 down to 0 around `attempt`, rule 0 innermost so that it is
  /// tried first.
  template <std::size_t K, class Attempt>
  auto nest(Attempt& attempt) const -> std::invoke_result_t<Attempt&> {
    if constexpr (K == 0) {
      return attempt();
    } else if constexpr (!detail::exception_rule_type<rule_t<K - 1>>) {
      return nest<K - 1>(attempt);
    } else {
      using returned = std::invoke_result_t<Attempt&>;
      try {
        return nest<K - 1>(attempt);
      } catch (const typename rule_t<K - 1>::exception_type& e) {
        return caught<returned>([&] { return decide_caught<K - 1>(e); });
      }
    }
  }

  /// Inside a handler: the failure with the outcome `decide` gives, or the rule's own
  /// exception if deciding threw.
  template <class Returned, class Decide>
  static Returned caught(Decide&& decide) noexcept {
    std::exception_ptr thrown = std::current_exception();
    try {
      const outcome decided = decide();
      return Returned(call_error(std::move(thrown)), decided);
    } catch (...) {
      return Returned(call_error(std::current_exception()), outcome(verdict::permanent));
    }
  }

  /// The outcome of exception `e`, caught by the handler of rule I: rejections first, then rule
  /// I and the rules after it, then the defaults.
  template <std::size_t I, class E>
  outcome decide_caught(const E& e) const {
    bool unknown = false;
    if (const error* own = detail::also_as<error>(e, unknown); own && own->is_rejection()) {
      return default_rules::classify_stockade_error(*own);
    }
    if (unknown) return match_exception<I>(std::current_exception());
    return decide_from<I>(e);
  }

  template <std::size_t J, class E>
  outcome decide_from(const E& e) const {
    bool unknown = false;
    if constexpr (J == sizeof...(Rules)) {
      if (const error* own = detail::also_as<error>(e, unknown)) {
        return default_rules::classify_stockade_error(*own);
      }
      if (detail::also_as<std::logic_error>(e, unknown) != nullptr) return verdict::permanent;
      if (unknown) return default_rules::classify_exception(std::current_exception());
      return verdict::transient;
    } else {
      if constexpr (detail::exception_rule_type<rule_t<J>>) {
        const auto* as_rule = detail::also_as<typename rule_t<J>::exception_type>(e, unknown);
        if (unknown) return match_exception<J>(std::current_exception());
        if (as_rule != nullptr) {
          if (auto decided = detail::as_decision(std::get<J>(rules_)(*as_rule))) return *decided;
        }
      }
      return decide_from<J + 1>(e);
    }
  }

  /// Rules I and on by rethrowing, one rule at a time: only for a thrown object whose type a
  /// handler cannot inspect further (see detail::also_as), e.g. an int.
  template <std::size_t I>
  outcome match_exception(const std::exception_ptr& failure) const {
    if constexpr (I == sizeof...(Rules)) {
      return default_rules::classify_exception(failure);
    } else {
      using rule = rule_t<I>;
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
