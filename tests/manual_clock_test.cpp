#include <stockade/manual_clock.hpp>

#include <stockade/context.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <stop_token>
#include <thread>
#include <vector>

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

/// A timer that counts how often it fired.
struct counting_timer {
  explicit counting_timer(stockade::timer::purpose what = stockade::timer::purpose::alarm)
      : timer(what, &on_due, this) {}
  static void on_due(void* self) noexcept { ++static_cast<counting_timer*>(self)->fired; }
  std::atomic<int> fired{0};
  stockade::timer timer;
};

TEST(ManualClock, SleepAdvancesVirtualTimeAtOnce) {
  manual_clock clock;
  stockade::context ctx{clock};
  const auto start = clock.now();
  EXPECT_TRUE(ctx.sleep_until(start + 10min));
  EXPECT_EQ(clock.now(), start + 10min);
  EXPECT_EQ(clock.sleep_count(), 1U);
  EXPECT_EQ(clock.total_slept(), 10min);
}

TEST(ManualClock, SleepWithAStopAlreadyRequestedReturnsFalseWithoutAdvancing) {
  manual_clock clock;
  std::stop_source stop;
  stop.request_stop();
  stockade::context ctx{clock};
  ctx.set_stop_token(stop.get_token());
  const auto start = clock.now();
  EXPECT_FALSE(ctx.sleep_until(start + 1s));
  EXPECT_EQ(clock.now(), start);
}

