// What the coroutine path needs of an asynchronous runtime, found from the type a callee's
// coroutine returns: runtime_traits<stockade::task<T>> here, runtime_traits<asio::awaitable<T>>
// in stockade/asio.hpp. A policy's coroutine driver is written once against these traits: its
// coroutine has the runtime's task type, it awaits `next` and the callee as that runtime awaits,
// and it waits through the runtime's sleep, so no policy names a runtime.
// Invariant: every wait a runtime offers is bounded by the context's deadline and the caller's
// stop token, as the blocking waits are, and forgets the context's cached time after it.
#pragma once

#include <coroutine>
#include <mutex>
#include <type_traits>

#include "clock.hpp"
#include "context.hpp"
#include "detail/task_waits.hpp"
#include "task.hpp"

namespace stockade {

/// Specialized for each runtime's task type A (a callee's return type), with
///   using value_type = ...;                        // what co_await on an A gives
///   template <class U> using task = ...;           // the same runtime's task of U
///   static <awaitable> sleep_until(context&, time_point);   // true if it slept to the end
///   static <awaitable> wait_for_turn(context&, unique_lock<mutex>&, detail::waiter&, time_point);
///                                         // a turn in a policy's queue (context::wait_for_turn)
///   static <awaitable> current_clock();   // the clock of the runtime running the awaiter
template <class A>
struct runtime_traits;

template <class T>
struct runtime_traits<task<T>> {
  using value_type = T;
  template <class U>
  using task = stockade::task<U>;
  static detail::task_sleep sleep_until(context& ctx, time_point until) noexcept {
    return {ctx, until};
  }
  static detail::task_turn wait_for_turn(context& ctx, std::unique_lock<std::mutex>& lock,
                                         detail::waiter& self, time_point until) noexcept {
    return {ctx, lock, self, until};
  }
  /// The clock of the runtime the awaiting task runs on (the real clock outside any).
  struct clock_in_use {
    detail::current_scheduler where;
    bool await_ready() const noexcept { return false; }
    template <class Promise>
    bool await_suspend(std::coroutine_handle<Promise> running) noexcept {
      return where.await_suspend(running);
    }
    stockade::clock& await_resume() const noexcept {
      scheduler* found = where.await_resume();
      return found != nullptr ? found->time_source() : real_clock::instance();
    }
  };
  static clock_in_use current_clock() noexcept { return {}; }
};

/// A type a coroutine returns that stockade knows how to await and to wait beside.
template <class A>
concept runtime_task = requires {
  typename runtime_traits<std::remove_cvref_t<A>>::value_type;
};

/// The traits of the runtime whose task a coroutine driver returns (its `next` returns the same).
template <class Task>
using runtime_of = runtime_traits<std::remove_cvref_t<Task>>;

}  // namespace stockade
