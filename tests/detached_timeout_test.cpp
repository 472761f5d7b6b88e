#include <stockade/detached_timeout.hpp>

#include <gtest/gtest.h>

#include "support.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <latch>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>

#include <stockade/manual_clock.hpp>
#include <stockade/pipeline.hpp>
#include <stockade/timeout.hpp>

namespace {

using stockade_test::error_of;

using namespace std::chrono_literals;
using stockade::context;
using stockade::detached_timeout;
using stockade::errc;
using stockade::testing::manual_clock;

constexpr auto patience = 30s;  // real-time bound on waits for detached threads; never reached

/// A call the test holds inside until it lets go (shared, so an abandoned copy stays valid).
struct held_call {
  std::shared_ptr<std::latch> let_go = std::make_shared<std::latch>(1);
  std::shared_ptr<std::atomic<bool>> finished = std::make_shared<std::atomic<bool>>(false);

  auto callable() const {
    return [let_go = let_go, finished = finished] {
      let_go->wait();
      finished->store(true);
      return 1;
    };
  }
};

/// Advances `clock` by `step` as soon as `waiters` threads wait on it.
std::jthread advance_when_waiting(manual_clock& clock, std::size_t waiters,
                                  stockade::duration step) {
  return std::jthread([&clock, waiters, step] {
    if (clock.await_waiting(waiters)) clock.advance(step);
  });
}

// --- configuration ---------------------------------------------------------------------------

TEST(DetachedTimeoutOptions, RefusesANonPositiveLimit) {
  try {
    detached_timeout refused{0s};
    FAIL() << "accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()),
              "stockade::detached_timeout: limit must be positive (got 0ns)");
  }
}

TEST(DetachedTimeoutOptions, RefusesAZeroBoundOnAbandonedCalls) {
  try {
    detached_timeout refused{1s, {.max_abandoned = 0}};
    FAIL() << "accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()),
              "stockade::detached_timeout: max_abandoned must be at least 1 (got 0)");
  }
}

TEST(DetachedTimeoutOptions, DefaultBoundIsEight) {
  EXPECT_EQ(stockade::detached_timeout_options{}.max_abandoned, 8U);
}

// --- calls that finish in time ----------------------------------------------------------------

TEST(DetachedTimeout, ReturnsTheValueOfACallThatFinishesInTime) {
  manual_clock clock;
  detached_timeout detached{2s};
  context ctx{clock};
  EXPECT_EQ(detached.run(ctx, [] { return 5; }), 5);
  EXPECT_EQ(detached.abandoned_running(), 0U);
}

TEST(DetachedTimeout, RethrowsTheErrorOfACallThatFailsInTime) {
  manual_clock clock;
  detached_timeout detached{2s};
  context ctx{clock};
  EXPECT_THROW(detached.run(ctx, []() -> int { throw std::runtime_error("down"); }),
               std::runtime_error);
}

TEST(DetachedTimeout, RunsTheCallOnAnotherThread) {
  manual_clock clock;
  detached_timeout detached{2s};
  context ctx{clock};
  const auto caller = std::this_thread::get_id();
  EXPECT_NE(detached.run(ctx, [] { return std::this_thread::get_id(); }), caller);
}

TEST(DetachedTimeout, CalleeGetsAContextWithTheDeadlineAndName) {
  manual_clock clock;
  detached_timeout detached{2s};
  context ctx{clock};
  ctx.set_name("legacy");
  const auto start = clock.now();
  const auto seen = detached.run(ctx, [](context& inner) {
    return std::pair{inner.deadline(), std::string(inner.name())};
  });
  EXPECT_EQ(seen.first, start + 2s);
  EXPECT_EQ(seen.second, "legacy");
}

TEST(DetachedTimeout, BindMakesAPipelineCallee) {
  manual_clock clock;
  detached_timeout detached{2s};
  context ctx{clock};
  const auto policy = stockade::pipeline{stockade::timeout{5s}};
  EXPECT_EQ(policy(ctx, detached.bind([] { return 3; })), 3);
  bool ran = false;
  policy(ctx, detached.bind([&ran] { ran = true; }));  // a void callee
  EXPECT_TRUE(ran);
}

// --- calls that do not ------------------------------------------------------------------------

TEST(DetachedTimeout, CallerGetsTimeoutAtTheDeadlineAndTheCallRunsToItsEnd) {
  manual_clock clock;
  detached_timeout detached{2s};
  held_call call;
  context ctx{clock};
  auto advancer = advance_when_waiting(clock, 1, 2s);
  EXPECT_EQ(error_of([&] { detached.run(ctx, call.callable()); }), errc::timeout);
  EXPECT_EQ(detached.abandoned_running(), 1U);
  EXPECT_FALSE(call.finished->load());
  call.let_go->count_down();
  ASSERT_TRUE(detached.await_abandoned_at_most(0, patience));
  EXPECT_TRUE(call.finished->load());
}

