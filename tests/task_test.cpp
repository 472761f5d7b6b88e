#include <stockade/task.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <vector>

#include <stockade/context.hpp>
#include <stockade/detail/task_waits.hpp>
#include <stockade/manual_clock.hpp>
#include <stockade/manual_runtime.hpp>

namespace {

using namespace std::chrono_literals;
using stockade::context;
using stockade::task;
using stockade::time_point;
using stockade::testing::manual_clock;
using stockade::testing::manual_runtime;

task<int> forty_two() { co_return 42; }

task<int> add_one(task<int> inner) { co_return co_await std::move(inner) + 1; }

task<void> fail_with(std::string what) {
  throw std::runtime_error(what);
  co_return;
}

TEST(Task, IsLazyAndRunsWhenAwaited) {
  manual_clock clock;
  manual_runtime runtime{clock};
  bool ran = false;
  auto body = [&]() -> task<int> {
    ran = true;
    co_return 7;
  };
  task<int> lazy = body();
  EXPECT_FALSE(ran);
  EXPECT_EQ(runtime.run(std::move(lazy)), 7);
  EXPECT_TRUE(ran);
}

TEST(Task, PassesValuesThroughAwaitingTasks) {
  manual_clock clock;
  manual_runtime runtime{clock};
  EXPECT_EQ(runtime.run(add_one(add_one(forty_two()))), 44);
}

TEST(Task, RethrowsTheExceptionToItsAwaiter) {
  manual_clock clock;
  manual_runtime runtime{clock};
  auto outer = [&]() -> task<std::string> {
    try {
      co_await fail_with("down");
    } catch (const std::runtime_error& e) {
      co_return std::string("caught ") + e.what();
    }
    co_return "not reached";
  };
  EXPECT_EQ(runtime.run(outer()), "caught down");
  EXPECT_THROW(runtime.run(fail_with("again")), std::runtime_error);
}

// Sanitizers keep every frame (no tail calls), so symmetric transfer uses stack there.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr int chain_depth = 1'000;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
constexpr int chain_depth = 1'000;
#else
constexpr int chain_depth = 100'000;
#endif
#else
constexpr int chain_depth = 100'000;
#endif

TEST(Task, ALongChainOfTasksUsesNoStack) {
  // Symmetric transfer: a hundred thousand nested awaits end one after another without each
  // adding a stack frame (this would overflow the stack otherwise; in an optimized build).
  manual_clock clock;
  manual_runtime runtime{clock};
  struct chain {
    static task<int> depth(int n) {
      if (n == 0) co_return 0;
      co_return co_await depth(n - 1) + 1;
    }
  };
  EXPECT_EQ(runtime.run(chain::depth(chain_depth)), chain_depth);
}

TEST(Task, DestroyingAnUnfinishedTaskFreesItsFrame) {
  auto owned = std::make_shared<int>(1);
  {
    auto body = [](std::shared_ptr<int> held) -> task<int> { co_return *held; };
    task<int> never_run = body(owned);
    EXPECT_EQ(owned.use_count(), 2);
  }
  EXPECT_EQ(owned.use_count(), 1);
}

TEST(ManualRuntime, RefusesATaskThatCanNeverEnd) {
  manual_clock clock;
  manual_runtime runtime{clock};
  struct never_resumed {
    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<> /*unused*/) const noexcept {}
    void await_resume() const noexcept {}
  };
  auto stuck = []() -> task<void> { co_await never_resumed{}; };
  EXPECT_THROW(runtime.run(stuck()), std::logic_error);
}

// --- the coroutine driver of a sleep -------------------------------------------------------

task<bool> sleep_for(context& ctx, stockade::duration length) {
  co_return co_await stockade::detail::task_sleep{ctx, ctx.now() + length};
}

