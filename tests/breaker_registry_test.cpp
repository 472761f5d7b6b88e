#include <stockade/breaker_registry.hpp>
#include <stockade/manual_clock.hpp>
#include <stockade/pipeline.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using stockade::breaker_registry;
using stockade::circuit_breaker;
using stockade::circuit_state;
using stockade::consecutive_failures;
using stockade::testing::manual_clock;

using breaker = circuit_breaker<consecutive_failures>;
using registry = breaker_registry<std::string, breaker>;

const breaker::options_type one_failure_opens{.trip = {.threshold = 1},
                                              .open_for = stockade::constant{5s}};

void fail_once(breaker& b, manual_clock& clock) {
  stockade::context ctx{clock};
  try {
    stockade::pipeline{std::ref(b)}(ctx, []() -> int { throw std::runtime_error("down"); });
  } catch (const std::runtime_error&) {
  }
}

TEST(BreakerRegistry, GivesOneBreakerPerKey) {
  manual_clock clock;
  registry breakers{one_failure_opens, {}, clock};
  const auto a = breakers.get("db-a");
  EXPECT_EQ(breakers.get("db-a"), a);
  EXPECT_NE(breakers.get("db-b"), a);
  EXPECT_EQ(breakers.size(), 2U);
}

TEST(BreakerRegistry, BreakersShareTheOptionsAndAreNamedAfterTheirKey) {
  manual_clock clock;
  registry breakers{one_failure_opens, {}, clock};
  const auto a = breakers.get("db-a");
  EXPECT_EQ(a->name(), "db-a");
  EXPECT_EQ(a->options().trip.threshold, 1U);
  fail_once(*a, clock);
  EXPECT_EQ(a->state(), circuit_state::open);
  EXPECT_EQ(breakers.get("db-b")->state(), circuit_state::closed);  // keys do not share state
}

TEST(BreakerRegistry, KeepsAtMostMaxBreakersDroppingTheLeastRecentlyUsed) {
  manual_clock clock;
  registry breakers{one_failure_opens, {.max_breakers = 2}, clock};
  breakers.get("a");
  breakers.get("b");
  breakers.get("a");  // b is now the least recently used
  breakers.get("c");
  EXPECT_EQ(breakers.size(), 2U);
  EXPECT_NE(breakers.find("a"), nullptr);
  EXPECT_EQ(breakers.find("b"), nullptr);
  EXPECT_NE(breakers.find("c"), nullptr);
  EXPECT_EQ(breakers.evictions(), 1U);
}

TEST(BreakerRegistry, KeepsAnOpenBreakerOverAClosedOne) {
  manual_clock clock;
  registry breakers{one_failure_opens, {.max_breakers = 2}, clock};
  fail_once(*breakers.get("down"), clock);  // least recently used, but open
  breakers.get("up");
  breakers.get("new");
  EXPECT_NE(breakers.find("down"), nullptr);
  EXPECT_EQ(breakers.find("up"), nullptr);
  EXPECT_EQ(breakers.find("down")->state(), circuit_state::open);  // the outage is remembered
}

TEST(BreakerRegistry, PrefersABreakerNobodyHolds) {
  manual_clock clock;
  registry breakers{one_failure_opens, {.max_breakers = 2}, clock};
  const auto held = breakers.get("held");  // least recently used, but still in use
  breakers.get("idle");
  breakers.get("new");
  EXPECT_NE(breakers.find("held"), nullptr);
  EXPECT_EQ(breakers.find("idle"), nullptr);
}

TEST(BreakerRegistry, DropsAnOpenBreakerOnlyWhenEveryBreakerIsOpen) {
  manual_clock clock;
  registry breakers{one_failure_opens, {.max_breakers = 2}, clock};
  fail_once(*breakers.get("first"), clock);
  fail_once(*breakers.get("second"), clock);
  breakers.get("third");
  EXPECT_EQ(breakers.size(), 2U);
  EXPECT_EQ(breakers.find("first"), nullptr);  // the least recently used goes
  EXPECT_NE(breakers.find("second"), nullptr);
}

TEST(BreakerRegistry, DroppedBreakerStaysValidForItsHolder) {
  manual_clock clock;
  registry breakers{one_failure_opens, {.max_breakers = 1}, clock};
  const auto held = breakers.get("a");
  fail_once(*held, clock);  // open: but it is the only one, so it goes anyway
  breakers.get("b");
  EXPECT_EQ(breakers.find("a"), nullptr);
  EXPECT_EQ(held->state(), circuit_state::open);  // still usable, name and all
  EXPECT_EQ(held->name(), "a");
}

TEST(BreakerRegistry, FindDoesNotCreateAndEraseDrops) {
  manual_clock clock;
  registry breakers{one_failure_opens, {}, clock};
  EXPECT_EQ(breakers.find("a"), nullptr);
  EXPECT_EQ(breakers.size(), 0U);
  breakers.get("a");
  EXPECT_TRUE(breakers.erase("a"));
  EXPECT_FALSE(breakers.erase("a"));
  EXPECT_EQ(breakers.size(), 0U);
}

TEST(BreakerRegistry, ForEachVisitsMostRecentlyUsedFirst) {
  manual_clock clock;
  registry breakers{one_failure_opens, {}, clock};
  breakers.get("a");
  breakers.get("b");
  breakers.get("a");
  std::vector<std::string> keys;
  breakers.for_each([&](const std::string& key, breaker& /*unused*/) { keys.push_back(key); });
  EXPECT_EQ(keys, (std::vector<std::string>{"a", "b"}));
}

TEST(BreakerRegistry, WorksWithNonStringKeys) {
  manual_clock clock;
  breaker_registry<int, breaker> shards{one_failure_opens, {.max_breakers = 8}, clock};
  EXPECT_EQ(shards.get(3), shards.get(3));
  EXPECT_EQ(shards.get(3)->name(), "");
}

TEST(BreakerRegistry, BreakersReportToTheSharedObserver) {
  manual_clock clock;
  stockade::counters counts;
  using observed =
      circuit_breaker<consecutive_failures, stockade::observer_ref<stockade::counters>>;
  breaker_registry<std::string, observed> breakers{
      {.trip = {.threshold = 1}}, {}, clock, stockade::observer_ref<stockade::counters>{counts}};
  stockade::context ctx{clock};
  for (const char* key : {"a", "b"}) {
    EXPECT_THROW(stockade::pipeline{std::ref(*breakers.get(key))}(
                     ctx, []() -> int { throw std::runtime_error("down"); }),
                 std::runtime_error);
  }
  EXPECT_EQ(counts.count(stockade::event_kind::breaker_state_changed), 2U);
}

TEST(BreakerRegistry, BadOptionsThrowNamingTheField) {
  try {
    registry breakers{{}, {.max_breakers = 0}};
    FAIL() << "max_breakers 0 was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("max_breakers"), std::string::npos);
  }
  EXPECT_THROW(registry({.trip = {.threshold = 0}}), std::invalid_argument);
  static_assert((stockade::breaker_registry_options{}.validate(), true));
}

TEST(BreakerRegistry, ConcurrentFirstUseMakesOneBreakerPerKey) {
  manual_clock clock;
  registry breakers{one_failure_opens, {}, clock};
  std::vector<std::shared_ptr<breaker>> seen(4);
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < seen.size(); ++i) {
    threads.emplace_back([&, i] { seen[i] = breakers.get("shared"); });
  }
  for (auto& t : threads) t.join();
  for (const auto& got : seen) EXPECT_EQ(got, seen[0]);
  EXPECT_EQ(breakers.size(), 1U);
}

}  // namespace
