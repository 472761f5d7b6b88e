// A pipeline holds a stack of policies (by value, or by std::ref for shared state) and runs a
// callable through them, outermost first. The stack is its type, so composition inlines.
// Invariant: the callee's result or exception is classified exactly once per attempt, right
// where it leaves the callee, and the callee's own exception is rethrown unchanged.
#pragma once

#include <concepts>
#include <coroutine>
#include <cstddef>
#include <functional>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <utility>

#include "bounds.hpp"
#include "classifier.hpp"
#include "context.hpp"
#include "detail/with_context.hpp"
#include "policy.hpp"
#include "result.hpp"
#include "runtime.hpp"
#include "stack_checks.hpp"

namespace stockade {

namespace detail {

/// What a callee returns, called as a pipeline calls it (with the context if it takes one).
template <class F>
using callee_result_t = result_with_context_t<F&>;

/// Work that a call returns instead of doing: a coroutine's task (asio::awaitable, any type with
/// a promise_type), an awaiter, or a future. A blocking pipeline would see it come back at once
/// and classify it as a success, so nothing would ever be retried or counted as a failure.
template <class R>
concept coroutine_task = requires {
  typename std::coroutine_traits<R>::promise_type;
};
template <class R>
concept awaiter = requires(R& r) {
  r.await_ready();
  r.await_resume();
};
template <class R>
concept member_co_await = requires(R& r) {
  r.operator co_await();
};
template <class R>
concept free_co_await = requires(R& r) {
  operator co_await(static_cast<R&&>(r));
};
template <class R>
concept future_like = requires(R& r) {
  r.get();
  r.wait();
  r.valid();
};
template <class R>
concept deferred_work =
    coroutine_task<R> || awaiter<R> || member_co_await<R> || free_co_await<R> || future_like<R>;

/// Refuses, when the call is compiled, a callable whose result is deferred work.
template <class R>
constexpr bool does_its_work_before_returning() {
  static_assert(!deferred_work<std::remove_cvref_t<R>>,
                "stockade: this callable returns an awaitable, a coroutine task or a future. A "
                "blocking pipeline would take the unstarted work for a success: nothing would be "
                "retried, timed or counted by a breaker. Finish the work inside the callable "
                "(return f.get()), or await it through the coroutine path: "
                "co_await pipeline.async(f) (docs/async.md).");
  return true;
}

/// A result whose destructor may throw cannot be carried: a retry destroys a failed result
/// before the next attempt (inside std::optional, whose destructor is noexcept), and an
/// exception from it would replace the call's own outcome. Refused when the call is compiled.
template <class F>
concept nothrow_destructible_result =
    std::is_nothrow_destructible_v<stored_result_t<callee_result_t<F>>>;

/// Runs `attempt` (returning a stockade::result) and returns what it returned, or what it threw
/// with its classification: through the classifier's own ladder of handlers when it has one
/// (classifier<...>::run_classified, no rethrow), else through its classify_exception.
template <class Classifier, class Attempt>
auto run_classified_by(const Classifier& chosen, Attempt&& attempt)
    -> std::invoke_result_t<Attempt&> {
  if constexpr (requires { chosen.run_classified(attempt); }) {
    return chosen.run_classified(attempt);
  } else {
    using returned = std::invoke_result_t<Attempt&>;
    try {
      return attempt();
    } catch (...) {
      std::exception_ptr thrown = std::current_exception();
      try {
        const outcome decided = chosen.classify_exception(thrown);
        return returned(call_error(std::move(thrown)), decided);
      } catch (...) {
        return returned(call_error(std::current_exception()), outcome(verdict::permanent));
      }
    }
  }
}

/// How layer `layer` changes the bounds of what is inside it; a policy that does not say is
/// unbounded both ways (it might run its inner layers any number of times).
template <class Layer>
constexpr stack_bounds bounds_of_layer(const Layer& layer, const stack_bounds& inner) {
  if constexpr (requires {
                  { layer.worst_case(inner) } -> std::convertible_to<stack_bounds>;
                }) {
    return layer.worst_case(inner);
  } else {
    static_assert(
        !requires(Layer & mutable_layer) { mutable_layer.worst_case(inner); },
        "a policy's worst_case(const stockade::stack_bounds&) must be const");
    constexpr std::string_view why = "a policy without worst_case(), see docs/custom-policy.md";
    return {bound<std::int64_t>::unbounded(why), bound<duration>::unbounded(why)};
  }
}

/// The bounds of a stack from layer I inward, around a callable bounded by `callee`.
template <std::size_t I, class Layers>
constexpr stack_bounds stack_bounds_from(const Layers& layers, const stack_bounds& callee) {
  if constexpr (I == std::tuple_size_v<Layers>) {
    return callee;
  } else {
    return bounds_of_layer(layer_of(std::get<I>(layers)), stack_bounds_from<I + 1>(layers, callee));
  }
}

}  // namespace detail

/// A callable a pipeline can run: it takes `stockade::context&` or nothing, and returns
/// something whose destructor does not throw (or void, or a reference).
template <class F>
concept callee = detail::takes_context_or_not<F&> && detail::nothrow_destructible_result<F>;

namespace detail {
/// For a coroutine callee F: what awaiting its task gives, the result layers carry, and its
/// runtime's task of U.
template <class F>
using async_value_t = typename runtime_of<callee_result_t<F>>::value_type;
template <class F>
using async_result_t = result<stored_result_t<async_value_t<F>>>;
template <class F, class U>
using async_task_t = typename runtime_of<callee_result_t<F>>::template task<U>;

/// What the layers carry of a callee's value: as it returns it, or as its task gives it.
template <class F, bool Async>
struct stored_for {
  using type = stored_result_t<callee_result_t<F>>;
};
template <class F>
struct stored_for<F, true> {
  using type = stored_result_t<async_value_t<F>>;
};
}  // namespace detail

/// A callable for the coroutine path: taking the context or nothing, it returns a runtime's
/// task (stockade::task<T>, or asio::awaitable<T> with stockade/asio.hpp) whose value is a
/// value, or void.
template <class F>
concept async_callee =
    detail::takes_context_or_not<F&> && runtime_task<detail::callee_result_t<F>> &&
    !std::is_reference_v<typename runtime_of<detail::callee_result_t<F>>::value_type>;

template <class Classifier, class... Policies>
class basic_pipeline {
  static_assert((policy<Policies> && ...),
                "every element of a pipeline must satisfy stockade::policy: its invoke(ctx, next) "
                "returns the stockade::result<T> that next(ctx) returns, or one it makes (see "
                "policy.hpp and docs/custom-policy.md)");
  static_assert(detail::stack_order_checks<Policies...>::passed);

