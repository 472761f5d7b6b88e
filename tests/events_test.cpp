#include <stockade/events.hpp>

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

namespace {

struct sample_event {
  static constexpr stockade::event_kind kind = stockade::event_kind::retry_scheduled;
  int attempt;
};
struct other_event {
  static constexpr stockade::event_kind kind = stockade::event_kind::breaker_rejected;
};

static_assert(stockade::event<sample_event>);
static_assert(stockade::observer_of<stockade::null_observer, sample_event>);
static_assert(stockade::observer_of<stockade::counters, sample_event>);
static_assert(std::is_empty_v<stockade::null_observer>);

TEST(Events, CountersCountByKind) {
  stockade::counters counts;
  counts.on(sample_event{1});
  counts.on(sample_event{2});
  counts.on(other_event{});
  const auto snap = counts.snapshot();
  EXPECT_EQ(snap[stockade::event_kind::retry_scheduled], 2U);
  EXPECT_EQ(snap[stockade::event_kind::breaker_rejected], 1U);
  EXPECT_EQ(snap[stockade::event_kind::gate_reset], 0U);
  counts.clear();
  EXPECT_EQ(counts.count(stockade::event_kind::retry_scheduled), 0U);
}

TEST(Events, CountersAddUpAcrossThreads) {
  stockade::counters counts;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) counts.on(sample_event{i});
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(counts.count(stockade::event_kind::retry_scheduled), 4000U);
}

TEST(Events, CallbackObserverForwardsTheConcreteEvent) {
  std::vector<std::string> log;
  stockade::callback_observer observer{[&](const auto& e) {
    log.push_back(stockade::to_string(e.kind));
    if constexpr (requires { e.attempt; }) log.push_back(std::to_string(e.attempt));
  }};
  observer.on(sample_event{3});
  observer.on(other_event{});
  EXPECT_EQ(log, (std::vector<std::string>{"retry_scheduled", "3", "breaker_rejected"}));
}

TEST(Events, ObserverRefAndFanOutShareOneObserver) {
  stockade::counters shared;
  std::vector<int> attempts;
  stockade::fan_out both{stockade::observer_ref{shared},
                         stockade::callback_observer{[&](const auto& e) {
                           if constexpr (requires { e.attempt; }) attempts.push_back(e.attempt);
                         }}};
  both.on(sample_event{9});
  EXPECT_EQ(shared.count(stockade::event_kind::retry_scheduled), 1U);
  EXPECT_EQ(attempts, std::vector<int>{9});
}

TEST(Events, EveryKindHasAName) {
  for (std::size_t i = 0; i < stockade::event_kind_count; ++i) {
    EXPECT_STRNE(stockade::to_string(static_cast<stockade::event_kind>(i)), "unknown");
  }
}

}  // namespace