TEST(ManualClock, BlockingSleepWakesWhenAnotherThreadAdvancesPastIt) {
  manual_clock clock{manual_clock::sleeps::wait_for_advance};
  const auto wake_at = clock.now() + 3s;
  std::atomic<bool> woke{false};
  std::thread sleeper([&] {
    stockade::context ctx{clock};
    EXPECT_TRUE(ctx.sleep_until(wake_at));
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
  std::thread sleeper([&] {
    stockade::context ctx{clock};
    ctx.set_stop_token(stop.get_token());
    slept = ctx.sleep_until(clock.now() + 1h);
  });
  ASSERT_TRUE(clock.await_waiting(1));
  stop.request_stop();
  sleeper.join();
  EXPECT_FALSE(slept);
  EXPECT_EQ(clock.waiting(), 0U);  // its timer was cancelled
}

TEST(ManualClock, WaiterWakesWhenServedBeforeItsTime) {
  manual_clock clock;
  std::mutex mutex;
  stockade::detail::waiter_queue<stockade::detail::waiter> queue;
  bool ready = false;
  bool result = false;
  std::thread waiter([&] {
    stockade::context ctx{clock};
    std::unique_lock lock(mutex);
    result = ctx.wait_until(lock, queue, clock.now() + 1h, [&] { return ready; });
  });
  ASSERT_TRUE(clock.await_waiting(1));
  {
    std::lock_guard lock(mutex);
    ready = true;
    stockade::detail::serve_all(queue);
  }
  waiter.join();
  EXPECT_TRUE(result);
  EXPECT_TRUE(queue.empty());
}

TEST(ManualClock, WaiterTimesOutWhenVirtualTimeReachesItsDeadline) {
  manual_clock clock;
  std::mutex mutex;
  stockade::detail::waiter_queue<stockade::detail::waiter> queue;
  bool result = true;
  const auto until = clock.now() + 2s;
  std::thread waiter([&] {
    stockade::context ctx{clock};
    std::unique_lock lock(mutex);
    result = ctx.wait_until(lock, queue, until, [] { return false; });
  });
  ASSERT_TRUE(clock.await_waiting(1));
  clock.advance(2s);
  waiter.join();
  EXPECT_FALSE(result);
  EXPECT_EQ(clock.waiting(), 0U);
  EXPECT_TRUE(queue.empty());  // it took itself out
}

TEST(ManualClock, ManyWaitersEachWakeAtTheirOwnTime) {
  manual_clock clock;
  std::mutex mutex;
  stockade::detail::waiter_queue<stockade::detail::waiter> queue;
  std::atomic<int> woken{0};
  const auto start = clock.now();
  std::vector<std::thread> waiters;
  for (int i = 1; i <= 4; ++i) {
    waiters.emplace_back([&, i] {
      stockade::context ctx{clock};
      std::unique_lock lock(mutex);
      ctx.wait_until(lock, queue, start + std::chrono::seconds(i), [] { return false; });
      ++woken;
    });
  }
  ASSERT_TRUE(clock.await_waiting(4));
  clock.advance(2s);
  EXPECT_EQ(clock.waiting(), 2U);  // the two due have fired
  while (woken.load() < 2) std::this_thread::yield();
  EXPECT_EQ(woken.load(), 2);
  clock.advance(2s);
  for (auto& t : waiters) t.join();
  EXPECT_EQ(woken.load(), 4);
}

TEST(ManualClock, TimerFiresWhenTimeIsReached) {
  manual_clock clock;
  counting_timer alarm;
  clock.arm(alarm.timer, clock.now() + 1s);
  EXPECT_TRUE(alarm.timer.armed());
  clock.advance(999ms);
  EXPECT_EQ(alarm.fired.load(), 0);
  clock.advance(1ms);
  EXPECT_EQ(alarm.fired.load(), 1);
  EXPECT_FALSE(alarm.timer.armed());
  EXPECT_FALSE(clock.cancel(alarm.timer));  // it has fired
  clock.advance(1h);
  EXPECT_EQ(alarm.fired.load(), 1);  // once
}

TEST(ManualClock, CancelledTimerNeverFires) {
  manual_clock clock;
  counting_timer alarm;
  clock.arm(alarm.timer, clock.now() + 1s);
  EXPECT_TRUE(clock.cancel(alarm.timer));
  EXPECT_FALSE(clock.cancel(alarm.timer));  // not armed any more
  clock.advance(1h);
  EXPECT_EQ(alarm.fired.load(), 0);
}

TEST(ManualClock, TimerDueAlreadyFiresAtOnceOnTheArmingThread) {
  manual_clock clock;
  counting_timer alarm;
  clock.arm(alarm.timer, clock.now());
  EXPECT_EQ(alarm.fired.load(), 1);
}

TEST(ManualClock, TimersFireInOrderOfDueTimeAndEqualOnesInOrderOfArming) {
  manual_clock clock;
  std::vector<int> order;
  struct logging_timer {
    logging_timer(std::vector<int>& to, int label)
        : log(&to), id(label), timer(stockade::timer::purpose::alarm, &on_due, this) {}
    static void on_due(void* self) noexcept {
      auto& me = *static_cast<logging_timer*>(self);
      me.log->push_back(me.id);
    }
    std::vector<int>* log;
    int id;
    stockade::timer timer;
  };
  logging_timer a{order, 1}, b{order, 2}, c{order, 3}, d{order, 4};
  const auto start = clock.now();
  clock.arm(a.timer, start + 3s);
  clock.arm(b.timer, start + 1s);
  clock.arm(c.timer, start + 3s);
  clock.arm(d.timer, start + 2s);
  clock.advance(5s);
  EXPECT_EQ(order, (std::vector<int>{2, 4, 1, 3}));
}

TEST(ManualClock, AnActionMayCancelItsOwnTimer) {
  manual_clock clock;
  struct self_cancelling {
    manual_clock* clock;
    bool cancelled = true;
    stockade::timer timer{stockade::timer::purpose::alarm, &on_due, this};
    static void on_due(void* self) noexcept {
      auto& me = *static_cast<self_cancelling*>(self);
      me.cancelled = me.clock->cancel(me.timer);  // returns at once instead of waiting for itself
    }
  } alarm{&clock};
  clock.arm(alarm.timer, clock.now() + 1s);
  clock.advance(1s);
  EXPECT_FALSE(alarm.cancelled);
}

TEST(ManualClock, OnlySleepsAndWaitsCountAsWaiting) {
  manual_clock clock;
  counting_timer alarm{stockade::timer::purpose::alarm};
  counting_timer wait{stockade::timer::purpose::wait};
  clock.arm(alarm.timer, clock.now() + 1s);
  EXPECT_EQ(clock.waiting(), 0U);
  clock.arm(wait.timer, stockade::no_deadline);  // counted, and never due
  EXPECT_EQ(clock.waiting(), 1U);
  EXPECT_EQ(clock.next_wake(), clock.now() + 1s);
  clock.advance(stockade::duration::max());
  EXPECT_EQ(wait.fired.load(), 0);
  EXPECT_TRUE(clock.cancel(wait.timer));
  EXPECT_EQ(clock.waiting(), 0U);
}

}  // namespace

namespace {

TEST(ManualClock, NextWakeIsTheEarliestTimer) {
  manual_clock clock{manual_clock::sleeps::wait_for_advance};
  const auto start = clock.now();
  EXPECT_EQ(clock.next_wake(), stockade::time_point::max());
  counting_timer alarm;
  clock.arm(alarm.timer, start + 5s);
  EXPECT_EQ(clock.next_wake(), start + 5s);
  std::thread sleeper([&] {
    stockade::context ctx{clock};
    EXPECT_TRUE(ctx.sleep_until(start + 3s));
  });
  ASSERT_TRUE(clock.await_waiting(1));
  EXPECT_EQ(clock.next_wake(), start + 3s);
  clock.advance_to(clock.next_wake());  // wakes the sleeper, and nothing else
  sleeper.join();
  EXPECT_EQ(alarm.fired.load(), 0);
  EXPECT_EQ(clock.next_wake(), start + 5s);
  clock.advance_to(clock.next_wake());
  EXPECT_EQ(alarm.fired.load(), 1);
}

TEST(ManualClock, RecentReadingIsTheExactTime) {
  manual_clock clock;
  clock.advance(5s);
  EXPECT_EQ(clock.recent(), clock.now());
}

TEST(RealClock, RecentReadingIsNeverAheadOfNow) {
  auto& clock = stockade::real_clock::instance();
  for (int i = 0; i < 1000; ++i) {
    const stockade::time_point recent = clock.recent();
    EXPECT_LE(recent, clock.now());
  }
}

}  // namespace