 public:
  /// Refuses a stack whose timeouts leave a retry no time (std::invalid_argument; a compile
  /// error if constexpr) unless it allows it; the other order checks are made on the type.
  constexpr explicit basic_pipeline(Classifier chosen, Policies... layers)
      : classifier_(std::move(chosen)), layers_(std::move(layers)...) {
    if (!detail::stack_shape<Policies...>::allowed(stack_check::inner_timeout_not_shorter)) {
      detail::check_timeout_order(layers_, std::index_sequence_for<Policies...>{});
    }
  }

  /// Runs `f` through the stack with a fresh context on the real clock: returns its value, or
  /// throws what the call failed with (the callee's own exception, the same object, or the
  /// stockade::error a policy raised), thrown once, here.
  template <callee F>
  decltype(auto) operator()(F&& f) const {
    context ctx;
    return (*this)(ctx, std::forward<F>(f));
  }

  /// The same with the caller's context (its clock, deadline, stop token).
  template <callee F>
  decltype(auto) operator()(context& ctx, F&& f) const {
    using returned = detail::callee_result_t<std::remove_reference_t<F>>;
    auto ended = start(ctx, f);
    if (!ended.has_value()) [[unlikely]]
      ended.error().raise();
    if constexpr (std::is_void_v<returned>) {
      return;
    } else if constexpr (std::is_lvalue_reference_v<returned>) {
      return static_cast<returned>((*ended).get());
    } else {
      // By value, also for a callee returning T&&: the layers carried the T (moved from what the
      // reference named), and a T&& to that would dangle once this call returns.
      return detail::stored_result_t<returned>(*std::move(ended));
    }
  }

  /// Runs `f` through the stack and returns what the call came to, throwing nothing: the value,
  /// or the callee's exception (captured, not rethrown), or the error a policy raised (a
  /// rejection such as circuit_open, a timeout), each with the outcome it was classified as.
  /// A callee that reports failures as values makes no exception anywhere in the stack.
  template <callee F>
  auto try_call(F&& f) const {
    context ctx;
    return try_call(ctx, std::forward<F>(f));
  }
  template <callee F>
  auto try_call(context& ctx, F&& f) const {
    // A policy's own code may still throw (std::bad_alloc, a broken observer of a user's own
    // policy): what escapes is classified and returned like a callee's exception.
    return detail::run_classified_by(classifier_, [&] { return start(ctx, f); });
  }

