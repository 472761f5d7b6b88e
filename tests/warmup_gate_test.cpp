#include <stockade/warmup_gate.hpp>

#include <gtest/gtest.h>

#include "support.hpp"

#include <atomic>
#include <barrier>
#include <chrono>
#include <exception>
#include <functional>
#include <latch>
#include <stdexcept>
#include <stop_token>
#include <thread>
#include <type_traits>
#include <vector>

#include <stockade/circuit_breaker.hpp>
#include <stockade/classifier.hpp>
#include <stockade/events.hpp>
#include <stockade/manual_clock.hpp>
#include <stockade/pipeline.hpp>

namespace {

using namespace std::chrono_literals;
using stockade::context;
using stockade::errc;
using stockade::event_kind;
using stockade::verdict;
using stockade::warmup_gate;
using stockade::warmup_gate_options;
using stockade::testing::manual_clock;

/// Fixed cool-downs (no jitter), so tests can name exact times.
constexpr warmup_gate_options fixed_cool_down(stockade::backoff_schedule schedule) {
  return {.cool_down = schedule, .cool_down_jitter = stockade::jitter::none()};
}

struct broken_connection : std::runtime_error {
  broken_connection() : std::runtime_error("engine is not yet connected") {}
};

/// The stockade::error a call ended in (fails the test if it ended otherwise).
template <class F>
stockade::error error_of(F&& f) {
  try {
    std::forward<F>(f)();
  } catch (const stockade::error& e) {
    return e;
  } catch (...) {
    ADD_FAILURE() << "threw something other than stockade::error";
    return stockade::error(errc::injected_fault);
  }
  ADD_FAILURE() << "did not throw";
  return stockade::error(errc::injected_fault);
}

TEST(WarmupGate, ClockAndObserverComeInAnyOrder) {
  manual_clock clock;
  stockade::counters events;
  warmup_gate gate{[] {}, {}, stockade::observer_ref{events}, clock};
  static_assert(
      std::is_same_v<decltype(gate), warmup_gate<stockade::observer_ref<stockade::counters>>>);
  gate.start();  // without a context: on the gate's own clock, the manual one
  EXPECT_TRUE(gate.ready());
  EXPECT_EQ(events.count(stockade::event_kind::warmup_succeeded), 1U);
}

TEST(WarmupGate, ReadyGateLetsCallsThroughWithoutWarmingAgain) {
  manual_clock clock;
  int warmups = 0;
  warmup_gate gate{[&] { ++warmups; }, {}, clock};
  const auto policy = stockade::pipeline{std::ref(gate)};
  context first{clock};
  EXPECT_EQ(policy(first, [] { return 1; }), 1);
  context second{clock};
  EXPECT_EQ(policy(second, [] { return 2; }), 2);
  EXPECT_EQ(warmups, 1);
  EXPECT_TRUE(gate.ready());
  EXPECT_EQ(gate.generation(), 1U);
}

TEST(WarmupGate, FirstCallerWarmsUpWhileTheOthersWaitForIt) {
  manual_clock clock;
  std::atomic<int> warmups{0};
  std::latch entered{1};
  std::latch release{1};
  warmup_gate gate{[&] {
                     warmups.fetch_add(1);
                     entered.count_down();
                     release.wait();
                   },
                   {},
                   clock};
  const auto policy = stockade::pipeline{std::ref(gate)};
  std::atomic<int> calls{0};
  constexpr int callers = 8;
  std::vector<std::thread> threads;
  for (int i = 0; i < callers; ++i) {
    threads.emplace_back([&] {
      context ctx{clock};
      policy(ctx, [&] { calls.fetch_add(1); });
    });
  }
  entered.wait();
  ASSERT_TRUE(clock.await_waiting(callers - 1));
  EXPECT_EQ(calls.load(), 0);  // nobody passes a gate that is still warming up
  release.count_down();
  for (auto& t : threads) t.join();
  EXPECT_EQ(warmups.load(), 1);
  EXPECT_EQ(calls.load(), callers);
}

TEST(WarmupGate, StartWarmsUpBeforeTheFirstCall) {
  manual_clock clock;
  int warmups = 0;
  warmup_gate gate{[&] { ++warmups; }, {}, clock};
  gate.start();
  EXPECT_TRUE(gate.ready());
  context ctx{clock};
  stockade::pipeline{std::ref(gate)}(ctx, [] {});
  EXPECT_EQ(warmups, 1);
}

TEST(WarmupGate, WaiterGivesUpAtItsDeadlineWithWarmupWaitExceeded) {
  manual_clock clock;
  std::latch entered{1};
  std::latch release{1};
  warmup_gate gate{[&] {
                     entered.count_down();
                     release.wait();
                   },
                   {},
                   clock};
  std::thread leader([&] { gate.start(); });
  entered.wait();
  stockade::error late{errc::injected_fault};
  std::thread waiter([&] {
    context ctx{clock};
    ctx.set_timeout(2s);
    late = error_of([&] { gate.wait_ready(ctx); });
  });
  ASSERT_TRUE(clock.await_waiting(1));
  clock.advance(2s);
  waiter.join();
  EXPECT_EQ(late.code(), errc::warmup_wait_exceeded);
  EXPECT_FALSE(gate.ready());
  release.count_down();
  leader.join();
  EXPECT_TRUE(gate.ready());  // the waiter's give-up did not disturb the warm-up
}

TEST(WarmupGate, WaiterWhoseStopTokenFiresIsCancelled) {
  manual_clock clock;
  std::latch entered{1};
  std::latch release{1};
  warmup_gate gate{[&] {
                     entered.count_down();
                     release.wait();
                   },
                   {},
                   clock};
  std::thread leader([&] { gate.start(); });
  entered.wait();
  std::stop_source stop;
  stockade::error cancelled{errc::injected_fault};
  std::thread waiter([&] {
    context ctx{clock};
    ctx.set_stop_token(stop.get_token());
    cancelled = error_of([&] { gate.wait_ready(ctx); });
  });
  ASSERT_TRUE(clock.await_waiting(1));
  stop.request_stop();
  waiter.join();
  EXPECT_EQ(cancelled.code(), errc::cancelled);
  release.count_down();
  leader.join();
  EXPECT_TRUE(gate.ready());
}

TEST(WarmupGate, FailedWarmUpGivesEveryWaiterATransientWarmupFailed) {
  manual_clock clock;
  std::atomic<int> warmups{0};
  std::latch entered{1};
  std::latch release{1};
  warmup_gate gate{[&] {
                     warmups.fetch_add(1);
                     entered.count_down();
                     release.wait();
                     throw broken_connection();
                   },
                   fixed_cool_down(stockade::constant{5s}), clock};
  stockade::error for_leader{errc::injected_fault};
  stockade::error for_waiter{errc::injected_fault};
  std::thread leader([&] {
    context ctx{clock};
    for_leader = error_of([&] { gate.wait_ready(ctx); });
  });
  entered.wait();
  std::thread waiter([&] {
    context ctx{clock};
    for_waiter = error_of([&] { gate.wait_ready(ctx); });
  });
  ASSERT_TRUE(clock.await_waiting(1));
  release.count_down();
  leader.join();
  waiter.join();

  EXPECT_EQ(warmups.load(), 1);
  for (const auto* e : {&for_leader, &for_waiter}) {
    EXPECT_EQ(e->code(), errc::warmup_failed);
    EXPECT_EQ(e->retry_after(), 5s);
    EXPECT_EQ(stockade::default_rules::classify_stockade_error(*e).kind, verdict::transient);
  }
}

TEST(WarmupGate, FailedWarmUpKeepsTheActionsExceptionNested) {
  manual_clock clock;
  warmup_gate gate{[] { throw broken_connection(); }, {}, clock};
  context ctx{clock};
  try {
    gate.wait_ready(ctx);
    FAIL() << "did not throw";
  } catch (const stockade::error& e) {
    EXPECT_EQ(e.code(), errc::warmup_failed);
    EXPECT_THROW(std::rethrow_if_nested(e), broken_connection);
  }
}

TEST(WarmupGate, CallsDuringTheCoolDownAreRefusedWithTheTimeLeft) {
  manual_clock clock;
  int warmups = 0;
  bool fail = true;
  warmup_gate gate{[&] {
                     ++warmups;
                     if (fail) throw broken_connection();
                   },
                   fixed_cool_down(stockade::constant{5s}), clock};
  context first{clock};
  EXPECT_EQ(error_of([&] { gate.wait_ready(first); }).code(), errc::warmup_failed);

  clock.advance(2s);
  context during{clock};
  const auto refused = error_of([&] { gate.wait_ready(during); });
  EXPECT_EQ(refused.code(), errc::warmup_cooling_down);
  EXPECT_TRUE(refused.is_rejection());  // the dependency was not contacted
  EXPECT_EQ(refused.retry_after(), 3s);
  EXPECT_EQ(warmups, 1);  // refused without warming

  clock.advance(3s);
  fail = false;
  context after{clock};
  EXPECT_EQ(gate.wait_ready(after), 1U);
  EXPECT_EQ(warmups, 2);
}

TEST(WarmupGate, CoolDownEndsByARecentReadingSoNeverEarly) {
  stockade_test::lagging_clock clock{3ms};
  int warmups = 0;
  warmup_gate gate{[&] {
                     if (++warmups == 1) throw broken_connection();
                   },
                   fixed_cool_down(stockade::constant{5s}), clock};
  context first{clock};
  EXPECT_EQ(error_of([&] { gate.wait_ready(first); }).code(), errc::warmup_failed);
  clock.inner().advance(5s);  // over by the exact time, not yet by the recent reading
  context early{clock};
  const auto refused = error_of([&] { gate.wait_ready(early); });
  EXPECT_EQ(refused.code(), errc::warmup_cooling_down);
  EXPECT_EQ(refused.retry_after(), 3ms);
  clock.inner().advance(3ms);
  context after{clock};
  EXPECT_EQ(gate.wait_ready(after), 1U);
  EXPECT_EQ(warmups, 2);
}

TEST(WarmupGate, CoolDownGrowsWithTheBackoff) {
  manual_clock clock;
  warmup_gate gate{[] { throw broken_connection(); },
                   fixed_cool_down(stockade::exponential{1s, 2.0, 8s}), clock};
  std::vector<stockade::duration> cool_downs;
  for (int i = 0; i < 5; ++i) {
    context ctx{clock};
    const auto e = error_of([&] { gate.wait_ready(ctx); });
    cool_downs.push_back(e.retry_after());
    clock.advance(e.retry_after());
  }
  EXPECT_EQ(cool_downs, (std::vector<stockade::duration>{1s, 2s, 4s, 8s, 8s}));
  EXPECT_EQ(gate.consecutive_failures(), 5);
}

TEST(WarmupGate, SuccessStartsTheBackoffOver) {
  manual_clock clock;
  bool fail = true;
  warmup_gate gate{[&] {
                     if (fail) throw broken_connection();
                   },
                   fixed_cool_down(stockade::exponential{1s, 2.0, 8s}), clock};
  for (int i = 0; i < 3; ++i) {
    context ctx{clock};
    clock.advance(error_of([&] { gate.wait_ready(ctx); }).retry_after());
  }
  fail = false;
  context ok{clock};
  gate.wait_ready(ok);
  EXPECT_EQ(gate.consecutive_failures(), 0);
  gate.reset();
  fail = true;
  context again{clock};
  EXPECT_EQ(error_of([&] { gate.wait_ready(again); }).retry_after(), 1s);
}

TEST(WarmupGate, CoolDownJitterStaysWithinItsSpread) {
  manual_clock clock;
  warmup_gate gate{[] { throw broken_connection(); },
                   {.cool_down = stockade::constant{10s},
                    .cool_down_jitter = stockade::jitter::proportional(0.2)},
                   clock};
  for (int i = 0; i < 50; ++i) {
    context ctx{clock};
    const auto cool_down = error_of([&] { gate.wait_ready(ctx); }).retry_after();
    EXPECT_GE(cool_down, 8s);
    EXPECT_LE(cool_down, 12s);
    clock.advance(cool_down);
  }
}

TEST(WarmupGate, ResetWithTheCurrentGenerationRearmsTheGate) {
  manual_clock clock;
  int warmups = 0;
  warmup_gate gate{[&] { ++warmups; }, {}, clock};
  gate.start();
  EXPECT_TRUE(gate.reset(1));
  EXPECT_FALSE(gate.ready());
  EXPECT_EQ(gate.generation(), 2U);
  context ctx{clock};
  EXPECT_EQ(gate.wait_ready(ctx), 2U);
  EXPECT_EQ(warmups, 2);
}

TEST(WarmupGate, ResetWithAStaleGenerationIsIgnored) {
  manual_clock clock;
  int warmups = 0;
  warmup_gate gate{[&] { ++warmups; }, {}, clock};
  gate.start();
  ASSERT_TRUE(gate.reset(1));
  gate.start();
  EXPECT_FALSE(gate.reset(1));  // a late report about generation 1
  EXPECT_TRUE(gate.ready());
  EXPECT_EQ(gate.generation(), 2U);
  EXPECT_EQ(warmups, 2);
}

TEST(WarmupGate, TenConcurrentFatalFailuresOfOneGenerationCauseOneRewarm) {
  manual_clock clock;
  std::atomic<int> warmups{0};
  stockade::counters events;
  warmup_gate gate{[&] { warmups.fetch_add(1); }, {}, clock, stockade::observer_ref{events}};
  gate.start();
  const auto policy = stockade::pipeline{std::ref(gate)}.classify_with(
      stockade::classifier{stockade::on<broken_connection, verdict::fatal>{}});
  constexpr int callers = 10;
  std::barrier all_inside{callers};  // every call runs under generation 1 before any fails
  std::vector<std::thread> threads;
  for (int i = 0; i < callers; ++i) {
    threads.emplace_back([&] {
      context ctx{clock};
      EXPECT_THROW(policy(ctx,
                          [&] {
                            all_inside.arrive_and_wait();
                            throw broken_connection();
                          }),
                   broken_connection);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(events.count(event_kind::gate_reset), 1U);
  EXPECT_EQ(gate.generation(), 2U);
  context next{clock};
  policy(next, [] {});
  EXPECT_EQ(warmups.load(), 2);
}

TEST(WarmupGate, FatalResultRearmsTheGate) {
  manual_clock clock;
  warmup_gate gate{[] {}, {}, clock};
  const auto policy =
      stockade::pipeline{std::ref(gate)}.classify_with(stockade::classifier{stockade::on_result(
          [](int status) { return status == 57 ? verdict::fatal : verdict::success; })});
  context ctx{clock};
  EXPECT_EQ(policy(ctx, [] { return 57; }), 57);  // the callee's result is returned unchanged
  EXPECT_FALSE(gate.ready());
  EXPECT_EQ(gate.generation(), 2U);
}

TEST(WarmupGate, TransientAndPermanentVerdictsLeaveTheGateReady) {
  manual_clock clock;
  warmup_gate gate{[] {}, {}, clock};
  const auto policy = stockade::pipeline{std::ref(gate)};
  context transient{clock};
  EXPECT_THROW(policy(transient, [] { throw std::runtime_error("timeout"); }), std::runtime_error);
  context permanent{clock};
  EXPECT_THROW(policy(permanent, [] { throw std::invalid_argument("bad sql"); }),
               std::invalid_argument);
  EXPECT_TRUE(gate.ready());
  EXPECT_EQ(gate.generation(), 1U);
}

TEST(WarmupGate, ResetOnFatalCanBeTurnedOff) {
  manual_clock clock;
  warmup_gate gate{[] {}, {.reset_on_fatal = false}, clock};
  const auto policy = stockade::pipeline{std::ref(gate)}.classify_with(
      stockade::classifier{stockade::on<broken_connection, verdict::fatal>{}});
  context ctx{clock};
  EXPECT_THROW(policy(ctx, [] { throw broken_connection(); }), broken_connection);
  EXPECT_TRUE(gate.ready());
}

TEST(WarmupGate, ResetDuringAWarmUpKeepsTheGateClosedUntilTheNewGenerationWarms) {
  manual_clock clock;
  std::atomic<int> warmups{0};
  std::latch entered{1};
  std::latch release{1};
  warmup_gate gate{[&](context&, std::uint64_t generation) {
                     warmups.fetch_add(1);
                     if (generation == 1) {
                       entered.count_down();
                       release.wait();
                     }
                   },
                   {},
                   clock};
  std::uint64_t opened = 0;
  std::thread caller([&] {
    context ctx{clock};
    opened = gate.wait_ready(ctx);
  });
  entered.wait();
  EXPECT_TRUE(gate.reset(1));  // e.g. the connection being warmed was reported broken
  release.count_down();
  caller.join();
  EXPECT_EQ(opened, 2U);  // the warm-up of generation 1 did not open generation 2
  EXPECT_EQ(warmups.load(), 2);
}

TEST(WarmupGate, TheLeadersDeadlineDoesNotCutTheWarmUpShort) {
  manual_clock clock{manual_clock::sleeps::wait_for_advance};
  std::atomic<int> warmups{0};
  stockade::time_point warm_deadline{};
  bool warm_could_stop = true;
  warmup_gate gate{[&](context& c) {
                     warmups.fetch_add(1);
                     warm_deadline = c.deadline();
                     warm_could_stop = c.caller_stop_token().stop_possible();
                     if (!c.sleep_for(10s)) throw std::runtime_error("connect cut short");
                   },
                   {.warmup_timeout = 20s},
                   clock};
  const auto start = clock.now();
  std::stop_source leader_stop;
  bool leader_passed = false;
  bool waiter_passed = false;
  std::thread leader([&] {
    context ctx{clock};
    ctx.set_timeout(1s).set_stop_token(leader_stop.get_token());
    gate.wait_ready(ctx);
    leader_passed = true;
  });
  ASSERT_TRUE(clock.await_waiting(1));  // the leader's warm-up sleeps
  std::thread waiter([&] {
    context ctx{clock};
    gate.wait_ready(ctx);
    waiter_passed = true;
  });
  ASSERT_TRUE(clock.await_waiting(2));
  clock.advance(1s);  // the leader's deadline: the warm-up goes on
  leader_stop.request_stop();
  clock.advance(9s);
  leader.join();
  waiter.join();
  EXPECT_TRUE(leader_passed);
  EXPECT_TRUE(waiter_passed);
  EXPECT_EQ(warmups.load(), 1);
  EXPECT_EQ(warm_deadline, start + 20s);  // its own limit, not the leader's 1 s
  EXPECT_FALSE(warm_could_stop);          // nor the leader's stop token
}

TEST(WarmupGate, AWarmUpFailingAfterEveryCallersDeadlineIsRecordedAndCoolsDown) {
  // Five callers with 1 s deadlines and a 3 s connect that fails: one warm-up, then the
  // cool-down refuses the rest (before, each caller ran a warm-up of its own, back to back).
  manual_clock clock{manual_clock::sleeps::wait_for_advance};
  std::atomic<int> warmups{0};
  stockade::counters events;
  warmup_gate gate{[&](context& c) {
                     warmups.fetch_add(1);
                     c.sleep_for(3s);
                     throw broken_connection();
                   },
                   fixed_cool_down(stockade::constant{5s}), clock, stockade::observer_ref{events}};
  std::vector<std::thread> callers;
  std::vector<errc> ended(5, errc::injected_fault);
  for (std::size_t i = 0; i < ended.size(); ++i) {
    callers.emplace_back([&, i] {
      context ctx{clock};
      ctx.set_timeout(1s);
      ended[i] = error_of([&] { gate.wait_ready(ctx); }).code();
    });
  }
  ASSERT_TRUE(clock.await_waiting(5));  // one leader sleeping in its connect, four waiting
  clock.advance(1s);                    // every caller's deadline
  clock.advance(2s);                    // the connect fails
  for (auto& caller : callers) caller.join();
  int failed = 0;
  for (const errc code : ended) {
    EXPECT_TRUE(code == errc::warmup_failed || code == errc::warmup_wait_exceeded)
        << stockade::to_string(code);
    failed += code == errc::warmup_failed ? 1 : 0;
  }
  EXPECT_GE(failed, 1);  // at least the leader, which ran it
  EXPECT_EQ(warmups.load(), 1);
  EXPECT_EQ(gate.consecutive_failures(), 1);
  EXPECT_EQ(events.count(event_kind::warmup_failed), 1U);
  context later{clock};
  later.set_timeout(1s);
  EXPECT_EQ(error_of([&] { gate.wait_ready(later); }).code(), errc::warmup_cooling_down);
  EXPECT_EQ(warmups.load(), 1);
}

TEST(WarmupGate, CoolDownRefusalsAreRejectionsThatAnOuterBreakerDoesNotCount) {
  manual_clock clock;
  warmup_gate gate{[] { throw broken_connection(); }, fixed_cool_down(stockade::constant{5s}),
                   clock};
  stockade::circuit_breaker<stockade::consecutive_failures> breaker{{.trip = {.threshold = 5}},
                                                                    clock};
  const auto policy = stockade::pipeline{std::ref(breaker), std::ref(gate)};
  std::vector<errc> ended;
  for (int i = 0; i < 5; ++i) {
    context ctx{clock};
    ended.push_back(error_of([&] { policy(ctx, [] { return 1; }); }).code());
  }
  EXPECT_EQ(ended, (std::vector<errc>{errc::warmup_failed, errc::warmup_cooling_down,
                                      errc::warmup_cooling_down, errc::warmup_cooling_down,
                                      errc::warmup_cooling_down}));
  // The dependency was contacted once: one failure, not five.
  EXPECT_EQ(breaker.state(), stockade::circuit_state::closed);
  EXPECT_EQ(breaker.metrics().window.failures, 1U);
}

TEST(WarmupGate, ActionReturningFalseFailsTheWarmUp) {
  manual_clock clock;
  warmup_gate gate{[] { return false; }, {}, clock};
  context ctx{clock};
  EXPECT_EQ(error_of([&] { gate.wait_ready(ctx); }).code(), errc::warmup_failed);
}

TEST(WarmupGate, ReportsEachStepAsAnEvent) {
  manual_clock clock;
  stockade::counters events;
  bool fail = true;
  warmup_gate gate{[&] {
                     if (fail) throw broken_connection();
                   },
                   fixed_cool_down(stockade::constant{1s}), clock, stockade::observer_ref{events}};
  context first{clock};
  EXPECT_THROW(gate.wait_ready(first), stockade::error);
  clock.advance(1s);
  fail = false;
  context second{clock};
  gate.wait_ready(second);
  gate.reset();
  EXPECT_EQ(events.count(event_kind::warmup_started), 2U);
  EXPECT_EQ(events.count(event_kind::warmup_failed), 1U);
  EXPECT_EQ(events.count(event_kind::warmup_succeeded), 1U);
  EXPECT_EQ(events.count(event_kind::gate_reset), 1U);
}

template <auto make>
concept valid_constexpr_options = requires {
  typename std::integral_constant<bool, (make().validate(), true)>;
};

TEST(WarmupGateOptions, DefaultsAreValidAtCompileTime) {
  static_assert(valid_constexpr_options<[] { return warmup_gate_options{}; }>);
  constexpr warmup_gate_options defaults{};
  EXPECT_EQ(defaults.cool_down.as_exponential().initial, 1s);
  EXPECT_EQ(defaults.cool_down.max_delay(), 120s);
}

TEST(WarmupGateOptions, BadCoolDownFailsToCompileWhenConstexpr) {
  static_assert(!valid_constexpr_options<[] {
    return warmup_gate_options{.cool_down = stockade::exponential{.multiplier = 0.5}};
  }>);
  static_assert(!valid_constexpr_options<[] {
    return warmup_gate_options{.cool_down_jitter = stockade::jitter::proportional(1.5)};
  }>);
}

TEST(WarmupGateOptions, BadCoolDownIsRefusedNamingTheField) {
  manual_clock clock;
  try {
    warmup_gate gate{[] {}, {.cool_down = stockade::exponential{.multiplier = 0.5}}, clock};
    FAIL() << "accepted a multiplier below 1";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("multiplier"), std::string::npos) << e.what();
  }
  try {
    warmup_gate gate{[] {}, {.cool_down = stockade::constant{-1s}}, clock};
    FAIL() << "accepted a negative interval";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("interval"), std::string::npos) << e.what();
  }
  try {
    warmup_gate gate{[] {}, {.cool_down_jitter = stockade::jitter::proportional(2.0)}, clock};
    FAIL() << "accepted a spread above 1";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("spread"), std::string::npos) << e.what();
  }
}

}  // namespace
