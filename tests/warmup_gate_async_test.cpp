// The warm-up gate on the coroutine path: coroutines that find the gate cold while another
// caller warms it up are suspended followers, served when the warm-up ends, and a follower that
// is stopped or runs out of time leaves without disturbing the others. The warm-up here is led
// by a blocking caller on a thread of its own (held at a latch), so the gate serves both paths.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <latch>
#include <memory>
#include <stop_token>
#include <thread>
#include <vector>

#include <stockade/manual_clock.hpp>
#include <stockade/manual_runtime.hpp>
#include <stockade/pipeline.hpp>
#include <stockade/task.hpp>
#include <stockade/warmup_gate.hpp>

namespace {

using namespace std::chrono_literals;
using stockade::context;
using stockade::errc;
using stockade::task;
using stockade::testing::manual_clock;
using stockade::testing::manual_runtime;

/// A warm-up that a test holds until it lets it finish.
struct held_warmup {
  std::latch started{1};
  std::latch finish{1};
  std::atomic<int> runs{0};
  void operator()() {
    ++runs;
    started.count_down();
    finish.wait();
  }
};

struct WarmupGateAsync : ::testing::Test {
  manual_clock clock;
  manual_runtime runtime{clock};
  held_warmup warmup;
  stockade::warmup_gate<> gate{[this] { warmup(); }, {}, clock};
  const stockade::pipeline<std::reference_wrapper<stockade::warmup_gate<>>> policy{std::ref(gate)};

  /// A blocking caller that leads the warm-up, on its own thread.
  std::jthread lead_on_a_thread() {
    std::jthread leader([this] {
      context ctx{clock};
      (void)policy(ctx, [] { return 0; });
    });
    warmup.started.wait();
    return leader;
  }
};

task<int> answer() { co_return 42; }

TEST_F(WarmupGateAsync, TenThousandSuspendedCoroutinesWaitForOneWarmUp) {
  std::jthread leader = lead_on_a_thread();
  constexpr int count = 10'000;
  std::vector<std::unique_ptr<context>> contexts;
  int passed = 0;
  auto call = [&](context& ctx) -> task<void> {
    if (co_await policy.async(ctx, [] { return answer(); }) == 42) ++passed;
  };
  for (int i = 0; i < count; ++i) {
    contexts.push_back(std::make_unique<context>(clock));
    runtime.spawn(call(*contexts.back()));
  }
  runtime.run_ready();
  EXPECT_EQ(passed, 0);  // all suspended behind the warm-up; this thread is free
  warmup.finish.count_down();
  leader.join();  // its end serves every follower, posting them to the runtime
  runtime.run_ready();
  EXPECT_EQ(passed, count);
  EXPECT_EQ(warmup.runs.load(), 1);
}

TEST_F(WarmupGateAsync, AFollowerStoppedWhileWaitingLeavesAndTheOthersAreServed) {
  std::jthread leader = lead_on_a_thread();
  std::stop_source stop_first;
  context stopped{clock};
  stopped.set_stop_token(stop_first.get_token());
  context patient{clock};
  auto call = [&](context& ctx) -> task<int> {
    auto ended = co_await policy.try_async(ctx, [] { return answer(); });
    co_return ended.has_value() ? *ended : -ended.error().code().value();
  };
  task<int>& first = runtime.spawn(call(stopped));
  task<int>& second = runtime.spawn(call(patient));
  runtime.run_ready();
  stop_first.request_stop();
  runtime.run_ready();
  ASSERT_TRUE(first.done());
  EXPECT_EQ(first.take(), -static_cast<int>(errc::cancelled));
  EXPECT_FALSE(second.done());
  warmup.finish.count_down();
  leader.join();
  runtime.run_ready();
  ASSERT_TRUE(second.done());
  EXPECT_EQ(second.take(), 42);
  EXPECT_EQ(clock.next_wake(), stockade::time_point::max());
}

TEST_F(WarmupGateAsync, AFollowerWhoseDeadlinePassesIsRefusedWithWarmupWaitExceeded) {
  std::jthread leader = lead_on_a_thread();
  context ctx{clock};
  ctx.set_timeout(100ms);
  auto call = [&]() -> task<bool> {
    auto ended = co_await policy.try_async(ctx, [] { return answer(); });
    co_return !ended.has_value() && ended.error().code() == errc::warmup_wait_exceeded;
  };
  task<bool>& waiting = runtime.spawn(call());
  runtime.run_ready();
  clock.advance(100ms);
  runtime.run_ready();
  ASSERT_TRUE(waiting.done());
  EXPECT_TRUE(waiting.take());
  warmup.finish.count_down();
}

TEST_F(WarmupGateAsync, ACoroutineThatFindsTheGateColdLeadsTheWarmUpItself) {
  warmup.finish.count_down();  // the action does not hold
  EXPECT_EQ(runtime.run(policy.async([] { return answer(); })), 42);
  EXPECT_EQ(warmup.runs.load(), 1);
  EXPECT_EQ(runtime.run(policy.async([] { return answer(); })), 42);
  EXPECT_EQ(warmup.runs.load(), 1);
}

}  // namespace
