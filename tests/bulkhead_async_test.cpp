// The bulkhead on the coroutine path, on the deterministic runtime: queued callers are
// suspended coroutines on one thread, served first come first served by releases from either
// path, refused at max_wait, and a caller stopped while queued leaves the state clean.
#include <gtest/gtest.h>

#include <chrono>
#include <cstddef>
#include <memory>
#include <stop_token>
#include <vector>

#include <stockade/bulkhead.hpp>
#include <stockade/manual_clock.hpp>
#include <stockade/manual_runtime.hpp>
#include <stockade/pipeline.hpp>
#include <stockade/task.hpp>

namespace {

using namespace std::chrono_literals;
using stockade::context;
using stockade::errc;
using stockade::task;
using stockade::time_point;
using stockade::testing::manual_clock;
using stockade::testing::manual_runtime;

/// An operation that takes `length` of virtual time, suspended on the runtime meanwhile.
struct timed_work {
  manual_clock& clock;
  std::size_t in_flight = 0;
  std::size_t peak = 0;

  task<int> run(context& ctx, stockade::duration length, int id) {
    ++in_flight;
    peak = std::max(peak, in_flight);
    context own{clock};  // the work's own wait, not bounded by the caller's deadline
    (void)co_await stockade::runtime_traits<task<int>>::sleep_until(own, own.now() + length);
    --in_flight;
    (void)ctx;
    co_return id;
  }
};

struct BulkheadAsync : ::testing::Test {
  manual_clock clock;
  manual_runtime runtime{clock};
  timed_work work{clock};
};

TEST_F(BulkheadAsync, TenThousandCoroutinesOnOneThreadShareFourSlotsInOrderOfArrival) {
  stockade::bulkhead<> slots{{.max_concurrent = 4, .max_queue = 10'000, .max_wait = 1h}};
  const auto policy = stockade::pipeline{std::ref(slots)};
  std::vector<int> finished;
  std::vector<std::unique_ptr<context>> contexts;
  auto call = [&](context& ctx, int id) -> task<void> {
    finished.push_back(
        co_await policy.async(ctx, [&, id](context& inner) { return work.run(inner, 10ms, id); }));
  };
  constexpr int count = 10'000;
  for (int id = 0; id < count; ++id) {
    contexts.push_back(std::make_unique<context>(clock));
    runtime.spawn(call(*contexts.back(), id));
  }
  runtime.run_ready();
  EXPECT_EQ(slots.metrics().in_flight, 4U);
  EXPECT_EQ(slots.metrics().queued, static_cast<std::size_t>(count - 4));
  EXPECT_EQ(runtime.run_until_idle(), std::chrono::milliseconds(10 * count / 4));
  ASSERT_EQ(finished.size(), static_cast<std::size_t>(count));
  for (int id = 0; id < count; ++id) EXPECT_EQ(finished[static_cast<std::size_t>(id)], id);
  EXPECT_EQ(work.peak, 4U);
  EXPECT_EQ(slots.metrics().in_flight, 0U);
  EXPECT_EQ(slots.metrics().queued, 0U);
}

TEST_F(BulkheadAsync, AQueuedCoroutineIsRefusedAtMaxWait) {
  stockade::bulkhead<> slots{{.max_concurrent = 1, .max_queue = 4, .max_wait = 50ms}};
  const auto policy = stockade::pipeline{std::ref(slots)};
  context first_ctx{clock};
  context second_ctx{clock};
  auto holder = [&]() -> task<int> {
    co_return co_await policy.async(first_ctx,
                                    [&](context& inner) { return work.run(inner, 1s, 1); });
  };
  auto waiter = [&]() -> task<bool> {
    auto ended = co_await policy.try_async(second_ctx,
                                           [&](context& inner) { return work.run(inner, 1ms, 2); });
    co_return !ended.has_value() && ended.error().code() == errc::bulkhead_wait_exceeded;
  };
  runtime.spawn(holder());
  task<bool>& refused = runtime.spawn(waiter());
  runtime.run_ready();
  clock.advance(49ms);
  runtime.run_ready();
  EXPECT_FALSE(refused.done());
  clock.advance(1ms);
  runtime.run_ready();
  ASSERT_TRUE(refused.done());
  EXPECT_TRUE(refused.take());
  EXPECT_EQ(slots.metrics().queued, 0U);
  EXPECT_EQ(slots.metrics().rejected, 1U);
  (void)runtime.run_until_idle();  // the holder ends before the bulkhead it holds a slot of
}

TEST_F(BulkheadAsync, ACoroutineStoppedWhileQueuedLeavesAndTheNextIsServed) {
  stockade::bulkhead<> slots{{.max_concurrent = 1, .max_queue = 4, .max_wait = 1h}};
  const auto policy = stockade::pipeline{std::ref(slots)};
  std::stop_source stop_second;
  context ctx1{clock};
  context ctx2{clock};
  context ctx3{clock};
  ctx2.set_stop_token(stop_second.get_token());
  auto call = [&](context& ctx, int id) -> task<int> {
    auto ended =
        co_await policy.try_async(ctx, [&, id](context& inner) { return work.run(inner, 1s, id); });
    co_return ended.has_value() ? *ended : -ended.error().code().value();
  };
  task<int>& first = runtime.spawn(call(ctx1, 1));
  task<int>& second = runtime.spawn(call(ctx2, 2));
  task<int>& third = runtime.spawn(call(ctx3, 3));
  runtime.run_ready();
  EXPECT_EQ(slots.metrics().queued, 2U);
  stop_second.request_stop();
  runtime.run_ready();
  ASSERT_TRUE(second.done());
  EXPECT_EQ(second.take(), -static_cast<int>(errc::cancelled));
  EXPECT_EQ(slots.metrics().queued, 1U);
  (void)runtime.run_until_idle();
  EXPECT_EQ(first.take(), 1);
  EXPECT_EQ(third.take(), 3);
  EXPECT_EQ(clock.next_wake(), time_point::max());
  EXPECT_EQ(slots.metrics().in_flight, 0U);
}

TEST_F(BulkheadAsync, ASlotFreedByABlockingCallerIsHandedToAQueuedCoroutine) {
  stockade::bulkhead<> slots{{.max_concurrent = 1, .max_queue = 4, .max_wait = 1h}};
  const auto policy = stockade::pipeline{std::ref(slots)};
  context blocking{clock};
  std::optional<stockade::bulkhead<>::slot> held;
  held.emplace(slots.acquire(blocking));
  context ctx{clock};
  task<int>& queued =
      runtime.spawn(policy.async(ctx, [&](context& inner) { return work.run(inner, 0ms, 7); }));
  runtime.run_ready();
  EXPECT_FALSE(queued.done());
  EXPECT_EQ(slots.metrics().queued, 1U);
  held.reset();  // the release posts the coroutine; it runs on the runtime's thread, later
  EXPECT_FALSE(queued.done());
  runtime.run_ready();
  ASSERT_TRUE(queued.done());
  EXPECT_EQ(queued.take(), 7);
}

TEST_F(BulkheadAsync, ARuntimeDestroyedWithCoroutinesQueuedLeavesTheBulkheadClean) {
  stockade::bulkhead<> slots{{.max_concurrent = 1, .max_queue = 4, .max_wait = 1h}};
  const auto policy = stockade::pipeline{std::ref(slots)};
  context ctx1{clock};
  context ctx2{clock};
  {
    manual_runtime short_lived{clock};
    short_lived.spawn(policy.async(ctx1, [&](context& inner) { return work.run(inner, 1s, 1); }));
    short_lived.spawn(policy.async(ctx2, [&](context& inner) { return work.run(inner, 1s, 2); }));
    short_lived.run_ready();
    EXPECT_EQ(slots.metrics().in_flight, 1U);
    EXPECT_EQ(slots.metrics().queued, 1U);
  }
  EXPECT_EQ(slots.metrics().in_flight, 0U);
  EXPECT_EQ(slots.metrics().queued, 0U);
  EXPECT_EQ(clock.next_wake(), time_point::max());
}

}  // namespace
