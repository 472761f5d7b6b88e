#include <stockade/health_check.hpp>

#include <gtest/gtest.h>

#include "support.hpp"

#include <atomic>
#include <chrono>
#include <functional>
#include <latch>
#include <memory>
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

using namespace std::chrono_literals;
using stockade::context;
using stockade::errc;
using stockade::event_kind;
using stockade::health_check;
using stockade::health_check_options;
using stockade::testing::manual_clock;

constexpr health_check_options ages{.max_age = 10s, .unhealthy_max_age = 2s, .probe_timeout = 1s};

TEST(HealthCheck, FreshResultIsReturnedWithoutProbing) {
  manual_clock clock;
  int probes = 0;
  health_check health{[&] { return ++probes > 0; }, ages, clock};
  context ctx{clock};
  EXPECT_TRUE(health.check(ctx));
  clock.advance(5s);
  EXPECT_TRUE(health.check(ctx));
  EXPECT_TRUE(health.check(ctx));
  EXPECT_EQ(probes, 1);
}

TEST(HealthCheck, HealthyResultAgesOutAfterMaxAge) {
  manual_clock clock;
  int probes = 0;
  health_check health{[&] { return ++probes > 0; }, ages, clock};
  context ctx{clock};
  health.check(ctx);
  clock.advance(10s - 1ns);
  EXPECT_TRUE(health.fresh_and_healthy());
  health.check(ctx);
  EXPECT_EQ(probes, 1);
  clock.advance(1ns);
  EXPECT_FALSE(health.fresh_and_healthy());
  health.check(ctx);
  EXPECT_EQ(probes, 2);
}

TEST(HealthCheck, UnhealthyResultIsKeptForItsShorterMaxAge) {
  manual_clock clock;
  int probes = 0;
  health_check health{[&] {
                        ++probes;
                        return false;
                      },
                      ages, clock};
  context ctx{clock};
  EXPECT_FALSE(health.check(ctx));
  clock.advance(2s - 1ns);
  EXPECT_FALSE(health.check(ctx));
  EXPECT_EQ(probes, 1);
  clock.advance(1ns);
  EXPECT_FALSE(health.check(ctx));
  EXPECT_EQ(probes, 2);
}

TEST(HealthCheck, ConcurrentCallersShareOneProbe) {
  manual_clock clock;
  std::atomic<int> probes{0};
  std::latch entered{1};
  std::latch release{1};
  health_check health{[&] {
                        probes.fetch_add(1);
                        entered.count_down();
                        release.wait();
                        return false;
                      },
                      ages, clock};
  constexpr int callers = 8;
  std::vector<int> answers(callers, -1);
  std::vector<std::thread> threads;
  for (int i = 0; i < callers; ++i) {
    threads.emplace_back([&, i] {
      context ctx{clock};
      answers[static_cast<std::size_t>(i)] = health.check(ctx) ? 1 : 0;
    });
  }
  entered.wait();
  ASSERT_TRUE(clock.await_waiting(callers - 1));
  release.count_down();
  for (auto& t : threads) t.join();
  EXPECT_EQ(probes.load(), 1);
  EXPECT_EQ(answers, std::vector<int>(callers, 0));
}

TEST(HealthCheck, ProbeThatThrowsReportsUnhealthy) {
  manual_clock clock;
  health_check health{[]() -> bool { throw std::runtime_error("too many clients"); }, ages, clock};
  context ctx{clock};
  EXPECT_FALSE(health.check(ctx));
}

TEST(HealthCheck, ProbeWithoutResultIsHealthyUnlessItThrows) {
  manual_clock clock;
  health_check healthy{[](context&) {}, ages, clock};
  health_check broken{[] { throw std::runtime_error("down"); }, ages, clock};
  context ctx{clock};
  EXPECT_TRUE(healthy.check(ctx));
  EXPECT_FALSE(broken.check(ctx));
}

TEST(HealthCheck, ProbeSlowerThanItsTimeoutReportsUnhealthy) {
  manual_clock clock;
  health_check health{[&] {
                        clock.advance(1500ms);  // answered, but after its 1 s timeout
                        return true;
                      },
                      ages, clock};
  context ctx{clock};
  EXPECT_FALSE(health.check(ctx));
}

TEST(HealthCheck, ProbeRunsUnderItsOwnTimeout) {
  manual_clock clock;
  std::optional<stockade::duration> budget;
  health_check health{[&](context& probe_ctx) {
                        budget = probe_ctx.remaining();
                        return true;
                      },
                      ages, clock};
  context ctx{clock};
  health.check(ctx);
  EXPECT_EQ(budget, 1s);
}

