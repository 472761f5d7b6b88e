#include <stockade/backoff.hpp>
#include <stockade/random.hpp>

#include <gtest/gtest.h>

#include "support.hpp"

#include <algorithm>
#include <climits>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

using stockade_test::compiles_as_constant;
using stockade_test::message_of;

using namespace std::chrono_literals;
using stockade::duration;
using stockade::jitter;

std::vector<duration> first_delays(const stockade::backoff auto& schedule, int count) {
  std::vector<duration> delays;
  for (int n = 1; n <= count; ++n) delays.push_back(schedule.delay(n));
  return delays;
}

// --- schedules ----------------------------------------------------------------------------

TEST(Backoff, ConstantGivesTheSameDelayForEveryRetry) {
  const stockade::constant schedule{.interval = 250ms};
  EXPECT_EQ(first_delays(schedule, 4), (std::vector<duration>{250ms, 250ms, 250ms, 250ms}));
  EXPECT_EQ(schedule.delay(INT_MAX), 250ms);
}

TEST(Backoff, LinearGrowsByItsIncrementUntilTheCap) {
  const stockade::linear schedule{.initial = 100ms, .increment = 50ms, .max_delay = 260ms};
  EXPECT_EQ(first_delays(schedule, 6),
            (std::vector<duration>{100ms, 150ms, 200ms, 250ms, 260ms, 260ms}));
}

TEST(Backoff, ExponentialMultipliesUntilTheCap) {
  const stockade::exponential schedule{.initial = 200ms, .multiplier = 2.0, .max_delay = 2s};
  EXPECT_EQ(first_delays(schedule, 6),
            (std::vector<duration>{200ms, 400ms, 800ms, 1600ms, 2s, 2s}));
}

TEST(Backoff, ExponentialHandlesFractionalMultipliers) {
  const stockade::exponential schedule{.initial = 1s, .multiplier = 1.5, .max_delay = 10s};
  EXPECT_EQ(first_delays(schedule, 4), (std::vector<duration>{1s, 1500ms, 2250ms, 3375ms}));
}

TEST(Backoff, SchedulesSaturateAtTheCapForHugeRetryNumbers) {
  const stockade::exponential schedule{
      .initial = 1ns, .multiplier = 1000.0, .max_delay = duration::max()};
  EXPECT_EQ(schedule.delay(INT_MAX), duration::max());
  EXPECT_EQ(schedule.delay(1'000'000), duration::max());
  const stockade::linear line{.initial = 1s, .increment = 1h, .max_delay = duration::max()};
  EXPECT_EQ(line.delay(INT_MAX), duration::max());  // 2^31 hours do not fit in nanoseconds
  EXPECT_EQ(line.delay(1001), 1s + 1000h);
}

TEST(Backoff, DefaultsFollowTheCitedAnchors) {
  EXPECT_EQ(stockade::constant{}.interval, 2s);  // Polly v8 Delay
  EXPECT_EQ(first_delays(stockade::exponential{}, 3),
            (std::vector<duration>{100ms, 200ms, 400ms}));  // gRPC A6 example, AWS Java SDK v2
  EXPECT_EQ(stockade::exponential{}.max_delay, 20s);        // AWS SDKs' max backoff
  EXPECT_EQ(stockade::exponential{}.delay(30), 20s);
}

TEST(Backoff, SchedulesAreUsableInConstantExpressions) {
  constexpr stockade::exponential schedule{.initial = 200ms, .multiplier = 2.0, .max_delay = 2s};
  static_assert(schedule.delay(3) == 800ms);
  static_assert(schedule.delay(1000) == 2s);
  constexpr stockade::backoff_schedule erased = stockade::linear{1s, 1s, 3s};
  static_assert(erased.delay(2) == 2s && erased.delay(9) == 3s);
  static_assert(compiles_as_constant<[] {
    return stockade::exponential{.initial = 200ms, .multiplier = 2.0, .max_delay = 2s};
  }>);
  SUCCEED();
}

