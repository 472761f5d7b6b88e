#include <stockade/manual_clock.hpp>
#include <stockade/retry_budget.hpp>

#include <gtest/gtest.h>

#include "support.hpp"

#include <latch>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

using stockade_test::compiles_as_constant;
using stockade_test::message_of;

using namespace std::chrono_literals;
using stockade::outcome;
using stockade::percent_budget;
using stockade::token_budget;
using stockade::verdict;

const outcome failure{verdict::transient};
const outcome success{verdict::success};

// --- gRPC A6 token throttling ----------------------------------------------------------------

TEST(TokenBudget, StartsFullAndAllowsRetries) {
  token_budget budget{{.max_tokens = 10, .token_ratio = 0.1}};
  EXPECT_DOUBLE_EQ(budget.tokens(), 10.0);
  EXPECT_TRUE(budget.try_retry());
}

TEST(TokenBudget, FollowsTheA6ExampleArithmetic) {
  // A6: maxTokens 10, tokenRatio 0.1; a failure costs 1, a success adds 0.1, and retries stop
  // while token_count <= maxTokens / 2 = 5.
  token_budget budget{{.max_tokens = 10, .token_ratio = 0.1}};
  for (int i = 0; i < 4; ++i) budget.on_attempt(failure, false);
  EXPECT_DOUBLE_EQ(budget.tokens(), 6.0);
  EXPECT_TRUE(budget.try_retry());
  budget.on_attempt(failure, false);
  EXPECT_DOUBLE_EQ(budget.tokens(), 5.0);
  EXPECT_FALSE(budget.try_retry());  // at the threshold: no retry
  budget.on_attempt(success, false);
  EXPECT_DOUBLE_EQ(budget.tokens(), 5.1);
  EXPECT_TRUE(budget.try_retry());  // above it again
  EXPECT_EQ(budget.retries_granted(), 2U);
  EXPECT_EQ(budget.retries_refused(), 1U);
}

TEST(TokenBudget, TryRetryDoesNotSpendTokens) {
  token_budget budget{{.max_tokens = 10, .token_ratio = 0.1}};
  for (int i = 0; i < 100; ++i) budget.try_retry();
  EXPECT_DOUBLE_EQ(budget.tokens(), 10.0);
}

TEST(TokenBudget, StaysBetweenZeroAndMaxTokens) {
  token_budget budget{{.max_tokens = 3, .token_ratio = 0.5}};
  for (int i = 0; i < 10; ++i) budget.on_attempt(failure, false);
  EXPECT_DOUBLE_EQ(budget.tokens(), 0.0);
  budget.on_attempt(success, false);
  EXPECT_DOUBLE_EQ(budget.tokens(), 0.5);
  for (int i = 0; i < 10; ++i) budget.on_attempt(success, false);
  EXPECT_DOUBLE_EQ(budget.tokens(), 3.0);
}

TEST(TokenBudget, FatalFailuresCostATokenButPermanentAndRejectionsDoNot) {
  token_budget budget{{.max_tokens = 10, .token_ratio = 0.1}};
  budget.on_attempt(outcome{verdict::fatal}, false);
  EXPECT_DOUBLE_EQ(budget.tokens(), 9.0);
  budget.on_attempt(outcome{verdict::permanent}, false);
  budget.on_attempt(outcome{verdict::transient, 1s, /*by_policy=*/true}, false);
  EXPECT_DOUBLE_EQ(budget.tokens(), 9.0);
}

TEST(TokenBudget, KeepsThreeDecimalPlacesOfTheRatio) {
  token_budget budget{{.max_tokens = 1, .token_ratio = 0.001}};
  budget.on_attempt(failure, false);
  for (int i = 0; i < 500; ++i) budget.on_attempt(success, false);
  EXPECT_DOUBLE_EQ(budget.tokens(), 0.5);
  EXPECT_FALSE(budget.try_retry());
  budget.on_attempt(success, false);
  EXPECT_TRUE(budget.try_retry());
}

TEST(TokenBudget, CountsEveryUpdateFromManyThreads) {
  token_budget budget{{.max_tokens = 1000, .token_ratio = 0.001}};
  constexpr int threads = 4, failures_each = 200;
  std::latch start{threads};
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&] {
      start.arrive_and_wait();
      for (int i = 0; i < failures_each; ++i) {
        budget.on_attempt(failure, false);
        budget.try_retry();
      }
    });
  }
  for (auto& w : workers) w.join();
  EXPECT_DOUBLE_EQ(budget.tokens(), 1000.0 - threads * failures_each);  // no update lost
  EXPECT_EQ(budget.retries_granted() + budget.retries_refused(),
            static_cast<std::uint64_t>(threads * failures_each));
}