  // --- the coroutine path ---------------------------------------------------------------------
  /// `co_await pipeline.async(f)`, where `f` returns a runtime's task: the same layers, options
  /// and analysis as the blocking call, and no thread blocked by any of them; the call's context
  /// is on the clock of the runtime that runs it. Gives f's value,
  /// or throws what the call failed with, thrown once, at the end. `f` is kept (moved) in the
  /// coroutine; the pipeline and any policy held by std::ref must outlive it.
  template <async_callee F>
  auto async(F f) const -> detail::async_task_t<F, detail::async_value_t<F>> {
    // On the clock of the runtime it runs on: a test's manual runtime moves its time.
    context ctx{co_await runtime_of<detail::callee_result_t<F>>::current_clock()};
    auto ended = co_await start_async(ctx, f);
    if (!ended.has_value()) ended.error().raise();
    if constexpr (!std::is_void_v<detail::async_value_t<F>>) co_return *std::move(ended);
  }
  /// The same with the caller's context, which must outlive the coroutine.
  template <async_callee F>
  auto async(context& ctx, F f) const -> detail::async_task_t<F, detail::async_value_t<F>> {
    auto ended = co_await start_async(ctx, f);
    if (!ended.has_value()) ended.error().raise();
    if constexpr (!std::is_void_v<detail::async_value_t<F>>) co_return *std::move(ended);
  }
  /// What the call came to, throwing nothing: as try_call, on the coroutine path.
  template <async_callee F>
  auto try_async(context& ctx, F f) const -> detail::async_task_t<F, detail::async_result_t<F>> {
    co_return co_await start_async(ctx, f);
  }

  /// The same stack with another classifier.
  template <class Other>
  constexpr basic_pipeline<Other, Policies...> classify_with(Other chosen) const {
    return std::apply(
        [&](const Policies&... layers) {
          return basic_pipeline<Other, Policies...>(std::move(chosen), layers...);
        },
        layers_);
  }

  /// The most attempts that can reach the callable and the longest a call can take, from each
  /// layer's configuration; "unbounded" names the layer without a bound. Usable in a constant
  /// expression when every layer is: `static_assert(stack.worst_case().fits_within(10s))`.
  constexpr stack_bounds worst_case() const { return worst_case(stack_bounds::of_callee()); }
  /// The same, for a callable known to take at most `longest_callee` itself.
  constexpr stack_bounds worst_case(duration longest_callee) const {
    return worst_case(stack_bounds::of_callee(longest_callee));
  }
  constexpr stack_bounds worst_case(const stack_bounds& callee) const {
    return detail::stack_bounds_from<0>(layers_, callee);
  }

  constexpr const Classifier& classifier() const noexcept { return classifier_; }
  constexpr const std::tuple<Policies...>& layers() const noexcept { return layers_; }
  static constexpr std::size_t size() noexcept { return sizeof...(Policies); }

 private:
  /// What a layer gets as `next`: runs the layers from I inward (and the callee), and classifies
  /// what a policy makes in place of the callee (an injected fault, a fallback's value) with
  /// this pipeline's classifier, exactly as the callee's own result or exception would be. On
  /// the coroutine path (`Async`) it returns the runtime's task of that result.
  template <std::size_t I, class F, bool Async = false>
  struct next_layer {
    using stored_type = typename detail::stored_for<F, Async>::type;

    auto operator()(context& ctx) const {
      if constexpr (Async) {
        return owner->template run_async<I>(ctx, *callee);
      } else {
        return owner->template run<I>(ctx, *callee);
      }
    }

    outcome classify_exception(const std::exception_ptr& failure) const {
      return owner->classifier_.classify_exception(failure);
    }
    outcome classify_result(const stored_type& value) const {
      if constexpr (Async) {
        return owner->classify_async_value(value);
      } else {
        return owner->template classify_callee_result<F>(value);
      }
    }

    const basic_pipeline* owner;
    F* callee;
  };

  /// The outermost layer's task (no frame of its own: `f` lives in the caller's frame).
  template <class F>
  auto start_async(context& ctx, F& f) const -> detail::async_task_t<F, detail::async_result_t<F>> {
    static_assert((detail::async_layer<Policies> && ...),
                  "stockade: a layer of this pipeline has no coroutine driver (async_invoke); "
                  "see docs/async.md for the policies that have one");
    ctx.begin_attempt(1);
    return run_async<0>(ctx, f);
  }

  template <std::size_t I, class F>
  auto run_async(context& ctx, F& f) const -> detail::async_task_t<F, detail::async_result_t<F>> {
    if constexpr (I == sizeof...(Policies)) {
      return invoke_callee_async(ctx, f);
    } else {
      return detail::layer_of(std::get<I>(layers_))
          .async_invoke(ctx, next_layer<I + 1, F, true>{this, &f});
    }
  }

