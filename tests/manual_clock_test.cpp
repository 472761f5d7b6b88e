#include <stockade/manual_clock.hpp>

#include <stockade/context.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <stop_token>
#include <thread>

namespace {

using namespace std::chrono_literals;
using stockade::testing::manual_clock;

TEST(ManualClock, StandsStillUntilAdvanced) {
  manual_clock clock;
  const auto start = clock.now();
  EXPECT_EQ(clock.now(), start);
  clock.advance(5s);
  EXPECT_EQ(clock.now(), start + 5s);
}

TEST(ManualClock, NeverMovesBackwards) {
  manual_clock clock;
  const auto start = clock.now();
  clock.advance_to(start - 1s);
  EXPECT_EQ(clock.now(), start);
}

TEST(ManualClock, AdvancingPastTheEndOfTimeStopsAtTheLatestDeadline) {
  manual_clock clock;
  const auto start = clock.now();
  clock.advance(stockade::duration::min());  // no overflow, no move
  EXPECT_EQ(clock.now(), start);
  clock.advance(stockade::duration::max());  // overflowed before (and did not move)
  EXPECT_EQ(clock.now(), stockade::latest_deadline);
  clock.advance(1s);
  EXPECT_EQ(clock.now(), stockade::latest_deadline);
  clock.advance_to(stockade::no_deadline);
  EXPECT_EQ(clock.now(), stockade::latest_deadline);  // "no deadline" never comes
}

TEST(ManualClock, AtTheEndOfTimeEveryDeadlineHasPassedButNoDeadlineWaitsStill) {
  manual_clock clock;
  clock.advance(stockade::duration::max());
  stockade::context bounded{clock};
  bounded.set_timeout(stockade::duration::max());
  EXPECT_TRUE(bounded.has_deadline());
  EXPECT_TRUE(bounded.expired());
  stockade::context unbounded{clock};
  EXPECT_FALSE(unbounded.expired());
}

TEST(ManualClock, SleepAdvancesVirtualTimeAtOnce) {
  manual_clock clock;
  const auto start = clock.now();
  EXPECT_TRUE(clock.sleep_until(start + 10min, {}));
  EXPECT_EQ(clock.now(), start + 10min);
  EXPECT_EQ(clock.sleep_count(), 1U);
  EXPECT_EQ(clock.total_slept(), 10min);
}

TEST(ManualClock, SleepWithAStopAlreadyRequestedReturnsFalseWithoutAdvancing) {
  manual_clock clock;
  std::stop_source stop;
  stop.request_stop();
  const auto start = clock.now();
  EXPECT_FALSE(clock.sleep_until(start + 1s, stop.get_token()));
  EXPECT_EQ(clock.now(), start);
}

TEST(ManualClock, BlockingSleepWakesWhenAnotherThreadAdvancesPastIt) {
  manual_clock clock{manual_clock::sleeps::wait_for_advance};
  const auto wake_at = clock.now() + 3s;
  std::atomic<bool> woke{false};
  std::thread sleeper([&] {
    EXPECT_TRUE(clock.sleep_until(wake_at, {}));
    woke = true;
  });
  ASSERT_TRUE(clock.await_waiting(1));
  clock.advance(2s);
  EXPECT_FALSE(woke.load());  // still one second short
  clock.advance(1s);
  sleeper.join();
  EXPECT_TRUE(woke.load());
}

TEST(ManualClock, BlockingSleepWakesOnStopRequest) {
  manual_clock clock{manual_clock::sleeps::wait_for_advance};
  std::stop_source stop;
  bool slept = true;
  std::thread sleeper([&] { slept = clock.sleep_until(clock.now() + 1h, stop.get_token()); });
  ASSERT_TRUE(clock.await_waiting(1));
  stop.request_stop();
  sleeper.join();
  EXPECT_FALSE(slept);
}

TEST(ManualClock, WaiterWakesWhenNotifiedBeforeItsTime) {
  manual_clock clock;
  std::mutex mutex;
  std::condition_variable_any cv;
  bool ready = false;
  bool result = false;
  std::thread waiter([&] {
    std::unique_lock lock(mutex);
    result = clock.wait_until(lock, cv, clock.now() + 1h, {}, [&] { return ready; });
  });
  ASSERT_TRUE(clock.await_waiting(1));
  {
    std::lock_guard lock(mutex);
    ready = true;
  }
  cv.notify_all();
  waiter.join();
  EXPECT_TRUE(result);
}

TEST(ManualClock, WaiterTimesOutWhenVirtualTimeReachesItsDeadline) {
  manual_clock clock;
  std::mutex mutex;
  std::condition_variable_any cv;
  bool result = true;
  const auto until = clock.now() + 2s;
  std::thread waiter([&] {
    std::unique_lock lock(mutex);
    result = clock.wait_until(lock, cv, until, {}, [] { return false; });
  });
  ASSERT_TRUE(clock.await_waiting(1));
  clock.advance(2s);
  waiter.join();
  EXPECT_FALSE(result);
  EXPECT_EQ(clock.waiting(), 0U);
}

TEST(ManualClock, ManyWaitersEachWakeAtTheirOwnTime) {
  manual_clock clock;
  std::mutex mutex;
  std::condition_variable_any cv;
  std::atomic<int> woken{0};
  const auto start = clock.now();
  std::vector<std::thread> waiters;
  for (int i = 1; i <= 4; ++i) {
    waiters.emplace_back([&, i] {
      std::unique_lock lock(mutex);
      clock.wait_until(lock, cv, start + std::chrono::seconds(i), {}, [] { return false; });
      ++woken;
    });
  }
  ASSERT_TRUE(clock.await_waiting(4));
  clock.advance(2s);
  // Two waiters are due; wait for them to leave (their count drops to two).
  while (clock.waiting() != 2) std::this_thread::yield();
  EXPECT_EQ(woken.load(), 2);
  clock.advance(2s);
  for (auto& t : waiters) t.join();
  EXPECT_EQ(woken.load(), 4);
}

TEST(ManualClock, ScheduledStopFiresWhenTimeIsReached) {
  manual_clock clock;
  std::stop_source source;
  clock.schedule_stop(clock.now() + 1s, source);
  clock.advance(999ms);
  EXPECT_FALSE(source.stop_requested());
  clock.advance(1ms);
  EXPECT_TRUE(source.stop_requested());
}

TEST(ManualClock, CancelledStopNeverFires) {
  manual_clock clock;
  std::stop_source source;
  const auto ticket = clock.schedule_stop(clock.now() + 1s, source);
  clock.cancel_stop(ticket);
  clock.advance(1h);
  EXPECT_FALSE(source.stop_requested());
}

TEST(ManualClock, StopScheduledInThePastFiresAtOnce) {
  manual_clock clock;
  std::stop_source source;
  clock.schedule_stop(clock.now(), source);
  EXPECT_TRUE(source.stop_requested());
}

}  // namespace

namespace {

TEST(ManualClock, NextWakeIsTheEarliestWaiterOrStopTimer) {
  manual_clock clock{manual_clock::sleeps::wait_for_advance};
  const auto start = clock.now();
  EXPECT_EQ(clock.next_wake(), stockade::time_point::max());
  std::stop_source timer;
  clock.schedule_stop(start + 5s, timer);
  EXPECT_EQ(clock.next_wake(), start + 5s);
  std::thread sleeper([&] { EXPECT_TRUE(clock.sleep_until(start + 3s, {})); });
  ASSERT_TRUE(clock.await_waiting(1));
  EXPECT_EQ(clock.next_wake(), start + 3s);
  clock.advance_to(clock.next_wake());  // wakes the sleeper, and nothing else
  sleeper.join();
  EXPECT_FALSE(timer.stop_requested());
  EXPECT_EQ(clock.next_wake(), start + 5s);
  clock.advance_to(clock.next_wake());
  EXPECT_TRUE(timer.stop_requested());
}

}  // namespace