TEST(HealthCheck, ProbeIsNotCutShortByTheCallersDeadlineOrStopToken) {
  manual_clock clock;
  std::optional<stockade::duration> budget;
  bool probe_could_stop = true;
  health_check health{[&](context& probe_ctx) {
                        budget = probe_ctx.remaining();
                        probe_could_stop = probe_ctx.caller_stop_token().stop_possible();
                        return true;
                      },
                      ages, clock};
  std::stop_source stop;
  context ctx{clock};
  ctx.set_timeout(300ms).set_stop_token(stop.get_token());
  health.check(ctx);
  EXPECT_EQ(budget, 1s);  // probe_timeout: shared work, not the first caller's 300 ms
  EXPECT_FALSE(probe_could_stop);
}

TEST(HealthCheck, AProbeSlowerThanItsCallersDeadlinesIsPublished) {
  // Ten callers with 200 ms deadlines and a probe that answers "unhealthy" after 500 ms: one
  // probe, and the other callers get its answer at once (before, each ran a probe of its own).
  manual_clock clock;
  int probes = 0;
  health_check health{[&] {
                        ++probes;
                        clock.advance(500ms);
                        return false;
                      },
                      ages, clock};
  const auto policy = stockade::pipeline{std::ref(health)};
  for (int i = 0; i < 10; ++i) {
    context ctx{clock};
    ctx.set_timeout(200ms);
    try {
      policy(ctx, [] { return 1; });
      ADD_FAILURE() << "call " << i << " went through";
    } catch (const stockade::error& e) {
      EXPECT_EQ(e.code(), errc::unhealthy);
    }
  }
  EXPECT_EQ(probes, 1);
  EXPECT_EQ(health.status().probes, 1U);
}

TEST(HealthCheck, AProbeOutlastingItsLeadersDeadlineAnswersTheWaitersToo) {
  manual_clock clock{manual_clock::sleeps::wait_for_advance};
  std::atomic<int> probes{0};
  health_check health{[&](context& c) {
                        probes.fetch_add(1);
                        return c.sleep_for(3s);  // answers "healthy" after 3 s
                      },
                      {.probe_timeout = 30s},
                      clock};
  bool leader_answer = false;
  bool waiter_answer = false;
  std::thread leader([&] {
    context ctx{clock};
    ctx.set_timeout(1s);
    leader_answer = health.check(ctx);
  });
  ASSERT_TRUE(clock.await_waiting(1));
  std::thread waiter([&] {
    context ctx{clock};
    waiter_answer = health.check(ctx);
  });
  ASSERT_TRUE(clock.await_waiting(2));
  clock.advance(1s);  // the leader's deadline: the probe goes on
  clock.advance(2s);
  leader.join();
  waiter.join();
  EXPECT_TRUE(leader_answer);
  EXPECT_TRUE(waiter_answer);
  EXPECT_EQ(probes.load(), 1);
  EXPECT_EQ(health.status().probes, 1U);
}

TEST(HealthCheck, WaiterGivesUpAtItsDeadlineWithTimeout) {
  manual_clock clock;
  std::latch entered{1};
  std::latch release{1};
  health_check health{[&] {
                        entered.count_down();
                        release.wait();
                        return true;
                      },
                      ages, clock};
  std::thread leader([&] { health.check(); });
  entered.wait();
  stockade::errc waiter_error{};
  std::thread waiter([&] {
    context ctx{clock};
    ctx.set_timeout(500ms);
    try {
      health.check(ctx);
    } catch (const stockade::error& e) {
      waiter_error = e.code();
    }
  });
  ASSERT_TRUE(clock.await_waiting(1));
  clock.advance(500ms);
  waiter.join();
  release.count_down();
  leader.join();
  EXPECT_EQ(waiter_error, errc::timeout);
  EXPECT_TRUE(health.fresh_and_healthy());
}

TEST(HealthCheck, InvalidateMakesTheNextCheckProbe) {
  manual_clock clock;
  int probes = 0;
  health_check health{[&] { return ++probes > 0; }, ages, clock};
  health.check();
  health.invalidate();
  EXPECT_FALSE(health.fresh_and_healthy());
  health.check();
  EXPECT_EQ(probes, 2);
}

TEST(HealthCheck, StatusReportsTheLastProbe) {
  manual_clock clock;
  health_check health{[] { return true; }, ages, clock};
  EXPECT_EQ(health.status().probes, 0U);
  EXPECT_FALSE(health.status().fresh);
  health.check();
  const auto status = health.status();
  EXPECT_TRUE(status.healthy);
  EXPECT_TRUE(status.fresh);
  EXPECT_EQ(status.checked_at, clock.now());
  EXPECT_EQ(status.probes, 1U);
}

TEST(HealthCheck, DestroyedWithAPendingAgeTimerLeavesNothingBehind) {
  manual_clock clock;
  {
    health_check health{[] { return true; }, ages, clock};
    health.check();
  }
  clock.advance(1h);  // the cancelled timer must not touch the destroyed health check
  SUCCEED();
}