  /// The one place a coroutine callee runs: what it throws is caught here, once, and
  /// classified with one rethrow (a handler cannot await); what it returns is classified here.
  template <class F>
  auto invoke_callee_async(context& ctx, F& f) const
      -> detail::async_task_t<F, detail::async_result_t<F>> {
    using value_type = detail::async_value_t<F>;
    using ended_type = detail::async_result_t<F>;
    std::exception_ptr thrown;
    try {
      if constexpr (std::is_void_v<value_type>) {
        co_await detail::call_with_context(f, ctx);
        ctx.forget_now();
        co_return ended_type(void_result{});
      } else {
        value_type value = co_await detail::call_with_context(f, ctx);
        ctx.forget_now();
        co_return ended_type(
            detail::from_call_t{}, [&]() -> value_type&& { return std::move(value); },
            [this](const value_type& made) { return classify_async_value(made); });
      }
    } catch (...) {
      thrown = std::current_exception();
    }
    ctx.forget_now();
    co_return detail::run_classified_by(classifier_,
                                        [&]() -> ended_type { std::rethrow_exception(thrown); });
  }

  template <class V>
  outcome classify_async_value(const V& value) const {
    if constexpr (std::is_same_v<V, void_result>) {
      return verdict::success;
    } else {
      return classifier_.classify_result(value);
    }
  }

  template <class F>
  auto start(context& ctx, F& f) const {
    using returned = detail::callee_result_t<std::remove_reference_t<F>>;
    static_assert(detail::does_its_work_before_returning<returned>());
    ctx.begin_attempt(1);
    return run<0>(ctx, f);
  }

  template <std::size_t I, class F>
  auto run(context& ctx, F& f) const {
    if constexpr (I == sizeof...(Policies)) {
      return invoke_callee(ctx, f);
    } else {
      const next_layer<I + 1, F> next{this, &f};
      using expected = decltype(next(ctx));
      using returned = decltype(detail::layer_of(std::get<I>(layers_)).invoke(ctx, next));
      static_assert(std::is_same_v<returned, expected>,
                    "stockade: a policy's invoke(ctx, next) returns what next(ctx) returned, a "
                    "stockade::result<T> (see docs/custom-policy.md): the callee's value or its "
                    "error, with its outcome, or a result the policy made");
      return detail::layer_of(std::get<I>(layers_)).invoke(ctx, next);
    }
  }

  /// The one place a callee runs: what it throws is caught here, once, and classified by the
  /// handler that catches it; what it returns is classified once, here.
  template <class F>
  auto invoke_callee(context& ctx, F& f) const {
    using returned = detail::callee_result_t<F>;
    using stored = detail::stored_result_t<returned>;
    auto ended = detail::run_classified_by(classifier_, [&]() -> result<stored> {
      if constexpr (std::is_void_v<returned>) {
        detail::call_with_context(f, ctx);
        return result<stored>(void_result{});
      } else {
        return result<stored>(
            detail::from_call_t{},
            [&]() -> decltype(auto) { return detail::call_with_context(f, ctx); },
            [this](const stored& value) { return classify_callee_result<F>(value); });
      }
    });
    ctx.forget_now();  // the callee took time, whichever way it ended
    return ended;
  }

  /// Classifies a value of the callee's result type as policies carry it: as the callee
  /// returned it (a reference's referent, not the wrapper carrying it).
  template <class F>
  outcome classify_callee_result(
      const detail::stored_result_t<detail::callee_result_t<F>>& value) const {
    using returned = detail::callee_result_t<F>;
    if constexpr (std::is_void_v<returned>) {
      return verdict::success;
    } else {
      return classifier_.classify_result(
          static_cast<const std::remove_reference_t<returned>&>(value));
    }
  }

  [[no_unique_address]] Classifier classifier_;
  [[no_unique_address]] std::tuple<Policies...> layers_;
};

/// The usual spelling: `stockade::pipeline{timeout{8s}, retry{...}, std::ref(breaker)}`,
/// with the default classifier; `.classify_with(c)` picks another.
template <class... Policies>
class pipeline : public basic_pipeline<default_classifier, Policies...> {
 public:
  constexpr explicit pipeline(Policies... layers)
      : basic_pipeline<default_classifier, Policies...>(default_classifier{},
                                                        std::move(layers)...) {}
};

template <class... Policies>
pipeline(Policies...) -> pipeline<Policies...>;

}  // namespace stockade
