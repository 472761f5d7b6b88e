// expect: (static assertion failed|static_assert failed).*returns an awaitable, a coroutine
// A callable that returns a coroutine's task (here a minimal one, as asio::awaitable or any
// task type) returns before the work runs; a blocking pipeline refuses it, and the detached
// timeout too. A callable that does its work (STOCKADE_FIXED) compiles.
#include <coroutine>
#include <exception>

#include <stockade/stockade.hpp>

struct task {
  struct promise_type {
    task get_return_object() { return {}; }
    std::suspend_always initial_suspend() noexcept { return {}; }
    std::suspend_always final_suspend() noexcept { return {}; }
    void return_value(int /*unused*/) {}
    void unhandled_exception() { std::terminate(); }
  };
};

task query() { co_return 1; }
int query_now() { return 1; }

int main() {
  const auto stack = stockade::pipeline{stockade::retry{}};
#ifdef STOCKADE_FIXED
  return stack([] { return query_now(); });
#else
  (void)stack([] { return query(); });
  return 0;
#endif
}