TEST(HealthCheckPolicy, LetsCallsThroughWhileHealthy) {
  manual_clock clock;
  int probes = 0;
  health_check health{[&] { return ++probes > 0; }, ages, clock};
  const auto policy = stockade::pipeline{std::ref(health)};
  for (int i = 0; i < 3; ++i) {
    context ctx{clock};
    EXPECT_EQ(policy(ctx, [] { return 5; }), 5);
  }
  EXPECT_EQ(probes, 1);
}

TEST(HealthCheckPolicy, RefusesCallsWhileUnhealthyWithATransientError) {
  manual_clock clock;
  health_check health{[] { return false; }, ages, clock};
  const auto policy = stockade::pipeline{std::ref(health)};
  context first{clock};
  bool called = false;
  try {
    policy(first, [&] { called = true; });
    FAIL() << "an unhealthy dependency was called";
  } catch (const stockade::error& e) {
    EXPECT_EQ(e.code(), errc::unhealthy);
    EXPECT_EQ(e.retry_after(), 2s);  // until the next probe is due
    EXPECT_EQ(stockade::default_rules::classify_stockade_error(e).kind,
              stockade::verdict::transient);
  }
  EXPECT_FALSE(called);
  clock.advance(500ms);
  context later{clock};
  try {
    policy(later, [] {});
  } catch (const stockade::error& e) {
    EXPECT_EQ(e.retry_after(), 1500ms);
  }
}

TEST(HealthCheckPolicy, HintOfARefusalComesFromARecentReadingSoItIsNeverEarly) {
  stockade_test::lagging_clock clock{3ms};
  health_check health{[] { return false; }, ages, clock};
  const auto policy = stockade::pipeline{std::ref(health)};
  context first{clock};
  (void)policy.try_call(first, [] {});
  clock.inner().advance(500ms);
  context later{clock};
  const auto refused = policy.try_call(later, [] {});
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code(), errc::unhealthy);
  EXPECT_EQ(refused.error().retry_after(), 1503ms);  // 1.5 s left, read 3 ms late
}

TEST(HealthCheckPolicy, ResetActionRunsOncePerUnhealthyProbeNotPerRefusedCall) {
  manual_clock clock;
  health_check health{[] { return false; }, ages, clock};
  int resets = 0;
  health.on_unhealthy([&] { ++resets; });
  const auto policy = stockade::pipeline{std::ref(health)};
  for (int i = 0; i < 5; ++i) {
    context ctx{clock};
    EXPECT_THROW(policy(ctx, [] {}), stockade::error);
  }
  EXPECT_EQ(resets, 1);
  clock.advance(2s);
  context ctx{clock};
  EXPECT_THROW(policy(ctx, [] {}), stockade::error);
  EXPECT_EQ(resets, 2);
}

TEST(HealthCheckPolicy, ReportsProbesAndRejections) {
  manual_clock clock;
  stockade::counters events;
  health_check health{[] { return false; }, ages, clock, stockade::observer_ref{events}};
  const auto policy = stockade::pipeline{std::ref(health)};
  for (int i = 0; i < 3; ++i) {
    context ctx{clock};
    EXPECT_THROW(policy(ctx, [] {}), stockade::error);
  }
  EXPECT_EQ(events.count(event_kind::health_probed), 1U);
  EXPECT_EQ(events.count(event_kind::health_rejected), 3U);
}

template <auto make>
concept valid_constexpr_options = requires {
  typename std::integral_constant<bool, (make().validate(), true)>;
};

TEST(HealthCheckOptions, DefaultsFollowKubernetesProbes) {
  static_assert(valid_constexpr_options<[] { return health_check_options{}; }>);
  constexpr health_check_options defaults{};
  EXPECT_EQ(defaults.max_age, 10s);
  EXPECT_EQ(defaults.probe_timeout, 1s);
  EXPECT_EQ(defaults.unhealthy_max_age, 1s);
}

TEST(HealthCheckOptions, NonPositiveDurationsFailToCompileWhenConstexpr) {
  static_assert(!valid_constexpr_options<[] { return health_check_options{.max_age = 0s}; }>);
  static_assert(
      !valid_constexpr_options<[] { return health_check_options{.unhealthy_max_age = -1s}; }>);
  static_assert(!valid_constexpr_options<[] { return health_check_options{.probe_timeout = 0s}; }>);
}

TEST(HealthCheckOptions, NonPositiveDurationsAreRefusedNamingTheField) {
  manual_clock clock;
  const auto refused_field = [&](health_check_options options) -> std::string {
    try {
      health_check health{[] { return true; }, options, clock};
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "accepted";
  };
  EXPECT_NE(refused_field({.max_age = 0s}).find("max_age"), std::string::npos);
  EXPECT_NE(refused_field({.unhealthy_max_age = 0s}).find("unhealthy_max_age"), std::string::npos);
  EXPECT_NE(refused_field({.probe_timeout = -1s})
                .find("probe_timeout must be positive (got -1000000000ns)"),
            std::string::npos)
      << refused_field({.probe_timeout = -1s});
}

}  // namespace
