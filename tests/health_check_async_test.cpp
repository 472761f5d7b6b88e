// The health check on the coroutine path: coroutines that find the result stale while another
// caller probes are suspended followers that all get that probe's answer; a healthy answer lets
// them through, an unhealthy one refuses them with errc::unhealthy. The probe is led by a
// blocking caller on a thread of its own, held at a latch, so one health check serves both paths.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <latch>
#include <memory>
#include <thread>
#include <vector>

#include <stockade/health_check.hpp>
#include <stockade/manual_clock.hpp>
#include <stockade/manual_runtime.hpp>
#include <stockade/pipeline.hpp>
#include <stockade/task.hpp>

namespace {

using namespace std::chrono_literals;
using stockade::context;
using stockade::errc;
using stockade::task;
using stockade::testing::manual_clock;
using stockade::testing::manual_runtime;

/// A probe that a test holds until it lets it answer.
struct held_probe {
  std::latch started{1};
  std::latch answer{1};
  std::atomic<int> runs{0};
  std::atomic<bool> healthy{true};
  bool operator()() {
    ++runs;
    started.count_down();
    answer.wait();
    return healthy.load();
  }
};

task<int> answer() { co_return 42; }

struct HealthCheckAsync : ::testing::Test {
  manual_clock clock;
  manual_runtime runtime{clock};
  held_probe probe;
  stockade::health_check<> health{[this] { return probe(); }, {.max_age = 1h}, clock};
  const stockade::pipeline<std::reference_wrapper<stockade::health_check<>>> policy{
      std::ref(health)};
  int passed = 0;
  int refused_unhealthy = 0;
  std::vector<std::unique_ptr<context>> contexts;

  std::jthread probe_on_a_thread() {
    std::jthread leader([this] {
      context ctx{clock};
      (void)health.check(ctx);
    });
    probe.started.wait();
    return leader;
  }
  task<void> call(context& ctx) {
    auto ended = co_await policy.try_async(ctx, [] { return answer(); });
    if (ended.has_value()) ++passed;
    if (!ended.has_value() && ended.error().code() == errc::unhealthy) ++refused_unhealthy;
  }
  void spawn_callers(int count) {
    for (int i = 0; i < count; ++i) {
      contexts.push_back(std::make_unique<context>(clock));
      runtime.spawn(call(*contexts.back()));
    }
  }
};

TEST_F(HealthCheckAsync, SuspendedCoroutinesShareOneProbesHealthyAnswer) {
  std::jthread leader = probe_on_a_thread();
  spawn_callers(1000);
  runtime.run_ready();
  EXPECT_EQ(passed, 0);
  probe.answer.count_down();
  leader.join();
  runtime.run_ready();
  EXPECT_EQ(passed, 1000);
  EXPECT_EQ(probe.runs.load(), 1);
}

TEST_F(HealthCheckAsync, AnUnhealthyAnswerRefusesEveryWaitingCoroutine) {
  probe.healthy = false;
  std::jthread leader = probe_on_a_thread();
  spawn_callers(100);
  runtime.run_ready();
  probe.answer.count_down();
  leader.join();
  runtime.run_ready();
  EXPECT_EQ(refused_unhealthy, 100);
  EXPECT_EQ(passed, 0);
  EXPECT_EQ(probe.runs.load(), 1);
}

TEST_F(HealthCheckAsync, ACoroutineThatFindsTheResultStaleProbesItself) {
  probe.answer.count_down();  // the probe does not hold
  spawn_callers(1);
  runtime.run_ready();
  EXPECT_EQ(passed, 1);
  spawn_callers(1);
  runtime.run_ready();
  EXPECT_EQ(passed, 2);
  EXPECT_EQ(probe.runs.load(), 1);  // fresh for an hour
}

}  // namespace