TEST(Backoff, ScheduleHoldsAnyBuiltInKindAndDelaysLikeIt) {
  const stockade::constant c{300ms};
  const stockade::linear l{100ms, 100ms, 1s};
  const stockade::exponential e{50ms, 3.0, 5s};
  const stockade::backoff_schedule as_c = c, as_l = l, as_e = e;
  EXPECT_EQ(as_c.which(), stockade::backoff_schedule::kind::constant);
  EXPECT_EQ(as_l.which(), stockade::backoff_schedule::kind::linear);
  EXPECT_EQ(as_e.which(), stockade::backoff_schedule::kind::exponential);
  EXPECT_EQ(first_delays(as_c, 5), first_delays(c, 5));
  EXPECT_EQ(first_delays(as_l, 12), first_delays(l, 12));
  EXPECT_EQ(first_delays(as_e, 8), first_delays(e, 8));
  EXPECT_EQ(as_e.as_exponential(), e);
  EXPECT_EQ(as_l.max_delay(), 1s);
}

struct fibonacci {
  duration unit;
  constexpr duration delay(int n) const {
    duration a = unit, b = unit;
    for (int i = 1; i < n; ++i) {
      const duration next = a + b;
      a = b;
      b = next;
    }
    return a;
  }
};

TEST(Backoff, UserDefinedScheduleSatisfiesTheConcept) {
  static_assert(stockade::backoff<fibonacci>);
  static_assert(!stockade::backoff<int>);
  stockade::seeded_random random{7};
  EXPECT_EQ(stockade::jittered_delay(fibonacci{10ms}, jitter::none(), 1, {}, 1s, random), 10ms);
  EXPECT_EQ(stockade::jittered_delay(fibonacci{10ms}, jitter::none(), 4, {}, 1s, random), 30ms);
}

// --- validation ---------------------------------------------------------------------------

TEST(BackoffValidation, ConstantRejectsNegativeInterval) {
  EXPECT_EQ(message_of([] { stockade::constant{-1ms}.validate(); }),
            "stockade::constant: interval must not be negative (got -1000000ns)");
  static_assert(!compiles_as_constant<[] { return stockade::constant{-1ms}; }>);
}

TEST(BackoffValidation, LinearRejectsNegativeFieldsAndCapBelowInitial) {
  EXPECT_NE(message_of([] {
              stockade::linear{-1ms, 1ms, 1s}.validate();
            }).find("initial"),
            std::string::npos);
  EXPECT_NE(message_of([] {
              stockade::linear{1ms, -1ms, 1s}.validate();
            }).find("increment"),
            std::string::npos);
  EXPECT_EQ(message_of([] {
              stockade::linear{2s, 1ms, 1s}.validate();
            }),
            "stockade::linear: max_delay must be at least initial (got 1000000000ns)");
  static_assert(!compiles_as_constant<[] { return stockade::linear{2s, 1ms, 1s}; }>);
}

TEST(BackoffValidation, ExponentialRejectsShrinkingOrHugeMultiplier) {
  EXPECT_EQ(message_of([] {
              stockade::exponential{1ms, 0.5, 1s}.validate();
            }),
            "stockade::exponential: multiplier must be between 1 and 1000 (got 0.500000)");
  EXPECT_NE(message_of([] {
              stockade::exponential{1ms, 1001.0, 1s}.validate();
            }).find("multiplier"),
            std::string::npos);
  EXPECT_NE(message_of([] {
              stockade::exponential{-1ms, 2.0, 1s}.validate();
            }).find("initial"),
            std::string::npos);
  EXPECT_NE(message_of([] {
              stockade::exponential{2s, 2.0, 1s}.validate();
            }).find("max_delay"),
            std::string::npos);
  static_assert(!compiles_as_constant<[] { return stockade::exponential{1ms, 0.5, 1s}; }>);
  static_assert(compiles_as_constant<[] { return stockade::exponential{1ms, 1.0, 1s}; }>);
}

TEST(BackoffValidation, ScheduleValidatesTheKindItHolds) {
  const stockade::backoff_schedule bad = stockade::exponential{1ms, 0.5, 1s};
  EXPECT_NE(message_of([&] { bad.validate(); }).find("exponential: multiplier"), std::string::npos);
}

TEST(BackoffValidation, ProportionalJitterSpreadMustBeAFraction) {
  EXPECT_EQ(message_of([] { jitter::proportional(1.5).validate(); }),
            "stockade::jitter: spread must be between 0 and 1 (got 1.500000)");
  EXPECT_NE(message_of([] { jitter::proportional(-0.1).validate(); }), "no exception");
  EXPECT_EQ(message_of([] { jitter::proportional(1.0).validate(); }), "no exception");
  static_assert(!compiles_as_constant<[] { return jitter::proportional(2.0); }>);
}

// --- jitter -------------------------------------------------------------------------------

constexpr int draws = 20'000;

