// The real clock's timer thread under concurrent arms and cancels, with random yields between
// the steps: every timer fires exactly once unless a cancel returned true first, a cancel that
// finds a timer firing returns only after its action finished, and a near timer armed while the
// thread sleeps until a far one wakes it (a lost wake-up would leave the test waiting for an
// hour; it fails after its patience instead). Bounded by iteration counts; the only waits are
// for timers due within microseconds, each with a generous patience.
#include <stockade/clock.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using stockade::real_clock;
using stockade::timer;

/// A timer that records its firing and wakes whoever waits for it.
struct recorded_timer {
  recorded_timer() : timer(timer::purpose::alarm, &on_due, this) {}

  static void on_due(void* self) noexcept {
    auto& me = *static_cast<recorded_timer*>(self);
    if (me.cancelled.load()) me.fired_after_cancel.store(true);
    {
      const std::lock_guard lock(me.mutex);
      me.fired.fetch_add(1);
    }
    me.changed.notify_all();
  }

  bool await_fired(std::chrono::seconds patience) {
    std::unique_lock lock(mutex);
    return changed.wait_for(lock, patience, [this] { return fired.load() > 0; });
  }

  std::atomic<int> fired{0};
  std::atomic<bool> cancelled{false};  // a cancel returned true
  std::atomic<bool> fired_after_cancel{false};
  std::mutex mutex;
  std::condition_variable changed;
  stockade::timer timer;
};

void maybe_yield(std::mt19937& engine) {
  const auto draw = engine() % 8U;
  if (draw == 0) std::this_thread::yield();
  if (draw == 1) {
    for (int spin = 0; spin < static_cast<int>(engine() % 200U); ++spin) {
      std::atomic_signal_fence(std::memory_order_seq_cst);
    }
  }
}

TEST(TimerThreadStress, EveryTimerFiresOnceUnlessCancelledAndNearTimersWakeTheThread) {
  constexpr int threads = 4;
  constexpr int rounds = 5000;
  real_clock& clock = real_clock::instance();
  std::atomic<int> lost{0};
  std::atomic<int> misfired{0};
  std::atomic<int> cancelled_in_time{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      std::mt19937 engine(static_cast<std::uint32_t>(t) * 7919U + 1U);
      // Keeps the timer thread asleep until an hour from now, so only a wake-up by an arm can
      // fire the near timers in time.
      recorded_timer far;
      clock.arm(far.timer, clock.now() + 1h);
      std::vector<std::unique_ptr<recorded_timer>> kept;
      for (int round = 0; round < rounds; ++round) {
        auto near = std::make_unique<recorded_timer>();
        const auto offset = std::chrono::microseconds(engine() % 200U) - 50us;  // some past
        clock.arm(near->timer, clock.now() + offset);
        maybe_yield(engine);
        const auto choice = engine() % 3U;
        if (choice == 1) {  // cancel after a pause
          maybe_yield(engine);
          maybe_yield(engine);
        }
        // 0 and 1 cancel (it may have fired already, or now never will); 2 lets it fire.
        if (choice != 2 && clock.cancel(near->timer)) {
          near->cancelled.store(true);
          cancelled_in_time.fetch_add(1);
        }
        if (!near->cancelled.load() && !near->await_fired(30s)) {
          lost.fetch_add(1);  // not cancelled in time, so it fires (a false cancel: it did)
        }
        kept.push_back(std::move(near));
      }
      for (auto& timer : kept) {
        (void)clock.cancel(timer->timer);  // after this, none can fire any more
        // Cancelled in time: never fired. Otherwise (the cancel came too late, or none was
        // made): fired exactly once.
        const int expected = timer->cancelled.load() ? 0 : 1;
        if (timer->fired_after_cancel.load() || timer->fired.load() != expected) {
          misfired.fetch_add(1);
        }
      }
      EXPECT_TRUE(clock.cancel(far.timer));
    });
  }
  for (auto& worker : workers) worker.join();
  EXPECT_EQ(lost.load(), 0) << "a near timer did not fire within its patience";
  EXPECT_EQ(misfired.load(), 0) << "a timer fired twice, or after a cancel that returned true";
  RecordProperty("cancelled_in_time", cancelled_in_time.load());
}

TEST(TimerThreadStress, ACancelThatFindsTheActionRunningWaitsForItsEnd) {
  constexpr int rounds = 300;
  real_clock& clock = real_clock::instance();
  struct slow_timer {
    slow_timer() : timer(timer::purpose::alarm, &on_due, this) {}
    static void on_due(void* self) noexcept {
      auto& me = *static_cast<slow_timer*>(self);
      me.started.store(true);
      for (int i = 0; i < 20; ++i) std::this_thread::yield();
      me.finished.store(true);
    }
    std::atomic<bool> started{false};
    std::atomic<bool> finished{false};
    stockade::timer timer;
  };
  int seen_running = 0;
  for (int round = 0; round < rounds; ++round) {
    slow_timer alarm;
    clock.arm(alarm.timer, clock.now() - 1us);  // due already: fires as soon as the thread runs
    const auto patience = std::chrono::steady_clock::now() + 30s;
    while (!alarm.started.load() && alarm.timer.armed() &&
           std::chrono::steady_clock::now() < patience) {
      std::this_thread::yield();
    }
    ASSERT_FALSE(!alarm.started.load() && alarm.timer.armed()) << "the due timer never fired";
    if (alarm.started.load() && !alarm.finished.load()) ++seen_running;
    EXPECT_FALSE(clock.cancel(alarm.timer));
    EXPECT_TRUE(alarm.finished.load());  // cancel returned only after the action's end
  }
  RecordProperty("cancels_during_the_action", seen_running);
}

}  // namespace