TEST(DetachedTimeout, WaitsNoLongerThanTheCallersDeadline) {
  manual_clock clock;
  detached_timeout detached{10s};
  held_call call;
  context ctx{clock};
  ctx.set_timeout(1s);
  auto advancer = advance_when_waiting(clock, 1, 1s);
  EXPECT_EQ(error_of([&] { detached.run(ctx, call.callable()); }), errc::timeout);
  call.let_go->count_down();
  ASSERT_TRUE(detached.await_abandoned_at_most(0, patience));
}

TEST(DetachedTimeout, AbandonedCallsBeyondTheBoundRefuseNewCalls) {
  manual_clock clock;
  detached_timeout detached{2s, {.max_abandoned = 1}};
  held_call stuck;
  {
    context ctx{clock};
    auto advancer = advance_when_waiting(clock, 1, 2s);
    EXPECT_EQ(error_of([&] { detached.run(ctx, stuck.callable()); }), errc::timeout);
  }
  context next{clock};
  bool ran = false;
  const auto refused = stockade::pipeline{}.try_call(
      next, [&](context& inner) { detached.run(inner, [&ran] { ran = true; }); });
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(error_of([&] { refused.error().raise(); }), errc::detached_limit_reached);
  EXPECT_FALSE(ran);
  EXPECT_TRUE(refused.outcome().rejected);  // the classifier knows it for a rejection

  stuck.let_go->count_down();
  ASSERT_TRUE(detached.await_abandoned_at_most(0, patience));
  context later{clock};
  detached.run(later, [&ran] { ran = true; });
  EXPECT_TRUE(ran);
}

TEST(DetachedTimeout, DeadlineAlreadyPassedFailsWithoutRunningTheCallable) {
  manual_clock clock;
  detached_timeout detached{2s};
  context ctx{clock};
  ctx.set_deadline(clock.now());
  bool ran = false;
  EXPECT_EQ(error_of([&] { detached.run(ctx, [&ran] { ran = true; }); }),
            errc::deadline_already_passed);
  EXPECT_FALSE(ran);
}

TEST(DetachedTimeout, CallersStopRequestAbandonsTheCallAsCancelled) {
  manual_clock clock;
  detached_timeout detached{2s};
  held_call call;
  std::stop_source cancel;
  context ctx{clock};
  ctx.set_stop_token(cancel.get_token());
  std::jthread canceller([&] {
    if (clock.await_waiting(1)) cancel.request_stop();
  });
  EXPECT_EQ(error_of([&] { detached.run(ctx, call.callable()); }), errc::cancelled);
  call.let_go->count_down();
  ASSERT_TRUE(detached.await_abandoned_at_most(0, patience));
}

TEST(DetachedTimeout, AbandonedCallIsAskedToStopThroughItsToken) {
  manual_clock clock;
  detached_timeout detached{2s};
  auto saw_stop = std::make_shared<std::atomic<bool>>(false);
  context ctx{clock};
  auto advancer = advance_when_waiting(clock, 1, 2s);
  EXPECT_EQ(error_of([&] {
              detached.run(ctx, [saw_stop](context& inner) {
                std::mutex mutex;
                std::condition_variable_any cv;
                std::unique_lock lock(mutex);
                cv.wait(lock, inner.caller_stop_token(), [] { return false; });
                saw_stop->store(true);
              });
            }),
            errc::timeout);
  ASSERT_TRUE(detached.await_abandoned_at_most(0, patience));  // it stopped by itself
  EXPECT_TRUE(saw_stop->load());
}

TEST(DetachedTimeout, ReportsEachAbandonedCall) {
  manual_clock clock;
  stockade::counters counted;
  detached_timeout detached{2s, {}, stockade::observer_ref{counted}};
  held_call call;
  context ctx{clock};
  auto advancer = advance_when_waiting(clock, 1, 2s);
  EXPECT_THROW(detached.run(ctx, call.callable()), stockade::error);
  EXPECT_EQ(counted.count(stockade::event_kind::detached_abandoned), 1U);
  call.let_go->count_down();
  ASSERT_TRUE(detached.await_abandoned_at_most(0, patience));
}

TEST(DetachedTimeout, CopiesShareTheCountOfAbandonedCalls) {
  manual_clock clock;
  detached_timeout detached{2s, {.max_abandoned = 1}};
  const auto copy = detached;
  held_call call;
  context ctx{clock};
  auto advancer = advance_when_waiting(clock, 1, 2s);
  EXPECT_THROW(detached.run(ctx, call.callable()), stockade::error);
  EXPECT_EQ(copy.abandoned_running(), 1U);
  call.let_go->count_down();
  ASSERT_TRUE(copy.await_abandoned_at_most(0, patience));
}

}  // namespace
