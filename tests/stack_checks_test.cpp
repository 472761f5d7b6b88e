// Ordering checks of a stack (stack_checks.hpp): which orders are refused, which are not, and
// that each opt-out turns off its own check only. The type-level refusals (nested retries, a
// breaker or bulkhead outside a retry) cannot be built at all: tests/compile_fail/ holds them.
#include <stockade/stockade.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <stdexcept>
#include <string>

#include "support.hpp"

namespace {

using namespace std::chrono_literals;
using stockade::layer_traits;
using stockade::pipeline;
using stockade::retry;
using stockade::stack_check;
using stockade::timeout;
using stockade::detail::stack_shape;

using any_retry = retry<>;
using any_bulkhead = stockade::bulkhead<>;
using any_breaker = stockade::circuit_breaker<>;

TEST(StackShape, ReadsTraitsThroughStdRef) {
  using shape = stack_shape<timeout<>, any_retry, std::reference_wrapper<any_breaker>,
                            std::reference_wrapper<any_bulkhead>, stockade::pass_through>;
  static_assert(shape::traits[0] == layer_traits{.bounds_time = true});
  static_assert(shape::traits[1] == layer_traits{.repeats = true});
  static_assert(shape::traits[2] == layer_traits{.sees_each_attempt = true});
  static_assert(shape::traits[3] == layer_traits{.holds_capacity = true});
  static_assert(shape::traits[4] == layer_traits{});
  static_assert(shape::count(&layer_traits::repeats) == 1);
  static_assert(shape::outside(&layer_traits::repeats, &layer_traits::sees_each_attempt));
  static_assert(!shape::outside(&layer_traits::sees_each_attempt, &layer_traits::repeats));
  SUCCEED();
}

// A policy from outside the library: it states its traits, and the checks read them.
struct rate_limit_like {
  static constexpr layer_traits traits{.sees_each_attempt = true, .holds_capacity = true};
  template <class Next>
  auto invoke(stockade::context& ctx, Next&& next) const {
    return next(ctx);
  }
};

TEST(StackShape, APolicysOwnTraitsAreCheckedLikeTheLibrarysLayers) {
  using inside = stack_shape<any_retry, rate_limit_like>;
  using outside = stack_shape<rate_limit_like, any_retry>;
  static_assert(!inside::outside(&layer_traits::sees_each_attempt, &layer_traits::repeats));
  static_assert(outside::outside(&layer_traits::sees_each_attempt, &layer_traits::repeats));
  static_assert(outside::outside(&layer_traits::holds_capacity, &layer_traits::repeats));
  static_assert(stockade::detail::stack_order_checks<any_retry, rate_limit_like>::passed);
  SUCCEED();  // the refused order: tests/compile_fail/own_policy_outside_retry.cpp
}

TEST(StackShape, AllowLayerTurnsOffOnlyTheChecksItNames) {
  using shape =
      stack_shape<stockade::allow<stack_check::nested_retries, stack_check::bulkhead_outside_retry>,
                  any_retry>;
  static_assert(shape::allowed(stack_check::nested_retries));
  static_assert(shape::allowed(stack_check::bulkhead_outside_retry));
  static_assert(!shape::allowed(stack_check::breaker_outside_retry));
  static_assert(!shape::allowed(stack_check::inner_timeout_not_shorter));
  static_assert(!stack_shape<any_retry>::allowed(stack_check::nested_retries));
  SUCCEED();
}

TEST(StackChecks, RecommendedOrderIsAccepted) {
  stockade::testing::manual_clock clock;
  any_breaker breaker{{}, clock};
  any_bulkhead slots{{.max_concurrent = 2}};
  const auto stack =
      pipeline{timeout{8s}, retry{}, std::ref(breaker), std::ref(slots), timeout{2s}};
  stockade::context ctx{clock};
  EXPECT_EQ(stack(ctx, [] { return 7; }), 7);
}

TEST(StackChecks, InnerTimeoutNotShorterThanOuterIsRefusedWhenBuilt) {
  const std::string message = stockade_test::message_of([] {
    (void)pipeline{timeout{2s}, retry{}, timeout{2s}};
  });
  EXPECT_NE(message.find("the timeout inside a retry (2s) is not shorter than the timeout "
                         "outside it (2s)"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("stockade::allow_inner_timeout_not_shorter"), std::string::npos);
  EXPECT_THROW((pipeline{timeout{2s}, retry{}, timeout{5s}}), std::invalid_argument);
}

TEST(StackChecks, InnerTimeoutIsComparedWithTheShortestOneOutsideTheRetry) {
  EXPECT_THROW((pipeline{timeout{10s}, timeout{3s}, retry{}, timeout{5s}}), std::invalid_argument);
  EXPECT_NO_THROW((pipeline{timeout{10s}, timeout{3s}, retry{}, timeout{1s}}));
}

TEST(StackChecks, RedundantLongerTimeoutBesideAShorterOneInsideTheRetryIsAccepted) {
  // The 2 s timeout bounds each attempt; the 9 s one never fires, but takes no time away.
  EXPECT_NO_THROW((pipeline{timeout{8s}, retry{}, timeout{9s}, timeout{2s}}));
}

TEST(StackChecks, InnerTimeoutNotShorterThanTheRetrysMaxElapsedIsRefused) {
  const std::string message = stockade_test::message_of([] {
    (void)pipeline{retry{{.max_elapsed = 2s}}, timeout{5s}};
  });
  EXPECT_NE(message.find("the timeout inside a retry (5s) is not shorter than the retry's "
                         "max_elapsed (2s)"),
            std::string::npos)
      << message;
  EXPECT_NO_THROW((pipeline{retry{{.max_elapsed = 2s}}, timeout{500ms}}));
  EXPECT_NO_THROW((pipeline{stockade::allow_inner_timeout_not_shorter, retry{{.max_elapsed = 2s}},
                            timeout{5s}}));
}

TEST(StackChecks, LongerTimeoutWithoutARetryBetweenIsNotThisCheck) {
  // Redundant (the outer deadline wins), but no retry loses its time to it.
  EXPECT_NO_THROW((pipeline{timeout{2s}, timeout{5s}, retry{}}));
  EXPECT_NO_THROW((pipeline{retry{}, timeout{5s}}));
}

TEST(StackChecks, InnerTimeoutCheckCanBeTurnedOff) {
  EXPECT_NO_THROW(
      (pipeline{stockade::allow_inner_timeout_not_shorter, timeout{2s}, retry{}, timeout{5s}}));
}

TEST(StackChecks, ClassifyWithKeepsTheStackAndItsOptOuts) {
  const auto stack =
      pipeline{stockade::allow_inner_timeout_not_shorter, timeout{2s}, retry{}, timeout{5s}};
  EXPECT_NO_THROW((void)stack.classify_with(stockade::default_classifier{}));
}

TEST(StackChecks, ConstexprStackIsCheckedAtCompileTime) {
  // The same check in a constant expression: a bad stack would fail to compile
  // (tests/compile_fail/inner_timeout_constexpr.cpp); a good one compiles.
  constexpr auto stack = pipeline{timeout{8s}, retry{}, timeout{2s}};
  static_assert(stack.size() == 3);
  SUCCEED();
}

TEST(StackChecks, OptedOutNestedRetriesRunAndMultiplyAttempts) {
  stockade::testing::manual_clock clock;
  const auto fast = retry{{.max_attempts = 2, .backoff = stockade::constant{0s}}};
  const auto stack = pipeline{stockade::allow_nested_retries, fast, fast};
  int runs = 0;
  stockade::context ctx{clock};
  EXPECT_THROW(stack(ctx,
                     [&]() -> int {
                       ++runs;
                       throw std::runtime_error("down");
                     }),
               std::runtime_error);
  EXPECT_EQ(runs, 4);
  EXPECT_EQ(stack.worst_case().attempts.value(), 4);
}

TEST(StackChecks, AllowLayerDescribesWhatItTurnsOff) {
  const stockade::allow<stack_check::nested_retries, stack_check::breaker_outside_retry> both;
  EXPECT_EQ(both.describe(), "allow (checks turned off: nested retries; breaker outside retry)");
}

}  // namespace