/// Draws `draws` jittered delays and returns {min, max}.
std::pair<duration, duration> range_of(const jitter& spread, duration computed, duration cap,
                                       duration base = {}, duration previous = {}) {
  stockade::seeded_random random{12345};
  duration low = duration::max(), high = duration::min();
  for (int i = 0; i < draws; ++i) {
    const duration d = spread.apply(computed, base, previous, cap, random);
    low = std::min(low, d);
    high = std::max(high, d);
  }
  return {low, high};
}

TEST(Jitter, NoneKeepsTheComputedDelay) {
  EXPECT_EQ(range_of(jitter::none(), 400ms, 1s), std::pair(duration{400ms}, duration{400ms}));
}

TEST(Jitter, FullSpreadsOverZeroToTheDelay) {
  const auto [low, high] = range_of(jitter::full(), 400ms, 1s);
  EXPECT_GE(low, 0ms);
  EXPECT_LE(high, 400ms);
  EXPECT_LT(low, 4ms);     // the whole range is used...
  EXPECT_GT(high, 396ms);  // ...from both ends
}

TEST(Jitter, EqualSpreadsOverHalfTheDelayToTheDelay) {
  const auto [low, high] = range_of(jitter::equal(), 400ms, 1s);
  EXPECT_GE(low, 200ms);
  EXPECT_LE(high, 400ms);
  EXPECT_LT(low, 202ms);
  EXPECT_GT(high, 398ms);
}

TEST(Jitter, DecorrelatedSpreadsFromBaseToThreeTimesThePreviousDelay) {
  const auto [low, high] = range_of(jitter::decorrelated(), 0ms, 10s, 100ms, 500ms);
  EXPECT_GE(low, 100ms);
  EXPECT_LE(high, 1500ms);
  EXPECT_LT(low, 115ms);
  EXPECT_GT(high, 1485ms);
}

TEST(Jitter, DecorrelatedStartsFromBaseBeforeAnyDelay) {
  const auto [low, high] = range_of(jitter::decorrelated(), 0ms, 10s, 100ms, 0ms);
  EXPECT_GE(low, 100ms);
  EXPECT_LE(high, 300ms);
}

TEST(Jitter, ProportionalSpreadsByTheFractionAroundTheDelay) {
  const auto [low, high] = range_of(jitter::proportional(0.2), 1s, 10s);
  EXPECT_GE(low, 800ms);
  EXPECT_LE(high, 1200ms);
  EXPECT_LT(low, 802ms);
  EXPECT_GT(high, 1198ms);
}

TEST(Jitter, CapHoldsForEveryKindWithJitterIncluded) {
  for (const jitter spread : {jitter::none(), jitter::full(), jitter::equal(),
                              jitter::decorrelated(), jitter::proportional(0.5)}) {
    SCOPED_TRACE(stockade::to_string(spread.kind));
    // computed delay above the cap, and a decorrelated range reaching far above it
    const auto [low, high] = range_of(spread, 5s, 1s, 800ms, 10s);
    EXPECT_GE(low, 0ms);
    EXPECT_LE(high, 1s);
  }
}

TEST(Jitter, ProportionalJustBelowTheCapStillRespectsIt) {
  const auto [low, high] = range_of(jitter::proportional(0.2), 950ms, 1s);
  EXPECT_GE(low, 760ms);
  EXPECT_EQ(high, 1s);
}

TEST(Jitter, NegativeInputsGiveZeroNotANegativeDelay) {
  const auto [low, high] = range_of(jitter::full(), -5s, 1s);
  EXPECT_EQ(low, 0ms);
  EXPECT_EQ(high, 0ms);
  const auto [low2, high2] = range_of(jitter::proportional(0.3), 1s, -1s);
  EXPECT_EQ(low2, 0ms);
  EXPECT_EQ(high2, 0ms);
}

TEST(Jitter, JitteredDelayUsesTheFirstDelayAsDecorrelatedBase) {
  const stockade::exponential schedule{.initial = 100ms, .multiplier = 2.0, .max_delay = 10s};
  stockade::seeded_random random{99};
  for (int i = 0; i < 1000; ++i) {
    const duration d =
        stockade::jittered_delay(schedule, jitter::decorrelated(), 4, 200ms, 10s, random);
    ASSERT_GE(d, 100ms);
    ASSERT_LE(d, 600ms);
  }
}

