#include <stockade/context.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include <stockade/manual_clock.hpp>

namespace {

using namespace std::chrono_literals;
using stockade::context;
using stockade::testing::manual_clock;

TEST(Context, HasNoDeadlineByDefault) {
  manual_clock clock;
  context ctx{clock};
  EXPECT_FALSE(ctx.has_deadline());
  EXPECT_EQ(ctx.remaining(), stockade::duration::max());
  EXPECT_FALSE(ctx.expired());
}

TEST(Context, RemainingCountsDownWithTheClockAndStopsAtZero) {
  manual_clock clock;
  context ctx{clock};
  ctx.set_timeout(10s);
  EXPECT_EQ(ctx.remaining(), 10s);
  clock.advance(4s);
  EXPECT_EQ(ctx.remaining(), 6s);
  clock.advance(7s);
  EXPECT_EQ(ctx.remaining(), 0s);
  EXPECT_TRUE(ctx.expired());
}

TEST(Context, RemainingAndExpiredReadTheClockEachTimeTheCalleeAsks) {
  // A callee that loops, or connects and then queries, must see the time it really has left,
  // not the time cached when its attempt began (it saw "100 ms" four times across 120 ms).
  manual_clock clock;
  context ctx{clock};
  ctx.set_timeout(100ms);
  (void)ctx.now();  // a policy cached the time at the start of the attempt
  std::vector<stockade::duration> seen;
  bool expired_seen = false;
  for (int step = 0; step < 4; ++step) {
    seen.push_back(ctx.remaining());
    clock.advance(40ms);
    expired_seen = ctx.expired();
  }
  EXPECT_EQ(seen, (std::vector<stockade::duration>{100ms, 60ms, 20ms, 0ms}));
  EXPECT_TRUE(expired_seen);
}

TEST(Context, NowIsReadOnceUntilForgotten) {
  manual_clock clock;
  context ctx{clock};
  const auto first = ctx.now();
  clock.advance(1s);
  EXPECT_EQ(ctx.now(), first);
  EXPECT_EQ(ctx.refresh_now(), first + 1s);
  clock.advance(1s);
  ctx.forget_now();
  EXPECT_EQ(ctx.now(), first + 2s);
}

TEST(Context, SetDeadlineOnlyNarrows) {
  manual_clock clock;
  context ctx{clock};
  ctx.set_timeout(5s);
  const auto deadline = ctx.deadline();
  ctx.set_timeout(10s);
  EXPECT_EQ(ctx.deadline(), deadline);
}

TEST(Context, DeadlineScopeNarrowsAndRestores) {
  manual_clock clock;
  context ctx{clock};
  ctx.set_timeout(10s);
  const auto outer = ctx.deadline();
  {
    stockade::deadline_scope inner(ctx, ctx.now() + 2s);
    EXPECT_TRUE(inner.narrowed());
    EXPECT_EQ(ctx.deadline(), outer - 8s);
  }
  EXPECT_EQ(ctx.deadline(), outer);
}

TEST(Context, DeadlineScopeCannotExtend) {
  manual_clock clock;
  context ctx{clock};
  ctx.set_timeout(1s);
  const auto outer = ctx.deadline();
  stockade::deadline_scope inner(ctx, ctx.now() + 1h);
  EXPECT_FALSE(inner.narrowed());
  EXPECT_EQ(ctx.deadline(), outer);
}

TEST(Context, SleepIsCutByTheDeadline) {
  manual_clock clock;
  context ctx{clock};
  const auto start = ctx.now();
  ctx.set_timeout(3s);
  EXPECT_FALSE(ctx.sleep_for(10s));
  EXPECT_EQ(clock.now(), start + 3s);
  EXPECT_TRUE(ctx.expired());
}

TEST(Context, SleepWithinTheDeadlineSleepsFully) {
  manual_clock clock;
  context ctx{clock};
  const auto start = ctx.now();
  ctx.set_timeout(3s);
  EXPECT_TRUE(ctx.sleep_for(2s));
  EXPECT_EQ(ctx.now(), start + 2s);  // the cached time was refreshed after the sleep
}

TEST(Context, SleepWakesOnTheCallersStopToken) {
  manual_clock clock{manual_clock::sleeps::wait_for_advance};
  std::stop_source stop;
  context ctx{clock};
  ctx.set_stop_token(stop.get_token());
  bool slept = true;
  std::thread sleeper([&] { slept = ctx.sleep_for(1h); });
  ASSERT_TRUE(clock.await_waiting(1));
  stop.request_stop();
  sleeper.join();
  EXPECT_FALSE(slept);
  EXPECT_TRUE(ctx.stop_requested());
}

TEST(Context, WaitIsBoundedByTheDeadline) {
  manual_clock clock;
  context ctx{clock};
  ctx.set_timeout(1s);
  std::mutex mutex;
  stockade::detail::waiter_queue<stockade::detail::waiter> queue;
  bool ready = true;
  std::thread waiter([&] {
    std::unique_lock lock(mutex);
    ready = ctx.wait_until(lock, queue, stockade::no_deadline, [] { return false; });
  });
  ASSERT_TRUE(clock.await_waiting(1));
  clock.advance(1s);
  waiter.join();
  EXPECT_FALSE(ready);
}

TEST(Context, StopTokenWithoutDeadlineIsTheCallers) {
  std::stop_source stop;
  context ctx;
  ctx.set_stop_token(stop.get_token());
  EXPECT_EQ(ctx.stop_token(), stop.get_token());
}

TEST(Context, StopTokenFiresAtTheDeadline) {
  manual_clock clock;
  context ctx{clock};
  ctx.set_timeout(2s);
  const std::stop_token token = ctx.stop_token();
  EXPECT_FALSE(token.stop_requested());
  clock.advance(2s);
  EXPECT_TRUE(token.stop_requested());
  EXPECT_TRUE(ctx.stop_requested());
}

TEST(Context, StopTokenWithDeadlineAlsoFiresOnTheCallersStop) {
  manual_clock clock;
  std::stop_source caller;
  context ctx{clock};
  ctx.set_stop_token(caller.get_token());
  ctx.set_timeout(1h);
  const std::stop_token token = ctx.stop_token();
  caller.request_stop();
  EXPECT_TRUE(token.stop_requested());
}

TEST(Context, InnerScopeStopDoesNotStopTheOuterScope) {
  manual_clock clock;
  context ctx{clock};
  ctx.set_timeout(10s);
  const std::stop_token outer = ctx.stop_token();
  {
    stockade::deadline_scope inner(ctx, ctx.now() + 1s);
    const std::stop_token token = ctx.stop_token();
    clock.advance(1s);
    EXPECT_TRUE(token.stop_requested());
  }
  EXPECT_FALSE(outer.stop_requested());
  EXPECT_FALSE(ctx.stop_requested());
}

TEST(Context, StopTokenOnTheRealClockFiresAtTheDeadline) {
  // The one test on the real clock: the shared timer thread must fire a stop. It waits on the
  // token (no sleep), with a deadline a millisecond away.
  context ctx;
  ctx.set_timeout(1ms);
  std::stop_token token = ctx.stop_token();
  std::mutex mutex;
  std::condition_variable_any cv;
  std::unique_lock lock(mutex);
  EXPECT_TRUE(cv.wait(lock, token, [] { return false; }) == false && token.stop_requested());
}

TEST(Context, StopRequestedAtTheDeadlineWithoutArmingAnything) {
  // A callee that only asks whether to stop pays for no stop state and no timer.
  manual_clock clock;
  context ctx{clock};
  ctx.set_timeout(2s);
  EXPECT_FALSE(ctx.stop_requested());
  EXPECT_EQ(clock.next_wake(), stockade::time_point::max());  // nothing armed
  clock.advance(1999ms);
  EXPECT_FALSE(ctx.stop_requested());
  clock.advance(1ms);
  EXPECT_TRUE(ctx.stop_requested());
  EXPECT_EQ(clock.next_wake(), stockade::time_point::max());
}

TEST(Context, StopRequestedOnTheCallersStopWithOrWithoutADeadline) {
  manual_clock clock;
  std::stop_source caller;
  context ctx{clock};
  ctx.set_stop_token(caller.get_token());
  EXPECT_FALSE(ctx.stop_requested());
  caller.request_stop();
  EXPECT_TRUE(ctx.stop_requested());
  ctx.set_timeout(1h);
  EXPECT_TRUE(ctx.stop_requested());
}

TEST(Context, StopRequestedFollowsTheInnermostDeadline) {
  manual_clock clock;
  context ctx{clock};
  ctx.set_timeout(10s);
  {
    const stockade::deadline_scope inner(ctx, ctx.now() + 1s);
    clock.advance(1s);
    EXPECT_TRUE(ctx.stop_requested());
  }
  EXPECT_FALSE(ctx.stop_requested());
}

TEST(Context, StopRequestedOnTheRealClockIsExactAtTheDeadline) {
  // On the real clock the poll reads the coarse clock, which may lag a tick; within a tick of
  // the deadline it reads the exact clock, so a deadline just passed is seen at once and one
  // far away costs no exact read.
  context ctx;
  ctx.set_deadline(std::chrono::steady_clock::now());
  EXPECT_TRUE(ctx.stop_requested());

  context later;
  later.set_timeout(1h);
  EXPECT_FALSE(later.stop_requested());
}

TEST(Context, HandsAResourceToTheCallee) {
  context ctx;
  std::string connection = "conn-1";
  EXPECT_EQ(ctx.find_resource<std::string>(), nullptr);
  EXPECT_THROW(ctx.resource<std::string>(), std::logic_error);
  {
    const stockade::lend_scope<std::string> lent(ctx, &connection);
    EXPECT_EQ(&ctx.resource<std::string>(), &connection);
    EXPECT_EQ(ctx.find_resource<int>(), nullptr);
  }
  EXPECT_EQ(ctx.find_resource<std::string>(), nullptr);  // taken back with its scope
}

TEST(Context, ResourcesOfDifferentTypesAreAllVisibleAndAnInnerOneHidesAnOuterOfItsType) {
  context ctx;
  std::string outer_connection = "conn-1";
  std::string inner_connection = "conn-2";
  int cache_client = 7;
  const stockade::lend_scope<std::string> outer(ctx, &outer_connection);
  {
    const stockade::lend_scope<int> cache(ctx, &cache_client);
    const stockade::lend_scope<std::string> inner(ctx, &inner_connection);
    EXPECT_EQ(&ctx.resource<std::string>(), &inner_connection);
    EXPECT_EQ(&ctx.resource<int>(), &cache_client);  // a single slot lost this one
  }
  EXPECT_EQ(&ctx.resource<std::string>(), &outer_connection);
  EXPECT_EQ(ctx.find_resource<int>(), nullptr);
}

TEST(Context, SaturatesDeadlinesInsteadOfOverflowingAndKeepsThemDeadlines) {
  context ctx;
  ctx.set_timeout(stockade::duration::max());
  EXPECT_TRUE(ctx.has_deadline());  // a limit however long is still a limit
  EXPECT_EQ(ctx.deadline(), stockade::latest_deadline);
}

}  // namespace
