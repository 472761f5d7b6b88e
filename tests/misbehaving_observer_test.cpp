// Observers that throw, for every policy that reports events. The rule (events.hpp,
// docs/events.md): an observer's exception is swallowed where the policy reports the event; the
// call's outcome, the policy's state and the later events are as if it had returned, and nothing
// terminates the process (reset(), timers and shutdown report from code that must not throw).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <latch>
#include <memory>
#include <stdexcept>
#include <thread>

#include <stockade/manual_clock.hpp>
#include <stockade/stockade.hpp>

#include "support.hpp"

namespace {

using namespace std::chrono_literals;
using stockade::context;
using stockade::errc;
using stockade::event_kind;
using stockade::verdict;
using stockade::testing::manual_clock;
using stockade_test::error_of;

/// Throws from every event it is given, after counting it by kind.
struct throwing_observer {
  std::shared_ptr<stockade::counters> seen = std::make_shared<stockade::counters>();
  template <stockade::event E>
  void on(const E& e) {
    seen->on(e);
    throw std::runtime_error("the observer failed");
  }
  std::uint64_t count(event_kind kind) const { return seen->count(kind); }
};

struct broken_connection : std::runtime_error {
  broken_connection() : std::runtime_error("server closed the connection") {}
};
/// broken_connection is fatal (reset the resource); everything else as by default.
const auto fatal_rules = stockade::classifier{stockade::on<broken_connection, verdict::fatal>{}};

TEST(ThrowingObserver, WarmupGateResetsAndWarmsUpAsIfItHadReturned) {
  manual_clock clock;
  throwing_observer observer;
  int warmups = 0;
  stockade::warmup_gate gate{[&] { ++warmups; }, {}, clock, observer};
  const auto policy = stockade::pipeline{std::ref(gate)}.classify_with(fatal_rules);
  context ctx{clock};

  EXPECT_EQ(policy(ctx, [] { return 7; }), 7);  // warmup_started and warmup_succeeded threw
  EXPECT_TRUE(gate.ready());
  // The fatal verdict re-arms the gate (gate_reset throws inside a noexcept reset): the
  // callee's own exception reaches the caller, and the process goes on.
  EXPECT_THROW(policy(ctx, []() -> int { throw broken_connection(); }), broken_connection);
  EXPECT_EQ(gate.generation(), 2U);
  gate.reset();  // an operator's reset, noexcept, with the observer throwing
  EXPECT_EQ(gate.generation(), 3U);
  EXPECT_EQ(policy(ctx, [] { return 8; }), 8);
  EXPECT_EQ(warmups, 2);
  EXPECT_EQ(observer.count(event_kind::gate_reset), 2U);
  EXPECT_EQ(observer.count(event_kind::warmup_succeeded), 2U);
}

TEST(ThrowingObserver, FailedWarmupIsRecordedAndCoolsDown) {
  manual_clock clock;
  throwing_observer observer;
  stockade::warmup_gate gate{[]() -> bool { return false; }, {}, clock, observer};
  context ctx{clock};
  EXPECT_EQ(error_of([&] { gate.wait_ready(ctx); }), errc::warmup_failed);
  EXPECT_EQ(gate.consecutive_failures(), 1);
  EXPECT_EQ(error_of([&] { gate.wait_ready(ctx); }), errc::warmup_cooling_down);
  EXPECT_EQ(observer.count(event_kind::warmup_failed), 1U);
}

struct client {
  int id;
};

TEST(ThrowingObserver, ResourceRetiresAgesOutAndShutsDownWithoutTerminating) {
  manual_clock clock;
  throwing_observer observer;
  int made = 0;
  auto db = std::make_unique<stockade::resource<client, throwing_observer>>(
      stockade::resource_hooks<client>{.create = [&] { return client{++made}; }},
      stockade::resource_options{.max_age = 1min}, clock, observer);
  context ctx{clock};
  {
    const auto lease = db->acquire(ctx);
    EXPECT_EQ(lease->id, 1);
    EXPECT_TRUE(db->retire(lease));  // a fatal verdict's retirement: gate_reset throws
  }
  EXPECT_EQ(db->acquire(ctx)->id, 2);
  clock.advance(2min);  // the age-out timer retires instance 2 on the clock's thread
  EXPECT_EQ(db->acquire(ctx)->id, 3);
  db->shutdown();  // reports gate_reset and resource_retired, both throwing
  EXPECT_EQ(error_of([&] { (void)db->acquire(ctx); }), errc::resource_closed);
  db.reset();
  EXPECT_EQ(observer.count(event_kind::resource_created), 3U);
  EXPECT_EQ(observer.count(event_kind::resource_retired), 3U);
}

TEST(ThrowingObserver, BulkheadRefusalStaysARejectionForAnOuterBreaker) {
  manual_clock clock;
  throwing_observer observer;
  stockade::bulkhead<throwing_observer> slots{{.max_concurrent = 1}, observer};
  stockade::circuit_breaker<stockade::consecutive_failures> breaker{{.trip = {.threshold = 1}},
                                                                    clock};
  const auto policy = stockade::pipeline{std::ref(breaker), std::ref(slots)};
  const auto held = slots.try_acquire();
  ASSERT_TRUE(held);
  context ctx{clock};
  const auto refused = policy.try_call(ctx, [] { return 1; });
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code(), errc::bulkhead_full);
  EXPECT_TRUE(refused.outcome().rejected);
  EXPECT_EQ(breaker.state(), stockade::circuit_state::closed);  // threshold 1, not counted
  EXPECT_EQ(observer.count(event_kind::bulkhead_rejected), 1U);
}

