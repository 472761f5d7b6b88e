// The coroutine path of a pipeline on the deterministic runtime: the same layers and
// decisions as the blocking call, waits that suspend the coroutine, time that passes only when
// the runtime moves it.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <vector>

#include <stockade/circuit_breaker.hpp>
#include <stockade/events.hpp>
#include <stockade/manual_clock.hpp>
#include <stockade/manual_runtime.hpp>
#include <stockade/pipeline.hpp>
#include <stockade/retry.hpp>
#include <stockade/task.hpp>
#include <stockade/timeout.hpp>

namespace {

using namespace std::chrono_literals;
using stockade::context;
using stockade::errc;
using stockade::task;
using stockade::time_point;
using stockade::testing::manual_clock;
using stockade::testing::manual_runtime;

struct down : std::runtime_error {
  explicit down(int n) : std::runtime_error("down"), attempt(n) {}
  int attempt;
};

/// A dependency reached by coroutine: fails (throws) its first `failures` calls.
struct flaky_service {
  int failures = 0;
  int calls = 0;
  std::vector<time_point> called_at;
  manual_clock* clock = nullptr;

  task<int> call() {
    ++calls;
    if (clock != nullptr) called_at.push_back(clock->now());
    if (calls <= failures) throw down(calls);
    co_return 42;
  }
};

flaky_service watched_by(manual_clock& clock) {
  flaky_service service;
  service.clock = &clock;
  return service;
}

auto retry_with_backoff(int attempts) {
  return stockade::retry{{.max_attempts = attempts,
                          .backoff = stockade::exponential{100ms, 2.0, 1s},
                          .jitter = stockade::jitter::none()}};
}

struct AsyncPipeline : ::testing::Test {
  manual_clock clock;
  manual_runtime runtime{clock};
  flaky_service service = watched_by(clock);
};

TEST_F(AsyncPipeline, RunsTheCalleeThroughALayerThatAddsNothing) {
  const auto policy = stockade::pipeline{stockade::pass_through{}};
  EXPECT_EQ(runtime.run(policy.async([&] { return service.call(); })), 42);
  EXPECT_EQ(service.calls, 1);
}

TEST_F(AsyncPipeline, RetryWaitsItsBackoffAtExactVirtualTimes) {
  service.failures = 2;
  const auto policy = stockade::pipeline{retry_with_backoff(3)};
  const time_point start = clock.now();
  auto call = [&]() -> task<int> {
    context ctx{clock};
    co_return co_await policy.async(ctx, [&] { return service.call(); });
  };
  EXPECT_EQ(runtime.run(call()), 42);
  ASSERT_EQ(service.called_at.size(), 3U);
  EXPECT_EQ(service.called_at[0], start);
  EXPECT_EQ(service.called_at[1], start + 100ms);
  EXPECT_EQ(service.called_at[2], start + 300ms);
}

TEST_F(AsyncPipeline, TheLastFailureReachesTheCallerUnchanged) {
  service.failures = 10;
  const auto policy = stockade::pipeline{retry_with_backoff(3)};
  auto call = [&]() -> task<int> {
    context ctx{clock};
    co_return co_await policy.async(ctx, [&] { return service.call(); });
  };
  try {
    (void)runtime.run(call());
    FAIL() << "the call should have failed";
  } catch (const down& e) {
    EXPECT_EQ(e.attempt, 3);
  }
  EXPECT_EQ(service.calls, 3);
}

TEST_F(AsyncPipeline, TryAsyncThrowsNothing) {
  service.failures = 10;
  const auto policy = stockade::pipeline{retry_with_backoff(2)};
  auto call = [&]() -> task<bool> {
    context ctx{clock};
    const auto ended = co_await policy.try_async(ctx, [&] { return service.call(); });
    co_return !ended.has_value() && ended.outcome().kind == stockade::verdict::transient;
  };
  EXPECT_TRUE(runtime.run(call()));
}

TEST_F(AsyncPipeline, ACalleeTakingTheContextSeesTheAttempt) {
  std::vector<int> attempts;
  const auto policy = stockade::pipeline{retry_with_backoff(3)};
  auto callee = [&](context& ctx) -> task<int> {
    attempts.push_back(ctx.attempt());
    if (ctx.attempt() < 3) throw down(ctx.attempt());
    co_return ctx.attempt();
  };
  EXPECT_EQ(runtime.run(policy.async(callee)), 3);
  EXPECT_EQ(attempts, (std::vector<int>{1, 2, 3}));
}

TEST_F(AsyncPipeline, FailuresReturnedAsValuesAreRetried) {
  struct reply {
    std::optional<int> value;
    int code = 0;
    bool has_value() const { return value.has_value(); }
    int error() const { return code; }
  };
  int calls = 0;
  const auto policy = stockade::pipeline{retry_with_backoff(3)};
  auto callee = [&]() -> task<reply> {
    ++calls;
    if (calls < 3) co_return reply{std::nullopt, 503};
    co_return reply{7, 0};
  };
  EXPECT_EQ(*runtime.run(policy.async(callee)).value, 7);
  EXPECT_EQ(calls, 3);
}

TEST_F(AsyncPipeline, VoidCallees) {
  int calls = 0;
  const auto policy = stockade::pipeline{retry_with_backoff(2)};
  auto callee = [&]() -> task<void> {
    if (++calls == 1) throw down(1);
    co_return;
  };
  runtime.run(policy.async(callee));
  EXPECT_EQ(calls, 2);
}

TEST_F(AsyncPipeline, TimeoutNarrowsTheDeadlineAndCutsTheRetrysWait) {
  // 250 ms for the whole call: attempts at 0 and 100 ms; the next wait would end at 300 ms,
  // past the deadline, so the retry gives up at once with the last failure.
  service.failures = 10;
  const auto policy = stockade::pipeline{stockade::timeout{250ms}, retry_with_backoff(5)};
  auto call = [&]() -> task<int> {
    context ctx{clock};
    co_return co_await policy.async(ctx, [&] { return service.call(); });
  };
  EXPECT_THROW((void)runtime.run(call()), down);
  EXPECT_EQ(service.calls, 2);
  EXPECT_EQ(clock.now() - service.called_at[0], 100ms);
}

TEST_F(AsyncPipeline, TimeoutRefusesADeadlineAlreadyPassed) {
  const auto policy = stockade::pipeline{stockade::timeout{1s}};
  auto call = [&]() -> task<bool> {
    context ctx{clock};
    ctx.set_deadline(clock.now());
    const auto ended = co_await policy.try_async(ctx, [&] { return service.call(); });
    co_return !ended.has_value() && ended.error().code() == errc::deadline_already_passed;
  };
  EXPECT_TRUE(runtime.run(call()));
  EXPECT_EQ(service.calls, 0);
}

TEST_F(AsyncPipeline, ACallerStoppedDuringTheBackoffEndsInTheLastFailure) {
  service.failures = 10;
  stockade::counters seen;
  const auto policy = stockade::pipeline{stockade::retry{
      {.max_attempts = 5, .backoff = stockade::constant{1h}}, stockade::observer_ref{seen}}};
  std::stop_source caller;
  auto call = [&]() -> task<int> {
    context ctx{clock};
    ctx.set_stop_token(caller.get_token());
    co_return co_await policy.async(ctx, [&] { return service.call(); });
  };
  task<int>& running = runtime.spawn(call());
  runtime.run_ready();
  ASSERT_FALSE(running.done());  // suspended in the hour's wait; this thread is free
  caller.request_stop();
  runtime.run_ready();
  ASSERT_TRUE(running.done());
  EXPECT_THROW((void)running.take(), down);
  EXPECT_EQ(service.calls, 1);
  EXPECT_EQ(seen.count(stockade::event_kind::retry_gave_up), 1U);
  EXPECT_EQ(clock.next_wake(), time_point::max());  // nothing left armed
}

TEST_F(AsyncPipeline, ABreakerSharedWithBlockingCallersKeepsOneState) {
  stockade::circuit_breaker<stockade::consecutive_failures> breaker{
      {.trip = {.threshold = 2}, .open_for = stockade::constant{10s}}, clock};
  const auto policy = stockade::pipeline{std::ref(breaker)};
  service.failures = 100;
  // One failure through a blocking call, one through a coroutine: the breaker opens.
  context blocking{clock};
  EXPECT_THROW(policy(blocking, [] { throw down(0); }), down);
  EXPECT_EQ(breaker.state(), stockade::circuit_state::closed);
  auto refused_by_breaker = [&]() -> task<bool> {
    context ctx{clock};
    auto ended = co_await policy.try_async(ctx, [&] { return service.call(); });
    co_return !ended.has_value() && ended.error().code() == errc::circuit_open;
  };
  EXPECT_FALSE(runtime.run(refused_by_breaker()));  // the callee's own failure
  EXPECT_EQ(breaker.state(), stockade::circuit_state::open);
  // Now both paths are refused without reaching the dependency.
  EXPECT_TRUE(runtime.run(refused_by_breaker()));
  EXPECT_EQ(service.calls, 1);
  context refused{clock};
  EXPECT_THROW(policy(refused, [] { return 1; }), stockade::error);
}

TEST_F(AsyncPipeline, ABreakerHalfOpenLetsOneCoroutineTrialThroughAndClosesOnItsSuccess) {
  stockade::circuit_breaker<stockade::consecutive_failures> breaker{
      {.trip = {.threshold = 1}, .open_for = stockade::constant{1s}}, clock};
  const auto policy = stockade::pipeline{std::ref(breaker)};
  service.failures = 1;
  auto call = [&]() -> task<bool> {
    context ctx{clock};
    auto ended = co_await policy.try_async(ctx, [&] { return service.call(); });
    co_return ended.has_value();
  };
  EXPECT_FALSE(runtime.run(call()));
  EXPECT_EQ(breaker.state(), stockade::circuit_state::open);
  clock.advance(1s);
  EXPECT_TRUE(runtime.run(call()));
  EXPECT_EQ(breaker.state(), stockade::circuit_state::closed);
}

TEST_F(AsyncPipeline, AStackOfTimeoutRetryBreakerOnOneThreadServesManyCoroutines) {
  stockade::circuit_breaker<stockade::consecutive_failures> breaker{
      {.trip = {.threshold = 1'000'000}}, clock};
  const auto policy = stockade::pipeline{stockade::timeout{10s}, retry_with_backoff(3),
                                         std::ref(breaker), stockade::timeout{1s}};
  constexpr int count = 1000;
  std::vector<std::unique_ptr<flaky_service>> services;
  int succeeded = 0;
  auto call = [&](flaky_service& own) -> task<void> {
    context ctx{clock};
    if (co_await policy.async(ctx, [&] { return own.call(); }) == 42) ++succeeded;
  };
  for (int i = 0; i < count; ++i) {
    services.push_back(std::make_unique<flaky_service>());
    services.back()->failures = i % 3;
    runtime.spawn(call(*services.back()));
  }
  EXPECT_EQ(runtime.run_until_idle(), 300ms);  // the slowest: two waits, 100 + 200 ms
  EXPECT_EQ(succeeded, count);
}

}  // namespace