TEST(TokenBudget, CanBeConstantInitialized) {
  static constinit token_budget shared{{.max_tokens = 4, .token_ratio = 0.25}};
  EXPECT_DOUBLE_EQ(shared.tokens(), 4.0);
}

TEST(TokenBudgetValidation, RejectsNonPositiveMaxTokens) {
  EXPECT_EQ(message_of([] { token_budget{{.max_tokens = 0}}; }),
            "stockade::token_budget: max_tokens must be between 1 and 1000000 (got 0)");
  static_assert(
      !compiles_as_constant<[] { return stockade::token_budget_options{.max_tokens = 0}; }>);
}

TEST(TokenBudgetValidation, RejectsRatioBelowOneThousandth) {
  EXPECT_NE(message_of([] { token_budget{{.token_ratio = 0.0}}; }).find("token_ratio"),
            std::string::npos);
  EXPECT_NE(message_of([] { token_budget{{.token_ratio = 0.0004}}; }).find("token_ratio"),
            std::string::npos);
  static_assert(
      !compiles_as_constant<[] { return stockade::token_budget_options{.token_ratio = -1.0}; }>);
  static_assert(compiles_as_constant<[] { return stockade::token_budget_options{}; }>);
}

// --- tower / Finagle percentage budget --------------------------------------------------------

TEST(PercentBudget, ReserveAllowsMinPerSecRetriesOverTheWindow) {
  stockade::testing::manual_clock clock;
  percent_budget budget{{.ttl = 10s, .min_per_sec = 2, .percent_can_retry = 0.0}, clock};
  EXPECT_EQ(budget.retries_available(), 20);
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(budget.try_retry()) << i;
  EXPECT_FALSE(budget.try_retry());
  EXPECT_EQ(budget.retries_granted(), 20U);
  EXPECT_EQ(budget.retries_refused(), 1U);
}

TEST(PercentBudget, EachCallDepositsItsPercentOfARetry) {
  stockade::testing::manual_clock clock;
  percent_budget budget{{.ttl = 10s, .min_per_sec = 0, .percent_can_retry = 0.2}, clock};
  EXPECT_FALSE(budget.try_retry());
  for (int i = 0; i < 10; ++i) budget.on_attempt(failure, /*first=*/true);
  EXPECT_EQ(budget.retries_available(), 2);
  EXPECT_TRUE(budget.try_retry());
  EXPECT_TRUE(budget.try_retry());
  EXPECT_FALSE(budget.try_retry());
  for (int i = 0; i < 4; ++i) budget.on_attempt(failure, /*first=*/true);
  EXPECT_FALSE(budget.try_retry());  // 0.8 of a retry is not a retry
  budget.on_attempt(failure, /*first=*/true);
  EXPECT_TRUE(budget.try_retry());
}

TEST(PercentBudget, OutcomesDoNotChangeIt) {
  stockade::testing::manual_clock clock;
  percent_budget budget{{.ttl = 10s, .min_per_sec = 1, .percent_can_retry = 0.5}, clock};
  budget.on_attempt(failure, false);
  budget.on_attempt(success, false);
  EXPECT_EQ(budget.retries_available(), 10);
}

TEST(PercentBudget, DepositsExpireAfterTheTtl) {
  stockade::testing::manual_clock clock;
  percent_budget budget{{.ttl = 10s, .min_per_sec = 0, .percent_can_retry = 1.0}, clock};
  for (int i = 0; i < 5; ++i) budget.on_attempt(failure, /*first=*/true);
  clock.advance(9s);
  EXPECT_EQ(budget.retries_available(), 5);
  clock.advance(1s);
  EXPECT_EQ(budget.retries_available(), 0);
  EXPECT_FALSE(budget.try_retry());
}