TEST(ThrowingObserver, RetryKeepsTheValueOfTheAttemptAfterTheEvent) {
  manual_clock clock;
  throwing_observer observer;
  const auto policy = stockade::pipeline{
      stockade::retry{{.max_attempts = 3, .jitter = stockade::jitter::none()}, observer}};
  context ctx{clock};
  int calls = 0;
  EXPECT_EQ(policy(ctx,
                   [&] {
                     if (++calls == 1) throw std::runtime_error("transient");
                     return 42;
                   }),
            42);
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(observer.count(event_kind::retry_scheduled), 1U);
  // Giving up reports too: the callee's own exception still reaches the caller.
  EXPECT_THROW(policy(ctx, []() -> int { throw std::invalid_argument("permanent"); }),
               std::invalid_argument);
  EXPECT_EQ(observer.count(event_kind::retry_gave_up), 1U);
}

TEST(ThrowingObserver, TimeoutKeepsALateValueAndConvertsALateFailure) {
  manual_clock clock;
  throwing_observer observer;
  const auto policy = stockade::pipeline{stockade::timeout{1s, observer}};
  context ctx{clock};
  EXPECT_EQ(policy(ctx,
                   [&] {
                     clock.advance(2s);
                     return 5;
                   }),
            5);
  EXPECT_EQ(observer.count(event_kind::deadline_overrun), 1U);
  EXPECT_EQ(error_of([&] {
              policy(ctx, [&]() -> int {
                clock.advance(2s);
                throw std::runtime_error("late");
              });
            }),
            errc::timeout);
  EXPECT_EQ(observer.count(event_kind::timeout_expired), 1U);
}

TEST(ThrowingObserver, UnhealthyProbeStillRunsItsResetAction) {
  manual_clock clock;
  throwing_observer observer;
  stockade::health_check<throwing_observer> health{[] { return false; }, {}, clock, observer};
  int resets = 0;
  health.on_unhealthy([&] { ++resets; });
  const auto policy = stockade::pipeline{std::ref(health)};
  context ctx{clock};
  EXPECT_EQ(error_of([&] { policy(ctx, [] { return 1; }); }), errc::unhealthy);
  EXPECT_EQ(resets, 1);
  EXPECT_EQ(observer.count(event_kind::health_probed), 1U);
  EXPECT_EQ(observer.count(event_kind::health_rejected), 1U);
}

TEST(ThrowingObserver, DetachedTimeoutStillEndsInTimeout) {
  manual_clock clock;
  throwing_observer observer;
  stockade::detached_timeout<throwing_observer> detached{1s, {}, observer};
  auto let_go = std::make_shared<std::latch>(1);
  context ctx{clock};
  std::jthread advancer([&] {
    if (clock.await_waiting(1)) clock.advance(1s);
  });
  EXPECT_EQ(error_of([&] {
              detached.run(ctx, [let_go] {
                let_go->wait();
                return 1;
              });
            }),
            errc::timeout);
  let_go->count_down();
  EXPECT_TRUE(detached.await_abandoned_at_most(0, 30s));
  EXPECT_EQ(observer.count(event_kind::detached_abandoned), 1U);
}

TEST(ThrowingObserver, BreakerOpensAndRejectsAsIfItHadReturned) {
  manual_clock clock;
  throwing_observer observer;
  stockade::circuit_breaker<stockade::consecutive_failures, throwing_observer> breaker{
      {.trip = {.threshold = 1}}, clock, observer};
  const auto policy = stockade::pipeline{std::ref(breaker)};
  context ctx{clock};
  EXPECT_THROW(policy(ctx, []() -> int { throw std::runtime_error("down"); }), std::runtime_error);
  EXPECT_EQ(breaker.state(), stockade::circuit_state::open);
  EXPECT_EQ(error_of([&] { policy(ctx, [] { return 1; }); }), errc::circuit_open);
  EXPECT_EQ(observer.count(event_kind::breaker_state_changed), 1U);
  EXPECT_EQ(observer.count(event_kind::breaker_rejected), 1U);
}

TEST(ThrowingObserver, FaultInjectorStillInjectsItsFault) {
  manual_clock clock;
  throwing_observer observer;
  stockade::fault_injector chaos{{.seed = 1}, observer, stockade::inject_exception{{}}};
  const auto policy = stockade::pipeline{std::ref(chaos)};
  context ctx{clock};
  EXPECT_EQ(error_of([&] { policy(ctx, [] { return 1; }); }), errc::injected_fault);
  EXPECT_EQ(observer.count(event_kind::fault_injected), 1U);
}

TEST(ThrowingObserver, FanOutGivesEveryTargetTheEventWhenOneThrows) {
  throwing_observer first;
  stockade::counters second;
  stockade::fan_out both{first, stockade::observer_ref{second}};
  static_assert(noexcept(both.on(stockade::gate_reset{1, 2})));
  both.on(stockade::gate_reset{1, 2});
  EXPECT_EQ(first.count(event_kind::gate_reset), 1U);
  EXPECT_EQ(second.count(event_kind::gate_reset), 1U);
}

}  // namespace