TEST(TaskSleep, EndsAtTheExactVirtualTimeWithoutBlocking) {
  manual_clock clock;
  manual_runtime runtime{clock};
  context ctx{clock};
  const time_point start = clock.now();
  EXPECT_TRUE(runtime.run(sleep_for(ctx, 250ms)));
  EXPECT_EQ(clock.now(), start + 250ms);
}

TEST(TaskSleep, IsCutShortByTheDeadline) {
  manual_clock clock;
  manual_runtime runtime{clock};
  context ctx{clock};
  ctx.set_timeout(100ms);
  const time_point start = clock.now();
  EXPECT_FALSE(runtime.run(sleep_for(ctx, 1s)));
  EXPECT_EQ(clock.now(), start + 100ms);
}

TEST(TaskSleep, IsCutShortByTheCallersStopWhileSuspended) {
  manual_clock clock;
  manual_runtime runtime{clock};
  std::stop_source caller;
  context ctx{clock};
  ctx.set_stop_token(caller.get_token());
  task<bool>& sleeping = runtime.spawn(sleep_for(ctx, 1h));
  runtime.run_ready();
  ASSERT_FALSE(sleeping.done());
  caller.request_stop();  // posts the task; it is resumed by the runtime, not here
  EXPECT_FALSE(sleeping.done());
  runtime.run_ready();
  ASSERT_TRUE(sleeping.done());
  EXPECT_FALSE(sleeping.take());
  EXPECT_EQ(clock.next_wake(), time_point::max());  // the timer is gone
}

TEST(TaskSleep, DoesNotWaitWhenStoppedOrWhenTheTimeHasCome) {
  manual_clock clock;
  manual_runtime runtime{clock};
  std::stop_source caller;
  context ctx{clock};
  EXPECT_TRUE(runtime.run(sleep_for(ctx, 0s)));
  ctx.set_stop_token(caller.get_token());
  caller.request_stop();
  EXPECT_FALSE(runtime.run(sleep_for(ctx, 1s)));
  EXPECT_EQ(clock.sleep_count(), 0U);
}

TEST(TaskSleep, TenThousandSleepersOnOneThreadWakeInOrderOfTheirTimes) {
  manual_clock clock;
  manual_runtime runtime{clock};
  std::vector<int> woken;
  std::vector<std::unique_ptr<context>> contexts;
  auto sleeper = [&](context& ctx, int index, stockade::duration length) -> task<void> {
    (void)co_await stockade::detail::task_sleep{ctx, ctx.now() + length};
    woken.push_back(index);
  };
  constexpr int count = 10'000;
  for (int i = 0; i < count; ++i) {
    contexts.push_back(std::make_unique<context>(clock));
    // Later indices sleep less: they must wake first.
    runtime.spawn(sleeper(*contexts.back(), i, std::chrono::milliseconds(count - i)));
  }
  const stockade::duration passed = runtime.run_until_idle();
  EXPECT_EQ(passed, std::chrono::milliseconds(count));
  ASSERT_EQ(woken.size(), static_cast<std::size_t>(count));
  for (int i = 0; i < count; ++i) EXPECT_EQ(woken[static_cast<std::size_t>(i)], count - 1 - i);
}

// A coroutine type that is not a stockade task: eager, and it keeps what it caught.
struct eager_runner {
  struct promise_type {
    eager_runner get_return_object() noexcept { return {}; }
    std::suspend_never initial_suspend() noexcept { return {}; }
    std::suspend_never final_suspend() noexcept { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() noexcept {}
  };
  static inline bool refused = false;
};

TEST(TaskSleep, OutsideAnyRuntimeSaysSo) {
  // A task awaited by a coroutine that is not a stockade task has no scheduler to resume it.
  manual_clock clock;
  context ctx{clock};
  task<bool> lone = sleep_for(ctx, 1s);
  auto drive = [&]() -> eager_runner {
    try {
      (void)co_await std::move(lone);
    } catch (const std::logic_error&) {
      eager_runner::refused = true;
    }
  };
  drive();
  EXPECT_TRUE(eager_runner::refused);
}

}  // namespace