TEST(PercentBudget, WindowSlidesOneTenthOfTheTtlAtATime) {
  stockade::testing::manual_clock clock;
  percent_budget budget{{.ttl = 10s, .min_per_sec = 0, .percent_can_retry = 1.0}, clock};
  for (int second = 0; second < 10; ++second) {
    budget.on_attempt(failure, /*first=*/true);
    clock.advance(1s);
  }
  // t = 10 s: the deposit of second 0 has left the window, those of seconds 1..9 remain.
  EXPECT_EQ(budget.retries_available(), 9);
  clock.advance(4s);
  EXPECT_EQ(budget.retries_available(), 5);
  clock.advance(100s);
  EXPECT_EQ(budget.retries_available(), 0);
}

TEST(PercentBudget, WithdrawalsExpireSoTheReserveComesBack) {
  stockade::testing::manual_clock clock;
  percent_budget budget{{.ttl = 1s, .min_per_sec = 3, .percent_can_retry = 0.0}, clock};
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(budget.try_retry());
  EXPECT_FALSE(budget.try_retry());
  clock.advance(1s);
  EXPECT_EQ(budget.retries_available(), 3);
}

TEST(PercentBudget, KeepsCountingAfterLongIdleGaps) {
  stockade::testing::manual_clock clock;
  percent_budget budget{{.ttl = 1s, .min_per_sec = 0, .percent_can_retry = 1.0}, clock};
  // Gaps longer than the window (10 periods), around every power of two of periods up to the
  // slot-tag range.
  for (int bits = 1; bits <= 28; ++bits) {
    SCOPED_TRACE(bits);
    budget.on_attempt(failure, /*first=*/true);
    ASSERT_EQ(budget.retries_available(), 1);
    clock.advance(std::chrono::milliseconds(100) * ((std::int64_t{1} << bits) + 10));
    ASSERT_EQ(budget.retries_available(), 0);
  }
}

TEST(PercentBudget, LosesNoUpdateAndOverGrantsAtMostOnePerRacingThread) {
  stockade::testing::manual_clock clock;
  percent_budget budget{{.ttl = 10s, .min_per_sec = 1, .percent_can_retry = 0.25}, clock};
  constexpr int threads = 4, calls_each = 400;
  std::latch start{threads};
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&] {
      start.arrive_and_wait();
      for (int i = 0; i < calls_each; ++i) {
        budget.on_attempt(failure, /*first=*/true);
        budget.try_retry();
        budget.try_retry();
      }
    });
  }
  for (auto& w : workers) w.join();
  const std::uint64_t allowed = 10 /*reserve*/ + threads * calls_each / 4 /*deposits*/;
  // No deposit or withdrawal is lost: what was granted plus what is left is what was allowed,
  // and a race can over-grant by at most one retry per thread.
  const auto left = static_cast<std::uint64_t>(budget.retries_available());
  EXPECT_LE(budget.retries_granted(), allowed + threads);
  if (budget.retries_granted() <= allowed) {
    EXPECT_EQ(budget.retries_granted() + left, allowed);
  }
  EXPECT_EQ(budget.retries_granted() + budget.retries_refused(), 2U * threads * calls_each);
}

TEST(PercentBudgetValidation, TtlMustBeBetweenOneAndSixtySeconds) {
  EXPECT_EQ(message_of([] { percent_budget{{.ttl = 500ms}}; }),
            "stockade::percent_budget: ttl must be between 1s and 60s (got 500000000ns)");
  EXPECT_NE(message_of([] { percent_budget{{.ttl = 61s}}; }), "no exception");
  static_assert(!compiles_as_constant<[] { return stockade::percent_budget_options{.ttl = 0s}; }>);
}

TEST(PercentBudgetValidation, MinPerSecAndPercentMustNotBeNegative) {
  EXPECT_NE(message_of([] { percent_budget{{.min_per_sec = -1}}; }).find("min_per_sec"),
            std::string::npos);
  EXPECT_NE(message_of([] { percent_budget{{.percent_can_retry = -0.1}}; }).find("percent"),
            std::string::npos);
  EXPECT_NE(message_of([] { percent_budget{{.percent_can_retry = 1001}}; }).find("percent"),
            std::string::npos);
  static_assert(compiles_as_constant<[] { return stockade::percent_budget_options{}; }>);
}

TEST(PercentBudget, DefaultsAreFinagleAndTowerDefaults) {
  constexpr stockade::percent_budget_options defaults{};
  static_assert(defaults.ttl == 10s && defaults.min_per_sec == 10);
  EXPECT_DOUBLE_EQ(defaults.percent_can_retry, 0.2);
}

}  // namespace