TEST(Jitter, TheSchedulesOwnCapBoundsEveryJitterKind) {
  // exponential{10ms, x2, 1s} with a policy cap of 30 s: the schedule's 1 s holds for every kind
  // (decorrelated reached 30 s before: 3 x the previous delay, capped only by the policy's cap).
  const stockade::exponential schedule{.initial = 10ms, .multiplier = 2.0, .max_delay = 1s};
  for (const jitter spread : {jitter::none(), jitter::full(), jitter::equal(),
                              jitter::decorrelated(), jitter::proportional(0.5)}) {
    SCOPED_TRACE(stockade::to_string(spread.kind));
    stockade::seeded_random random{7};
    duration previous{};
    duration longest{};
    for (int retry_number = 1; retry_number <= 200; ++retry_number) {
      previous = stockade::jittered_delay(schedule, spread, retry_number, previous, 30s, random);
      longest = std::max(longest, previous);
    }
    EXPECT_LE(longest, 1s);
    EXPECT_GT(longest, 500ms);  // it does reach up towards the cap
  }
}

TEST(Jitter, ACapOfThePolicyBelowTheSchedulesHolds) {
  const stockade::exponential schedule{.initial = 10ms, .multiplier = 2.0, .max_delay = 1s};
  stockade::seeded_random random{3};
  duration previous{};
  for (int retry_number = 1; retry_number <= 200; ++retry_number) {
    previous = stockade::jittered_delay(schedule, jitter::decorrelated(), retry_number, previous,
                                        200ms, random);
    ASSERT_LE(previous, 200ms);
  }
}

TEST(Jitter, JitteredDelayCapsTheScheduleItself) {
  stockade::seeded_random random{1};
  EXPECT_EQ(stockade::jittered_delay(stockade::constant{5s}, jitter::none(), 1, {}, 2s, random),
            2s);
}

// --- random sources -----------------------------------------------------------------------

TEST(Random, StandardEnginesAndOurSourcesSatisfyTheConcept) {
  static_assert(stockade::random_source<std::mt19937_64>);
  static_assert(stockade::random_source<stockade::thread_random>);
  static_assert(stockade::random_source<stockade::seeded_random>);
  static_assert(!stockade::random_source<std::mt19937>);  // 32-bit: not the full range
  static_assert(sizeof(stockade::thread_random) == 1 && std::is_empty_v<stockade::thread_random>);
  SUCCEED();
}

TEST(Random, SeededSourceRepeatsItsSequence) {
  stockade::seeded_random a{42}, b{42}, c{43};
  std::vector<std::uint64_t> from_a, from_b, from_c;
  for (int i = 0; i < 100; ++i) {
    from_a.push_back(a());
    from_b.push_back(b());
    from_c.push_back(c());
  }
  EXPECT_EQ(from_a, from_b);
  EXPECT_NE(from_a, from_c);
}

TEST(Random, SeededSourceCopyContinuesFromTheCopiedState) {
  stockade::seeded_random a{5};
  a();
  stockade::seeded_random b = a;
  EXPECT_EQ(a(), b());
}

TEST(Random, UnitIntervalStaysBelowOne) {
  EXPECT_EQ(stockade::detail::to_unit_interval(0), 0.0);
  EXPECT_LT(stockade::detail::to_unit_interval(~std::uint64_t{0}), 1.0);
}

TEST(Random, ThreadSourceGivesEachThreadItsOwnSequence) {
  std::vector<std::uint64_t> first(4);
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < first.size(); ++i) {
    threads.emplace_back([&first, i] { first[i] = stockade::thread_random{}(); });
  }
  for (auto& t : threads) t.join();
  std::sort(first.begin(), first.end());
  EXPECT_EQ(std::adjacent_find(first.begin(), first.end()), first.end());
}

TEST(Random, SeededSourceSharedByThreadsNeverRepeatsADraw) {
  stockade::seeded_random shared{3};
  constexpr int per_thread = 2000;
  std::vector<std::vector<std::uint64_t>> seen(4);
  std::vector<std::thread> threads;
  for (auto& out : seen) {
    threads.emplace_back([&shared, &out] {
      for (int i = 0; i < per_thread; ++i) out.push_back(shared());
    });
  }
  for (auto& t : threads) t.join();
  std::vector<std::uint64_t> all;
  for (auto& out : seen) all.insert(all.end(), out.begin(), out.end());
  std::sort(all.begin(), all.end());
  EXPECT_EQ(std::adjacent_find(all.begin(), all.end()), all.end());
  EXPECT_EQ(all.size(), 4U * per_thread);
}

}  // namespace
