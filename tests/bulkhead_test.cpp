#include <stockade/bulkhead.hpp>

#include <gtest/gtest.h>

#include "support.hpp"

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <latch>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include <stockade/manual_clock.hpp>
#include <stockade/pipeline.hpp>

namespace {

using stockade_test::error_of;

using namespace std::chrono_literals;
using stockade::bulkhead;
using stockade::bulkhead_options;
using stockade::bulkhead_rejected;
using stockade::context;
using stockade::errc;
using stockade::testing::manual_clock;

/// A call through `slots` on its own context, run on a thread: records whether it got in.
struct queued_call {
  std::optional<errc> refused;
  bool ran = false;
};

/// An outer layer that records the outcome it sees when a call fails, as a breaker would.
struct outcome_recorder {
  std::optional<stockade::outcome>* seen;
  template <class Next>
  auto invoke(context& ctx, Next&& next) const {
    auto ended = next(ctx);
    if (!ended.has_value()) *seen = ended.outcome();
    return ended;
  }
};

// --- configuration ---------------------------------------------------------------------------

TEST(BulkheadOptions, DefaultsFailFastWithResilience4jsSize) {
  constexpr bulkhead_options defaults{};
  EXPECT_EQ(defaults.max_concurrent, 25U);
  EXPECT_EQ(defaults.max_queue, 0U);
  EXPECT_EQ(defaults.max_wait, 0s);
}

std::string invalid_message(const bulkhead_options& options) {
  try {
    bulkhead<> refused{options};
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "accepted";
}

TEST(BulkheadOptions, RefusesZeroSlots) {
  EXPECT_EQ(invalid_message({.max_concurrent = 0}),
            "stockade::bulkhead: max_concurrent must be at least 1 (got 0)");
}

TEST(BulkheadOptions, RefusesMoreSlotsThanTheCounterHolds) {
  EXPECT_NE(invalid_message({.max_concurrent = std::size_t{1} << 31}).find("max_concurrent"),
            std::string::npos);
}

TEST(BulkheadOptions, RefusesAQueueLongerThanTheCounterHolds) {
  EXPECT_NE(invalid_message({.max_queue = std::size_t{1} << 31, .max_wait = 1s}).find("max_queue"),
            std::string::npos);
}

TEST(BulkheadOptions, RefusesANegativeWait) {
  EXPECT_NE(
      invalid_message({.max_queue = 1, .max_wait = -1ms}).find("max_wait must not be negative"),
      std::string::npos);
}

TEST(BulkheadOptions, RefusesAQueueWithoutAWait) {
  EXPECT_EQ(invalid_message({.max_queue = 4}),
            "stockade::bulkhead: max_wait must be positive when max_queue is positive (got 0ns)");
}

TEST(BulkheadOptions, RefusesAWaitWithoutAQueue) {
  EXPECT_EQ(invalid_message({.max_wait = 1s}),
            "stockade::bulkhead: max_queue must be positive when max_wait is positive (got 0)");
}

template <class Make>
constexpr bool is_constant_expression = requires {
  typename std::bool_constant<(Make{}(), true)>;
};

TEST(BulkheadOptions, ABadConstexprConfigurationDoesNotCompile) {
  static_assert(is_constant_expression<decltype([] {
    stockade::bulkhead_options{.max_concurrent = 5, .max_queue = 64, .max_wait = 2s}.validate();
    return 0;
  })>);
  static_assert(!is_constant_expression<decltype([] {
    stockade::bulkhead_options{.max_concurrent = 0}.validate();
    return 0;
  })>);
  static_assert(!is_constant_expression<decltype([] {
    stockade::bulkhead_options{.max_queue = 3}.validate();
    return 0;
  })>);
}

TEST(BulkheadOptions, ConstinitBulkheadIsBuiltAtCompileTime) {
  static constinit bulkhead<> slots{{.max_concurrent = 2}};
  EXPECT_EQ(slots.options().max_concurrent, 2U);
}

// --- free slots ------------------------------------------------------------------------------

TEST(Bulkhead, RunsTheCallInAFreeSlotAndGivesItBack) {
  manual_clock clock;
  bulkhead slots{{.max_concurrent = 2}};
  const auto policy = stockade::pipeline{std::ref(slots)};
  context ctx{clock};
  const int result = policy(ctx, [&] {
    EXPECT_EQ(slots.metrics().in_flight, 1U);
    return 7;
  });
  EXPECT_EQ(result, 7);
  EXPECT_EQ(slots.metrics().in_flight, 0U);
  EXPECT_EQ(slots.metrics().peak_in_flight, 1U);
}

TEST(Bulkhead, GivesTheSlotBackWhenTheCalleeThrows) {
  manual_clock clock;
  bulkhead slots{{.max_concurrent = 1}};
  const auto policy = stockade::pipeline{std::ref(slots)};
  context ctx{clock};
  EXPECT_THROW(policy(ctx, []() -> int { throw std::runtime_error("down"); }), std::runtime_error);
  EXPECT_EQ(slots.metrics().in_flight, 0U);
  context again{clock};
  EXPECT_EQ(policy(again, [] { return 1; }), 1);
}

TEST(Bulkhead, SlotGuardGivesBackExactlyOnce) {
  bulkhead slots{{.max_concurrent = 1}};
  auto held = slots.try_acquire();
  ASSERT_TRUE(held.has_value());
  auto moved = std::move(*held);
  held.reset();
  EXPECT_EQ(slots.metrics().in_flight, 1U);
  moved.reset();
  moved.reset();
  EXPECT_EQ(slots.metrics().in_flight, 0U);
}

TEST(Bulkhead, PeakInFlightRemembersTheMostSlotsHeldAtOnce) {
  bulkhead slots{{.max_concurrent = 3}};
  {
    auto a = slots.try_acquire();
    auto b = slots.try_acquire();
    auto c = slots.try_acquire();
    EXPECT_TRUE(a && b && c);
  }
  auto d = slots.try_acquire();
  const auto seen = slots.metrics();
  EXPECT_EQ(seen.in_flight, 1U);
  EXPECT_EQ(seen.peak_in_flight, 3U);
}

// --- rejection -------------------------------------------------------------------------------

TEST(Bulkhead, FullWithoutAQueueRejectsAtOnce) {
  manual_clock clock;
  bulkhead slots{{.max_concurrent = 1}};
  auto held = slots.try_acquire();
  context ctx{clock};
  bool ran = false;
  EXPECT_EQ(error_of([&] { stockade::pipeline{std::ref(slots)}(ctx, [&] { ran = true; }); }),
            errc::bulkhead_full);
  EXPECT_FALSE(ran);
  EXPECT_EQ(slots.metrics().rejected, 1U);
  EXPECT_EQ(clock.sleep_count(), 0U);
}

TEST(Bulkhead, RejectionIsMarkedSoOuterLayersDoNotCountItAsAFailure) {
  manual_clock clock;
  bulkhead slots{{.max_concurrent = 1}};
  auto held = slots.try_acquire();
  std::optional<stockade::outcome> seen_outside;
  context ctx{clock};
  const auto policy = stockade::pipeline{outcome_recorder{&seen_outside}, std::ref(slots)};
  EXPECT_THROW(policy(ctx, [] { return 1; }), stockade::error);
  ASSERT_TRUE(seen_outside.has_value());
  EXPECT_TRUE(seen_outside->rejected);
  EXPECT_FALSE(seen_outside->is_dependency_failure());
  EXPECT_TRUE(stockade::is_rejection(errc::bulkhead_full));
  EXPECT_TRUE(stockade::is_rejection(errc::bulkhead_wait_exceeded));
}

TEST(Bulkhead, ReportsEachRejectionWithItsReason) {
  manual_clock clock;
  std::vector<bulkhead_rejected> events;
  stockade::callback_observer observer{[&](const bulkhead_rejected& e) { events.push_back(e); }};
  bulkhead<decltype(observer)> slots{{.max_concurrent = 1}, observer};
  auto held = slots.try_acquire();
  context ctx{clock};
  ctx.set_name("db");
  EXPECT_THROW(stockade::pipeline{std::ref(slots)}(ctx, [](context&) { return 0; }),
               stockade::error);
  ASSERT_EQ(events.size(), 1U);
  EXPECT_EQ(events[0].why, bulkhead_rejected::reason::full);
  EXPECT_EQ(events[0].name, "db");
  EXPECT_EQ(events[0].in_flight, 1U);
}

TEST(Bulkhead, TryAcquireNeverWaitsAndCountsNoRejection) {
  bulkhead slots{{.max_concurrent = 1, .max_queue = 4, .max_wait = 1s}};
  auto held = slots.try_acquire();
  EXPECT_FALSE(slots.try_acquire().has_value());
  EXPECT_EQ(slots.metrics().rejected, 0U);
}

// --- queueing --------------------------------------------------------------------------------

TEST(Bulkhead, QueuedCallersAreServedFirstInFirstOut) {
  manual_clock clock;
  bulkhead slots{{.max_concurrent = 1, .max_queue = 3, .max_wait = 10s}};
  auto held = slots.try_acquire();
  std::mutex order_mutex;
  std::vector<int> order;
  std::vector<std::jthread> callers;
  for (int id = 0; id < 3; ++id) {
    callers.emplace_back([&, id] {
      context ctx{clock};
      stockade::pipeline{std::ref(slots)}(ctx, [&](context&) {
        const std::lock_guard lock(order_mutex);
        order.push_back(id);
        return 0;
      });
    });
    // Each caller is queued before the next one starts, so arrival order is 0, 1, 2.
    ASSERT_TRUE(clock.await_waiting(static_cast<std::size_t>(id) + 1));
  }
  EXPECT_EQ(slots.metrics().queued, 3U);
  held.reset();
  callers.clear();  // joins
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(slots.metrics().in_flight, 0U);
  EXPECT_EQ(slots.metrics().queued, 0U);
}

TEST(Bulkhead, AReleasedSlotGoesToTheWaiterNotToANewcomer) {
  manual_clock clock;
  bulkhead slots{{.max_concurrent = 1, .max_queue = 1, .max_wait = 10s}};
  auto held = slots.try_acquire();
  std::latch waiter_running{1};
  std::latch let_waiter_finish{1};
  std::jthread waiter([&] {
    context ctx{clock};
    stockade::pipeline{std::ref(slots)}(ctx, [&](context&) {
      waiter_running.count_down();
      let_waiter_finish.wait();
      return 0;
    });
  });
  ASSERT_TRUE(clock.await_waiting(1));
  held.reset();  // hands the slot over before returning
  EXPECT_EQ(slots.metrics().in_flight, 1U);
  EXPECT_EQ(slots.metrics().queued, 0U);
  EXPECT_FALSE(slots.try_acquire().has_value());  // no barging
  waiter_running.wait();
  let_waiter_finish.count_down();
  waiter.join();
  EXPECT_TRUE(slots.try_acquire().has_value());
}

TEST(Bulkhead, FullQueueRejectsTheNextCaller) {
  manual_clock clock;
  bulkhead slots{{.max_concurrent = 1, .max_queue = 1, .max_wait = 10s}};
  auto held = slots.try_acquire();
  queued_call first;
  std::jthread waiter([&] {
    context ctx{clock};
    first.refused = error_of([&] {
      stockade::pipeline{std::ref(slots)}(ctx, [&](context&) { return first.ran = true; });
    });
  });
  ASSERT_TRUE(clock.await_waiting(1));
  context ctx{clock};
  EXPECT_EQ(error_of([&] { stockade::pipeline{std::ref(slots)}(ctx, [](context&) { return 0; }); }),
            errc::bulkhead_full);
  held.reset();
  waiter.join();
  EXPECT_TRUE(first.ran);
  EXPECT_FALSE(first.refused.has_value());
}

TEST(Bulkhead, WaiterGivesUpAfterMaxWait) {
  manual_clock clock;
  bulkhead slots{{.max_concurrent = 1, .max_queue = 2, .max_wait = 100ms}};
  auto held = slots.try_acquire();
  queued_call call;
  std::jthread waiter([&] {
    context ctx{clock};
    call.refused = error_of([&] {
      stockade::pipeline{std::ref(slots)}(ctx, [&](context&) { return call.ran = true; });
    });
  });
  ASSERT_TRUE(clock.await_waiting(1));
  clock.advance(99ms);
  EXPECT_EQ(slots.metrics().queued, 1U);
  clock.advance(1ms);
  waiter.join();
  EXPECT_EQ(call.refused, errc::bulkhead_wait_exceeded);
  EXPECT_FALSE(call.ran);
  EXPECT_EQ(slots.metrics().queued, 0U);
  EXPECT_EQ(slots.metrics().rejected, 1U);
  held.reset();
  EXPECT_EQ(slots.metrics().in_flight, 0U);  // the leaver took nothing with it
}

TEST(Bulkhead, WaitIsCutByTheCallsDeadline) {
  manual_clock clock;
  bulkhead slots{{.max_concurrent = 1, .max_queue = 2, .max_wait = 10s}};
  auto held = slots.try_acquire();
  queued_call call;
  std::jthread waiter([&] {
    context ctx{clock};
    ctx.set_timeout(50ms);
    call.refused = error_of([&] {
      stockade::pipeline{std::ref(slots)}(ctx, [&](context&) { return call.ran = true; });
    });
  });
  ASSERT_TRUE(clock.await_waiting(1));
  clock.advance(50ms);
  waiter.join();
  EXPECT_EQ(call.refused, errc::bulkhead_wait_exceeded);
  EXPECT_FALSE(call.ran);
}

TEST(Bulkhead, DeadlineAlreadyPassedIsRefusedWithoutQueueing) {
  manual_clock clock;
  bulkhead slots{{.max_concurrent = 1, .max_queue = 2, .max_wait = 10s}};
  auto held = slots.try_acquire();
  context ctx{clock};
  ctx.set_deadline(clock.now());
  EXPECT_EQ(error_of([&] { stockade::pipeline{std::ref(slots)}(ctx, [](context&) { return 0; }); }),
            errc::bulkhead_wait_exceeded);
  EXPECT_EQ(clock.waiting(), 0U);
}

TEST(Bulkhead, StopTokenWakesAWaiter) {
  manual_clock clock;
  bulkhead slots{{.max_concurrent = 1, .max_queue = 2, .max_wait = 10s}};
  auto held = slots.try_acquire();
  std::stop_source cancel;
  queued_call call;
  std::jthread waiter([&] {
    context ctx{clock};
    ctx.set_stop_token(cancel.get_token());
    call.refused = error_of([&] {
      stockade::pipeline{std::ref(slots)}(ctx, [&](context&) { return call.ran = true; });
    });
  });
  ASSERT_TRUE(clock.await_waiting(1));
  cancel.request_stop();
  waiter.join();
  EXPECT_EQ(call.refused, errc::cancelled);
  EXPECT_FALSE(call.ran);
  EXPECT_EQ(slots.metrics().queued, 0U);
}

TEST(Bulkhead, LeaverInTheMiddleKeepsTheOthersInOrder) {
  manual_clock clock;
  bulkhead slots{{.max_concurrent = 1, .max_queue = 3, .max_wait = 10s}};
  auto held = slots.try_acquire();
  std::mutex order_mutex;
  std::vector<int> order;
  std::stop_source cancel_second;
  std::vector<std::jthread> callers;
  for (int id = 0; id < 3; ++id) {
    callers.emplace_back([&, id] {
      context ctx{clock};
      if (id == 1) ctx.set_stop_token(cancel_second.get_token());
      (void)error_of([&] {
        stockade::pipeline{std::ref(slots)}(ctx, [&](context&) {
          const std::lock_guard lock(order_mutex);
          order.push_back(id);
          return 0;
        });
      });
    });
    ASSERT_TRUE(clock.await_waiting(static_cast<std::size_t>(id) + 1));
  }
  cancel_second.request_stop();
  callers[1].join();
  EXPECT_EQ(slots.metrics().queued, 2U);
  held.reset();
  callers.clear();
  EXPECT_EQ(order, (std::vector<int>{0, 2}));
}

/// A clock that takes no timer, so every wait fails: a waiter whose wait throws leaves no trace.
class clock_that_cannot_wait final : public stockade::clock {
 public:
  explicit clock_that_cannot_wait(manual_clock& time) : time_(time) {}
  stockade::time_point now() const noexcept override { return time_.now(); }
  void arm(stockade::timer& /*t*/, stockade::time_point /*when*/) override {
    throw std::runtime_error("cannot wait");
  }
  bool cancel(stockade::timer& t) noexcept override { return time_.cancel(t); }

 private:
  manual_clock& time_;
};

TEST(Bulkhead, AWaiterWhoseWaitFailsLeavesTheQueue) {
  manual_clock time;
  clock_that_cannot_wait clock{time};
  bulkhead slots{{.max_concurrent = 1, .max_queue = 1, .max_wait = 1s}};
  auto held = slots.try_acquire();
  context ctx{clock};
  EXPECT_THROW(stockade::pipeline{std::ref(slots)}(ctx, [](context&) { return 0; }),
               std::runtime_error);
  EXPECT_EQ(slots.metrics().queued, 0U);
  held.reset();
  EXPECT_EQ(slots.metrics().in_flight, 0U);
  EXPECT_TRUE(slots.try_acquire().has_value());  // the fast path is open again
}

TEST(Bulkhead, EventsCountedByACountersObserver) {
  manual_clock clock;
  stockade::counters seen;
  bulkhead slots{{.max_concurrent = 1}, stockade::observer_ref{seen}};
  auto held = slots.try_acquire();
  context ctx{clock};
  EXPECT_THROW(stockade::pipeline{std::ref(slots)}(ctx, [](context&) { return 0; }),
               stockade::error);
  EXPECT_THROW(stockade::pipeline{std::ref(slots)}(ctx, [](context&) { return 0; }),
               stockade::error);
  EXPECT_EQ(seen.count(stockade::event_kind::bulkhead_rejected), 2U);
}

}  // namespace
