#include <stockade/circuit_breaker.hpp>
#include <stockade/manual_clock.hpp>
#include <stockade/pipeline.hpp>
#include <stockade/retry.hpp>
#include <stockade/timeout.hpp>

#include <gtest/gtest.h>

#include "support.hpp"

#include <chrono>
#include <functional>
#include <latch>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace {

using namespace std::chrono_literals;
using stockade::circuit_breaker;
using stockade::circuit_state;
using stockade::consecutive_failures;
using stockade::count_window;
using stockade::slow_calls;
using stockade::time_window;
using stockade::verdict;
using stockade::testing::manual_clock;

struct dependency_down : std::runtime_error {
  dependency_down() : std::runtime_error("dependency down") {}
};

/// How a call through the breaker ended.
enum class ended { succeeded, failed, open, isolated };

/// Runs `callee` through a pipeline holding `breaker`, with a fresh context on `clock`.
template <class Breaker, class Callee>
ended call(Breaker& breaker, manual_clock& clock, Callee callee,
           stockade::outcome* rejection = nullptr, stockade::duration* retry_after = nullptr) {
  stockade::context ctx{clock};
  const auto r = stockade::pipeline{std::ref(breaker)}.try_call(ctx, callee);
  if (r.has_value()) return ended::succeeded;
  if (rejection != nullptr) *rejection = r.outcome();
  if (retry_after != nullptr) *retry_after = r.error().retry_after();
  if (r.error().code() == stockade::errc::circuit_open) return ended::open;
  if (r.error().code() == stockade::errc::circuit_isolated) return ended::isolated;
  try {
    r.error().raise();
  } catch (const dependency_down&) {
    return ended::failed;
  }
}

template <class Breaker>
ended succeed(Breaker& breaker, manual_clock& clock) {
  return call(breaker, clock, [] { return 1; });
}
template <class Breaker>
ended fail(Breaker& breaker, manual_clock& clock) {
  return call(breaker, clock, []() -> int { throw dependency_down{}; });
}
/// A call that takes `length` of virtual time, then succeeds.
template <class Breaker>
ended succeed_after(Breaker& breaker, manual_clock& clock, stockade::duration length) {
  return call(breaker, clock, [&] {
    clock.advance(length);
    return 1;
  });
}

/// Records every event a breaker reports.
struct recorder {
  std::vector<std::pair<circuit_state, circuit_state>> changes;
  std::vector<stockade::breaker_state_changed> change_events;
  std::vector<stockade::breaker_rejected> rejections;
  void on(const stockade::breaker_state_changed& e) {
    changes.emplace_back(e.from, e.to);
    change_events.push_back(e);
  }
  void on(const stockade::breaker_rejected& e) { rejections.push_back(e); }
};

using consecutive_breaker = circuit_breaker<consecutive_failures>;
using recorded_breaker = circuit_breaker<consecutive_failures, stockade::observer_ref<recorder>>;

consecutive_breaker::options_type consecutive(std::size_t threshold, stockade::duration open_for) {
  return {.trip = {.threshold = threshold}, .open_for = stockade::constant{open_for}};
}

/// Trips a consecutive-failures breaker with threshold 1.
template <class Breaker>
void trip(Breaker& breaker, manual_clock& clock) {
  ASSERT_EQ(fail(breaker, clock), ended::failed);
  ASSERT_EQ(breaker.state(), circuit_state::open);
}

template <class F>
std::string invalid_argument_message(F make) {
  try {
    make();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "no exception";
}

// --- configuration ----------------------------------------------------------------------------

template <class F>
concept evaluates_at_compile_time = requires {
  typename std::bool_constant<(F{}(), true)>;
};

TEST(CircuitBreakerOptions, DefaultsAreValidAtCompileTime) {
  constexpr stockade::circuit_breaker_options<> defaults{};
  static_assert((defaults.validate(), true));
  static_assert(defaults.trip.size == 100 && defaults.trip.minimum_calls == 100);
  static_assert(defaults.trip.failure_ratio == 0.5);
  static_assert(defaults.open_for.delay(1) == 5s);
  static_assert(defaults.half_open_permits == 1);
  static_assert((stockade::circuit_breaker_options<time_window>{}.validate(), true));
  static_assert((stockade::circuit_breaker_options<slow_calls<time_window>>{}.validate(), true));
  SUCCEED();
}

TEST(CircuitBreakerOptions, BadValueFailsToCompileAsConstant) {
  constexpr auto good = [] { stockade::circuit_breaker_options<>{}.validate(); };
  constexpr auto bad = [] {
    stockade::circuit_breaker_options<>{.half_open_permits = 0}.validate();
  };
  static_assert(evaluates_at_compile_time<decltype(good)>);
  static_assert(!evaluates_at_compile_time<decltype(bad)>);
  SUCCEED();
}

TEST(CircuitBreakerOptions, EachBadValueThrowsNamingTheField) {
  using opts = stockade::circuit_breaker_options<>;
  const auto build = [](opts o) { return [o] { circuit_breaker<> b{o}; }; };
  EXPECT_NE(invalid_argument_message(build({.trip = {.size = 0, .minimum_calls = 1}})).find("size"),
            std::string::npos);
  EXPECT_NE(invalid_argument_message(build({.trip = {.size = 10, .minimum_calls = 11}}))
                .find("minimum_calls"),
            std::string::npos);
  EXPECT_NE(invalid_argument_message(build({.trip = {.failure_ratio = 0.0}})).find("failure_ratio"),
            std::string::npos);
  EXPECT_NE(invalid_argument_message(build({.trip = {.failure_ratio = 1.5}})).find("failure_ratio"),
            std::string::npos);
  EXPECT_NE(invalid_argument_message(build({.open_for = stockade::constant{0s}})).find("open_for"),
            std::string::npos);
  EXPECT_NE(invalid_argument_message(build({.open_for = stockade::exponential{1s, 0.5, 10s}}))
                .find("multiplier"),
            std::string::npos);
  EXPECT_NE(invalid_argument_message(build({.open_jitter = stockade::jitter::proportional(2.0)}))
                .find("spread"),
            std::string::npos);
  EXPECT_NE(invalid_argument_message(build({.half_open_permits = 0})).find("half_open_permits"),
            std::string::npos);
  EXPECT_NE(
      invalid_argument_message(build({.half_open_permits = 1'000'001})).find("half_open_permits"),
      std::string::npos);
  EXPECT_NE(invalid_argument_message(build({.half_open_success_ratio = 1.01}))
                .find("half_open_success_ratio"),
            std::string::npos);
  EXPECT_NE(invalid_argument_message(build({.trip = {.size = 1'000'001, .minimum_calls = 1}}))
                .find("size"),
            std::string::npos);
  EXPECT_NE(invalid_argument_message(build({.half_open_success_ratio = 0.0}))
                .find("half_open_success_ratio"),
            std::string::npos);
  EXPECT_NE(invalid_argument_message(build({.failure_verdicts = {verdict::permanent}}))
                .find("failure_verdicts"),
            std::string::npos);
  EXPECT_NE(invalid_argument_message(build({.failure_verdicts = {verdict::success}}))
                .find("failure_verdicts"),
            std::string::npos);
  EXPECT_NE(invalid_argument_message(build({.failure_verdicts = {}})).find("failure_verdicts"),
            std::string::npos);
}

TEST(CircuitBreakerOptions, EachBadStrategyValueThrowsNamingTheField) {
  EXPECT_NE(invalid_argument_message([] {
              consecutive_breaker b{{.trip = {.threshold = 0}}};
            }).find("threshold"),
            std::string::npos);
  using timed = circuit_breaker<time_window>;
  EXPECT_NE(invalid_argument_message([] { timed b{{.trip = {.buckets = 0}}}; }).find("buckets"),
            std::string::npos);
  EXPECT_NE(invalid_argument_message([] { timed b{{.trip = {.length = 0s}}}; }).find("length"),
            std::string::npos);
  EXPECT_NE(invalid_argument_message([] {
              timed b{{.trip = {.length = 5us, .buckets = 10}}};
            }).find("length"),
            std::string::npos);
  EXPECT_NE(
      invalid_argument_message([] { timed b{{.trip = {.buckets = 10'001}}}; }).find("buckets"),
      std::string::npos);
  EXPECT_NE(
      invalid_argument_message([] { timed b{{.trip = {.minimum_calls = 0}}}; }).find("minimum"),
      std::string::npos);
  EXPECT_NE(invalid_argument_message([] {
              timed b{{.trip = {.failure_ratio = -1.0}}};
            }).find("failure_ratio"),
            std::string::npos);
  using slow = circuit_breaker<slow_calls<count_window>>;
  EXPECT_NE(invalid_argument_message([] {
              slow b{{.trip = {.slow_call_duration = 0s}}};
            }).find("slow_call_duration"),
            std::string::npos);
  EXPECT_NE(invalid_argument_message([] {
              slow b{{.trip = {.slow_call_ratio = 0.0}}};
            }).find("slow_call_ratio"),
            std::string::npos);
  using slow_timed = circuit_breaker<slow_calls<time_window>>;
  EXPECT_NE(invalid_argument_message([] {
              slow_timed b{{.trip = {.slow_call_ratio = 1.1}}};
            }).find("slow_call_ratio"),
            std::string::npos);
}

TEST(CircuitBreakerOptions, OptionsAccessorReturnsWhatWasGiven) {
  manual_clock clock;
  consecutive_breaker breaker{consecutive(3, 7s), clock};
  EXPECT_EQ(breaker.options().trip.threshold, 3U);
  EXPECT_EQ(breaker.options().open_for.delay(1), 7s);
}

// --- pass-through -----------------------------------------------------------------------------

TEST(CircuitBreaker, ClosedPassesResultAndExceptionThroughUnchanged) {
  manual_clock clock;
  circuit_breaker<> breaker{{}, clock};
  stockade::context ctx{clock};
  const auto policy = stockade::pipeline{std::ref(breaker)};
  EXPECT_EQ(policy(ctx, [] { return std::string("rows"); }), "rows");
  int calls = 0;
  policy(ctx, [&] { ++calls; });  // void callee
  EXPECT_EQ(calls, 1);
  EXPECT_THROW(policy(ctx, []() -> int { throw dependency_down{}; }), dependency_down);
}

// --- consecutive failures ---------------------------------------------------------------------

TEST(ConsecutiveFailures, OpensAtThreshold) {
  manual_clock clock;
  consecutive_breaker breaker{consecutive(3, 5s), clock};
  EXPECT_EQ(fail(breaker, clock), ended::failed);
  EXPECT_EQ(fail(breaker, clock), ended::failed);
  EXPECT_EQ(breaker.state(), circuit_state::closed);
  EXPECT_EQ(fail(breaker, clock), ended::failed);
  EXPECT_EQ(breaker.state(), circuit_state::open);
  EXPECT_EQ(succeed(breaker, clock), ended::open);
}

TEST(ConsecutiveFailures, SuccessStartsTheCountAgain) {
  manual_clock clock;
  consecutive_breaker breaker{consecutive(3, 5s), clock};
  fail(breaker, clock);
  fail(breaker, clock);
  succeed(breaker, clock);
  fail(breaker, clock);
  fail(breaker, clock);
  EXPECT_EQ(breaker.state(), circuit_state::closed);
  EXPECT_EQ(breaker.metrics().window.failures, 2U);
  fail(breaker, clock);
  EXPECT_EQ(breaker.state(), circuit_state::open);
}

// --- count window -----------------------------------------------------------------------------

using counted_breaker = circuit_breaker<count_window>;

counted_breaker::options_type counted(std::size_t size, double ratio, std::size_t minimum) {
  return {.trip = {.size = size, .failure_ratio = ratio, .minimum_calls = minimum},
          .open_for = stockade::constant{10s}};
}

TEST(CountWindow, StaysClosedBelowMinimumCalls) {
  manual_clock clock;
  counted_breaker breaker{counted(10, 0.5, 5), clock};
  for (int i = 0; i < 4; ++i) EXPECT_EQ(fail(breaker, clock), ended::failed);
  EXPECT_EQ(breaker.state(), circuit_state::closed);  // 4 of 4 failed, but only 4 calls
  EXPECT_EQ(fail(breaker, clock), ended::failed);
  EXPECT_EQ(breaker.state(), circuit_state::open);
}

TEST(CountWindow, OpensExactlyAtTheThresholdRatio) {
  manual_clock clock;
  counted_breaker breaker{counted(10, 0.5, 10), clock};
  for (int i = 0; i < 6; ++i) succeed(breaker, clock);
  for (int i = 0; i < 3; ++i) fail(breaker, clock);
  EXPECT_EQ(breaker.state(), circuit_state::closed);  // 9 calls: below the minimum
  fail(breaker, clock);                               // 4 of 10: below 0.5
  EXPECT_EQ(breaker.state(), circuit_state::closed);
  fail(breaker, clock);  // replaces a success: 5 of 10, exactly 0.5
  EXPECT_EQ(breaker.state(), circuit_state::open);
}

TEST(CountWindow, RatioOfOneTenthOpensAtExactlyTenOfAHundred) {
  manual_clock clock;
  counted_breaker breaker{counted(100, 0.1, 100), clock};
  for (int i = 0; i < 91; ++i) succeed(breaker, clock);
  for (int i = 0; i < 9; ++i) fail(breaker, clock);
  EXPECT_EQ(breaker.state(), circuit_state::closed);  // 9 of 100
  fail(breaker, clock);                               // 10 of 100
  EXPECT_EQ(breaker.state(), circuit_state::open);
}

TEST(CountWindow, ForgetsCallsThatRolledOut) {
  manual_clock clock;
  counted_breaker breaker{counted(4, 0.5, 4), clock};
  fail(breaker, clock);
  fail(breaker, clock);
  for (int i = 0; i < 4; ++i) succeed(breaker, clock);  // both failures roll out
  EXPECT_EQ(breaker.metrics().window.failures, 0U);
  EXPECT_EQ(breaker.metrics().window.calls, 4U);
  fail(breaker, clock);
  EXPECT_EQ(breaker.state(), circuit_state::closed);  // 1 of 4
  fail(breaker, clock);
  EXPECT_EQ(breaker.state(), circuit_state::open);  // 2 of 4
}

TEST(CountWindow, OnlyAFailureOpensTheBreaker) {
  manual_clock clock;
  counted_breaker breaker{counted(4, 0.5, 4), clock};
  fail(breaker, clock);
  fail(breaker, clock);
  succeed(breaker, clock);
  succeed(breaker, clock);  // the 4th call reaches the minimum at 2 of 4, but it succeeded
  EXPECT_EQ(breaker.state(), circuit_state::closed);
  fail(breaker, clock);  // replaces a failure: still 2 of 4, and now a failure decides
  EXPECT_EQ(breaker.state(), circuit_state::open);
}

// --- time window ------------------------------------------------------------------------------

using timed_breaker = circuit_breaker<time_window>;

timed_breaker::options_type timed(stockade::duration length, std::size_t buckets, double ratio,
                                  std::size_t minimum) {
  return {.trip = {.length = length,
                   .buckets = buckets,
                   .failure_ratio = ratio,
                   .minimum_calls = minimum},
          .open_for = stockade::constant{10s}};
}

TEST(TimeWindow, StaysClosedBelowMinimumCalls) {
  manual_clock clock;
  timed_breaker breaker{timed(10s, 10, 0.5, 4), clock};
  for (int i = 0; i < 3; ++i) fail(breaker, clock);
  EXPECT_EQ(breaker.state(), circuit_state::closed);
  fail(breaker, clock);
  EXPECT_EQ(breaker.state(), circuit_state::open);
}

TEST(TimeWindow, OpensExactlyAtTheThresholdRatio) {
  manual_clock clock;
  timed_breaker breaker{timed(10s, 10, 0.5, 4), clock};
  succeed(breaker, clock);
  succeed(breaker, clock);
  succeed(breaker, clock);
  fail(breaker, clock);
  fail(breaker, clock);  // 2 of 5
  EXPECT_EQ(breaker.state(), circuit_state::closed);
  fail(breaker, clock);  // 3 of 6: exactly 0.5
  EXPECT_EQ(breaker.state(), circuit_state::open);
}

TEST(TimeWindow, ForgetsCallsOlderThanTheWindow) {
  manual_clock clock;
  timed_breaker breaker{timed(10s, 10, 0.5, 4), clock};
  for (int i = 0; i < 3; ++i) fail(breaker, clock);
  EXPECT_EQ(breaker.metrics().window.failures, 3U);
  clock.advance(10s);  // the whole window rolls over
  EXPECT_EQ(breaker.metrics().window.calls, 0U);
  fail(breaker, clock);
  EXPECT_EQ(breaker.state(), circuit_state::closed);  // 1 call in the window, not 4
}

TEST(TimeWindow, RollsOverOneBucketAtATime) {
  manual_clock clock;
  timed_breaker breaker{timed(10s, 10, 0.5, 4), clock};
  fail(breaker, clock);
  fail(breaker, clock);  // bucket 0: 2 failures
  clock.advance(5s);
  succeed(breaker, clock);  // bucket 5
  clock.advance(4s);        // 9 s in: both buckets still inside
  EXPECT_EQ(breaker.metrics().window.calls, 3U);
  clock.advance(1s);  // 10 s in: bucket 0 has rolled out
  EXPECT_EQ(breaker.metrics().window.calls, 1U);
  fail(breaker, clock);
  fail(breaker, clock);  // 2 of 3 failed, but only 3 calls
  EXPECT_EQ(breaker.state(), circuit_state::closed);
  fail(breaker, clock);  // 3 of 4
  EXPECT_EQ(breaker.state(), circuit_state::open);
}

// --- slow calls -------------------------------------------------------------------------------

TEST(SlowCalls, OpenOnSlowCallRatioAlthoughEveryCallSucceeds) {
  manual_clock clock;
  circuit_breaker<slow_calls<count_window>> breaker{
      {.trip = {.size = 4, .minimum_calls = 4, .slow_call_duration = 1s, .slow_call_ratio = 0.5}},
      clock};
  succeed_after(breaker, clock, 100ms);
  succeed_after(breaker, clock, 100ms);
  succeed_after(breaker, clock, 2s);
  EXPECT_EQ(breaker.state(), circuit_state::closed);  // 3 calls
  succeed_after(breaker, clock, 2s);                  // 2 of 4 slow
  EXPECT_EQ(breaker.state(), circuit_state::open);
  EXPECT_EQ(breaker.metrics().window.slow_calls, 2U);
}

TEST(SlowCalls, CallExactlyAtTheThresholdIsNotSlow) {
  manual_clock clock;
  circuit_breaker<slow_calls<count_window>> breaker{
      {.trip = {.size = 2, .minimum_calls = 2, .slow_call_duration = 1s, .slow_call_ratio = 0.5}},
      clock};
  succeed_after(breaker, clock, 1s);
  succeed_after(breaker, clock, 1s);
  EXPECT_EQ(breaker.metrics().window.slow_calls, 0U);
  EXPECT_EQ(breaker.state(), circuit_state::closed);
  succeed_after(breaker, clock, 1s + 1ns);
  EXPECT_EQ(breaker.state(), circuit_state::open);
}

TEST(SlowCalls, FailureRatioStillOpensWhenCallsAreFast) {
  manual_clock clock;
  circuit_breaker<slow_calls<count_window>> breaker{
      {.trip = {.size = 4, .failure_ratio = 0.5, .minimum_calls = 4, .slow_call_duration = 1s}},
      clock};
  succeed(breaker, clock);
  succeed(breaker, clock);
  fail(breaker, clock);
  fail(breaker, clock);
  EXPECT_EQ(breaker.state(), circuit_state::open);
}

TEST(SlowCalls, TimeWindowCountsSlowCalls) {
  manual_clock clock;
  circuit_breaker<slow_calls<time_window>> breaker{{.trip = {.length = 60s,
                                                             .minimum_calls = 3,
                                                             .slow_call_duration = 1s,
                                                             .slow_call_ratio = 1.0}},
                                                   clock};
  succeed_after(breaker, clock, 2s);
  succeed_after(breaker, clock, 2s);
  EXPECT_EQ(breaker.metrics().window.slow_calls, 2U);
  EXPECT_EQ(breaker.state(), circuit_state::closed);
  succeed_after(breaker, clock, 2s);
  EXPECT_EQ(breaker.state(), circuit_state::open);
}

TEST(SlowCalls, SlowTrialReopensABreakerOpenedForSlowness) {
  manual_clock clock;
  circuit_breaker<slow_calls<count_window>> breaker{
      {.trip = {.size = 1, .minimum_calls = 1, .slow_call_duration = 1s},
       .open_for = stockade::constant{10s}},
      clock};
  succeed_after(breaker, clock, 2s);
  ASSERT_EQ(breaker.state(), circuit_state::open);
  clock.advance(10s);
  EXPECT_EQ(succeed_after(breaker, clock, 2s), ended::succeeded);  // the caller gets its value
  EXPECT_EQ(breaker.state(), circuit_state::open);                 // but the trial failed
  clock.advance(10s);
  succeed_after(breaker, clock, 10ms);
  EXPECT_EQ(breaker.state(), circuit_state::closed);
}

// --- which outcomes count ---------------------------------------------------------------------

TEST(Outcomes, PermanentVerdictNeverCounts) {
  manual_clock clock;
  consecutive_breaker breaker{consecutive(1, 5s), clock};
  for (int i = 0; i < 5; ++i) {
    EXPECT_THROW(call(breaker, clock, []() -> int { throw std::invalid_argument("bad id"); }),
                 std::invalid_argument);
  }
  EXPECT_EQ(breaker.state(), circuit_state::closed);
  EXPECT_EQ(breaker.metrics().window.calls, 0U);
}

TEST(Outcomes, RejectionsOfOtherPoliciesNeverCount) {
  manual_clock clock;
  consecutive_breaker breaker{consecutive(1, 5s), clock};
  for (auto code : {stockade::errc::bulkhead_full, stockade::errc::cancelled,
                    stockade::errc::deadline_already_passed}) {
    EXPECT_THROW(call(breaker, clock, [code]() -> int { throw stockade::error(code); }),
                 stockade::error);
  }
  EXPECT_EQ(breaker.state(), circuit_state::closed);
}

TEST(Outcomes, OuterBreakerIgnoresInnerBreakerRejections) {
  manual_clock clock;
  consecutive_breaker outer{consecutive(1, 5s), clock};
  consecutive_breaker inner{consecutive(1, 5s), clock};
  inner.isolate();
  stockade::context ctx{clock};
  const auto policy = stockade::pipeline{std::ref(outer), std::ref(inner)};
  for (int i = 0; i < 3; ++i) EXPECT_THROW(policy(ctx, [] { return 1; }), stockade::error);
  EXPECT_EQ(outer.state(), circuit_state::closed);
}

TEST(Outcomes, TimeoutOfAnInnerLayerCountsAsFailure) {
  manual_clock clock;
  consecutive_breaker breaker{consecutive(1, 5s), clock};
  EXPECT_THROW(
      call(breaker, clock, []() -> int { throw stockade::error(stockade::errc::timeout); }),
      stockade::error);
  EXPECT_EQ(breaker.state(), circuit_state::open);
}

struct reconnect_needed : std::runtime_error {
  reconnect_needed() : std::runtime_error("reconnect") {}
};

TEST(Outcomes, FailureVerdictsAreConfigurable) {
  manual_clock clock;
  consecutive_breaker breaker{{.trip = {.threshold = 1}, .failure_verdicts = {verdict::fatal}},
                              clock};
  const auto policy = stockade::pipeline{std::ref(breaker)}.classify_with(
      stockade::classifier{stockade::on<reconnect_needed, verdict::fatal>{}});
  stockade::context ctx{clock};
  EXPECT_THROW(policy(ctx, []() -> int { throw dependency_down{}; }), dependency_down);
  EXPECT_EQ(breaker.state(), circuit_state::closed);  // transient: not a failure here
  EXPECT_THROW(policy(ctx, []() -> int { throw reconnect_needed{}; }), reconnect_needed);
  EXPECT_EQ(breaker.state(), circuit_state::open);
}

struct reply {
  int status;
};

TEST(Outcomes, ReturnedValueClassifiedAsFailureCounts) {
  manual_clock clock;
  consecutive_breaker breaker{consecutive(2, 5s), clock};
  const auto policy =
      stockade::pipeline{std::ref(breaker)}.classify_with(stockade::classifier{stockade::on_result(
          [](const reply& r) { return r.status >= 500 ? verdict::transient : verdict::success; })});
  stockade::context ctx{clock};
  EXPECT_EQ(policy(ctx, [] { return reply{503}; }).status, 503);
  EXPECT_EQ(policy(ctx, [] { return reply{503}; }).status, 503);
  EXPECT_EQ(breaker.state(), circuit_state::open);
}

// --- open -------------------------------------------------------------------------------------

TEST(Open, RejectsWithCircuitOpenAndRemainingTimeAsRetryAfter) {
  manual_clock clock;
  consecutive_breaker breaker{consecutive(1, 10s), clock};
  trip(breaker, clock);
  clock.advance(3s);
  int ran = 0;
  stockade::outcome rejection;
  stockade::duration retry_after{};
  EXPECT_EQ(call(
                breaker, clock,
                [&] {
                  ++ran;
                  return 1;
                },
                &rejection, &retry_after),
            ended::open);
  EXPECT_EQ(ran, 0);
  EXPECT_EQ(retry_after, 7s);
  EXPECT_TRUE(rejection.rejected);
  EXPECT_EQ(rejection.retry_after, 7s);
  EXPECT_FALSE(rejection.is_dependency_failure());
  EXPECT_EQ(breaker.metrics().open_remaining, 7s);
}

TEST(Open, BecomesHalfOpenExactlyWhenOpenForHasPassed) {
  manual_clock clock;
  consecutive_breaker breaker{consecutive(1, 10s), clock};
  trip(breaker, clock);
  clock.advance(10s - 1ns);
  EXPECT_EQ(breaker.state(), circuit_state::open);
  clock.advance(1ns);
  EXPECT_EQ(breaker.state(), circuit_state::half_open);
}

using stockade_test::lagging_clock;

/// Trips `breaker` (threshold 1) with one failure on `clock`.
void trip_on(consecutive_breaker& breaker, stockade::clock& clock) {
  stockade::context ctx{clock};
  const auto failing = [](stockade::context&) -> int { throw dependency_down{}; };
  (void)stockade::pipeline{std::ref(breaker)}.try_call(ctx, failing);
  ASSERT_EQ(breaker.state(), circuit_state::open);
}

TEST(Open, DecidesFromARecentReadingSoItNeverHalfOpensEarly) {
  lagging_clock clock{3ms};
  consecutive_breaker breaker{consecutive(1, 10s), clock};
  trip_on(breaker, clock);
  const auto attempt = [&] {
    stockade::context ctx{clock};
    return stockade::pipeline{std::ref(breaker)}.try_call(ctx, [] { return 1; });
  };
  clock.inner().advance(10s);  // the open time has passed, but not yet by the recent reading
  const auto refused = attempt();
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code(), stockade::errc::circuit_open);
  EXPECT_EQ(refused.error().retry_after(), 3ms);  // never less than the time really left
  EXPECT_EQ(breaker.state(), circuit_state::open);
  EXPECT_EQ(breaker.metrics().open_remaining, 3ms);
  clock.inner().advance(3ms);
  EXPECT_EQ(breaker.state(), circuit_state::half_open);
  EXPECT_TRUE(attempt().has_value());
  EXPECT_EQ(breaker.state(), circuit_state::closed);
}

TEST(Open, AStepThatHasReadTheExactTimeDecidesFromIt) {
  lagging_clock clock{3ms};
  consecutive_breaker breaker{consecutive(1, 10s), clock};
  trip_on(breaker, clock);
  clock.inner().advance(10s);
  // The timeout reads now() for its deadline: the breaker reuses that reading, exact.
  const auto stack = stockade::pipeline{stockade::timeout{1min}, std::ref(breaker)};
  stockade::context ctx{clock};
  EXPECT_TRUE(stack.try_call(ctx, [] { return 1; }).has_value());
}

TEST(CircuitBreakerParts, ClockAndObserverComeInAnyOrderAndEachMayBeLeftOut) {
  manual_clock clock;
  recorder seen;
  using observed = circuit_breaker<consecutive_failures, stockade::observer_ref<recorder>>;
  observed clock_first{consecutive(1, 10s), clock, stockade::observer_ref{seen}};
  observed observer_first{consecutive(1, 10s), stockade::observer_ref{seen}, clock};
  const circuit_breaker on_real_clock{consecutive(1, 10s), stockade::observer_ref{seen}};
  static_assert(std::is_same_v<decltype(on_real_clock), const observed>);
  trip(clock_first, clock);
  trip(observer_first, clock);
  EXPECT_EQ(seen.changes.size(), 2U);
  clock.advance(10s);  // both read the manual clock
  EXPECT_EQ(clock_first.state(), circuit_state::half_open);
  EXPECT_EQ(observer_first.state(), circuit_state::half_open);
}

// --- half-open --------------------------------------------------------------------------------

TEST(HalfOpen, ClosesAfterEveryTrialSucceeds) {
  manual_clock clock;
  consecutive_breaker breaker{
      {.trip = {.threshold = 1}, .open_for = stockade::constant{5s}, .half_open_permits = 3},
      clock};
  trip(breaker, clock);
  clock.advance(5s);
  succeed(breaker, clock);
  succeed(breaker, clock);
  EXPECT_EQ(breaker.state(), circuit_state::half_open);
  succeed(breaker, clock);
  EXPECT_EQ(breaker.state(), circuit_state::closed);
}

TEST(HalfOpen, FailedTrialReopens) {
  manual_clock clock;
  consecutive_breaker breaker{
      {.trip = {.threshold = 1}, .open_for = stockade::constant{5s}, .half_open_permits = 3},
      clock};
  trip(breaker, clock);
  clock.advance(5s);
  succeed(breaker, clock);
  EXPECT_EQ(fail(breaker, clock), ended::failed);
  EXPECT_EQ(breaker.state(), circuit_state::open);
  EXPECT_EQ(breaker.metrics().open_remaining, 5s);
}

TEST(HalfOpen, RejectsCallsBeyondPermits) {
  manual_clock clock;
  consecutive_breaker breaker{
      {.trip = {.threshold = 1}, .open_for = stockade::constant{5s}, .half_open_permits = 2},
      clock};
  trip(breaker, clock);
  clock.advance(5s);
  // Trials nest: the first holds its permit while the second runs, the second while a third
  // tries: the third is beyond the permits.
  ended third = ended::succeeded;
  const ended first = call(breaker, clock, [&] {
    call(breaker, clock, [&] {
      third = succeed(breaker, clock);
      return 1;
    });
    return 1;
  });
  EXPECT_EQ(first, ended::succeeded);
  EXPECT_EQ(third, ended::open);
  EXPECT_EQ(breaker.state(), circuit_state::closed);  // both trials succeeded
}

TEST(HalfOpen, ConcurrentTrialsBeyondPermitsAreRejected) {
  manual_clock clock;
  consecutive_breaker breaker{
      {.trip = {.threshold = 1}, .open_for = stockade::constant{5s}, .half_open_permits = 2},
      clock};
  trip(breaker, clock);
  clock.advance(5s);
  std::latch trials_running{2};
  std::latch release{1};
  std::vector<std::thread> trials;
  for (int i = 0; i < 2; ++i) {
    trials.emplace_back([&] {
      call(breaker, clock, [&] {
        trials_running.count_down();
        release.wait();
        return 1;
      });
    });
  }
  trials_running.wait();
  EXPECT_EQ(breaker.metrics().trials_in_flight, 2U);
  EXPECT_EQ(succeed(breaker, clock), ended::open);
  EXPECT_EQ(succeed(breaker, clock), ended::open);
  release.count_down();
  for (auto& t : trials) t.join();
  EXPECT_EQ(breaker.state(), circuit_state::closed);
  EXPECT_EQ(breaker.metrics().trials_in_flight, 0U);
}

TEST(HalfOpen, SuccessRatioDecidesWhenTrialsFail) {
  manual_clock clock;
  consecutive_breaker breaker{{.trip = {.threshold = 1},
                               .open_for = stockade::constant{5s},
                               .half_open_permits = 4,
                               .half_open_success_ratio = 0.5},
                              clock};
  trip(breaker, clock);
  clock.advance(5s);
  fail(breaker, clock);
  fail(breaker, clock);  // 2 failures of 4 allowed
  EXPECT_EQ(breaker.state(), circuit_state::half_open);
  succeed(breaker, clock);
  EXPECT_EQ(breaker.state(), circuit_state::half_open);
  succeed(breaker, clock);  // 2 of 4: the ratio is reached
  EXPECT_EQ(breaker.state(), circuit_state::closed);
}

TEST(HalfOpen, ReopensOnceTheSuccessRatioCannotBeReached) {
  manual_clock clock;
  consecutive_breaker breaker{{.trip = {.threshold = 1},
                               .open_for = stockade::constant{5s},
                               .half_open_permits = 4,
                               .half_open_success_ratio = 0.5},
                              clock};
  trip(breaker, clock);
  clock.advance(5s);
  succeed(breaker, clock);
  fail(breaker, clock);
  fail(breaker, clock);
  EXPECT_EQ(breaker.state(), circuit_state::half_open);
  fail(breaker, clock);  // 3 failures: at most 1 of 4 can succeed now
  EXPECT_EQ(breaker.state(), circuit_state::open);
}

TEST(HalfOpen, TrialTimingOutReopensAndReturnsItsPermit) {
  manual_clock clock;
  consecutive_breaker breaker{consecutive(1, 5s), clock};
  trip(breaker, clock);
  clock.advance(5s);
  EXPECT_THROW(
      call(breaker, clock, []() -> int { throw stockade::error(stockade::errc::timeout); }),
      stockade::error);
  EXPECT_EQ(breaker.state(), circuit_state::open);
  EXPECT_EQ(breaker.metrics().trials_in_flight, 0U);
}

TEST(HalfOpen, TrialWithIgnoredOutcomeReturnsItsPermitForAnother) {
  manual_clock clock;
  consecutive_breaker breaker{consecutive(1, 5s), clock};  // one permit
  trip(breaker, clock);
  clock.advance(5s);
  EXPECT_THROW(call(breaker, clock, []() -> int { throw std::invalid_argument("bad"); }),
               std::invalid_argument);
  EXPECT_THROW(
      call(breaker, clock, []() -> int { throw stockade::error(stockade::errc::cancelled); }),
      stockade::error);
  EXPECT_EQ(breaker.state(), circuit_state::half_open);
  EXPECT_EQ(breaker.metrics().trials_in_flight, 0U);
  EXPECT_EQ(succeed(breaker, clock), ended::succeeded);  // the permit came back
  EXPECT_EQ(breaker.state(), circuit_state::closed);
}

struct classifier_breaks {};

TEST(HalfOpen, PermitReturnsEvenWhenClassificationThrows) {
  manual_clock clock;
  consecutive_breaker breaker{consecutive(1, 5s), clock};
  trip(breaker, clock);
  clock.advance(5s);
  // Every classification throws, so the breaker never learns the trial's outcome.
  const auto policy = stockade::pipeline{std::ref(breaker)}.classify_with(stockade::classifier{
      stockade::when<dependency_down>(
          [](const dependency_down&) -> verdict { throw classifier_breaks{}; }),
      stockade::when<classifier_breaks>(
          [](const classifier_breaks&) -> verdict { throw classifier_breaks{}; })});
  stockade::context ctx{clock};
  EXPECT_ANY_THROW(policy(ctx, []() -> int { throw dependency_down{}; }));
  EXPECT_EQ(breaker.metrics().trials_in_flight, 0U);
  EXPECT_EQ(succeed(breaker, clock), ended::succeeded);
  EXPECT_EQ(breaker.state(), circuit_state::closed);
}

TEST(HalfOpen, IsolateDuringHalfOpenIgnoresTheTrialStillRunning) {
  manual_clock clock;
  consecutive_breaker breaker{consecutive(1, 5s), clock};
  trip(breaker, clock);
  clock.advance(5s);
  const ended trial = call(breaker, clock, [&] {
    breaker.isolate();
    return 1;
  });
  EXPECT_EQ(trial, ended::succeeded);
  EXPECT_EQ(breaker.state(), circuit_state::isolated);  // the success did not close it
  EXPECT_EQ(breaker.metrics().trials_in_flight, 0U);
  EXPECT_EQ(succeed(breaker, clock), ended::isolated);
}

TEST(HalfOpen, ResetDuringHalfOpenClosesAndIgnoresTheLateTrial) {
  manual_clock clock;
  consecutive_breaker breaker{consecutive(1, 5s), clock};
  trip(breaker, clock);
  clock.advance(5s);
  const ended trial = call(breaker, clock, [&]() -> int {
    breaker.reset();
    throw dependency_down{};
  });
  EXPECT_EQ(trial, ended::failed);
  EXPECT_EQ(breaker.state(), circuit_state::closed);  // the late failure did not reopen it
  EXPECT_EQ(breaker.metrics().window.failures, 0U);   // nor count in the new window
  EXPECT_EQ(breaker.metrics().trials_in_flight, 0U);
}

TEST(HalfOpen, CallAdmittedBeforeATransitionIsNotCountedAfterIt) {
  manual_clock clock;
  counted_breaker breaker{counted(4, 0.5, 1), clock};
  const ended late = call(breaker, clock, [&]() -> int {
    breaker.isolate();
    breaker.reset();  // a new closed epoch begins while this call runs
    throw dependency_down{};
  });
  EXPECT_EQ(late, ended::failed);
  EXPECT_EQ(breaker.state(), circuit_state::closed);
  EXPECT_EQ(breaker.metrics().window.calls, 0U);
}

// --- open duration ------------------------------------------------------------------------------

TEST(OpenDuration, GrowsAfterEachFailedHalfOpenUpToTheCap) {
  manual_clock clock;
  consecutive_breaker breaker{
      {.trip = {.threshold = 1}, .open_for = stockade::exponential{1s, 2.0, 4s}}, clock};
  trip(breaker, clock);
  std::vector<stockade::duration> open_for;
  for (int round = 0; round < 4; ++round) {
    open_for.push_back(breaker.metrics().open_remaining);
    clock.advance(open_for.back());
    fail(breaker, clock);  // the trial fails
  }
  EXPECT_EQ(open_for, (std::vector<stockade::duration>{1s, 2s, 4s, 4s}));
  EXPECT_EQ(breaker.metrics().failed_half_opens, 4U);
}

TEST(OpenDuration, StartsOverAfterTheBreakerCloses) {
  manual_clock clock;
  consecutive_breaker breaker{
      {.trip = {.threshold = 1}, .open_for = stockade::exponential{1s, 2.0, 60s}}, clock};
  trip(breaker, clock);
  clock.advance(1s);
  fail(breaker, clock);
  EXPECT_EQ(breaker.metrics().open_remaining, 2s);
  clock.advance(2s);
  succeed(breaker, clock);
  ASSERT_EQ(breaker.state(), circuit_state::closed);
  trip(breaker, clock);
  EXPECT_EQ(breaker.metrics().open_remaining, 1s);
}

TEST(OpenDuration, JitterKeepsItWithinTheSchedule) {
  manual_clock clock;
  consecutive_breaker breaker{{.trip = {.threshold = 1},
                               .open_for = stockade::exponential{8s, 2.0, 16s},
                               .open_jitter = stockade::jitter::full()},
                              clock};
  bool varied = false;
  std::optional<stockade::duration> first;
  for (int round = 0; round < 50; ++round) {
    breaker.reset();
    trip(breaker, clock);
    const stockade::duration open_for = breaker.metrics().open_remaining;
    EXPECT_GE(open_for, 0s);
    EXPECT_LE(open_for, 8s);
    if (first && *first != open_for) varied = true;
    if (!first) first = open_for;
  }
  EXPECT_TRUE(varied);
}

/// A user-defined schedule (the backoff concept): 1 s, 2 s, 3 s, ... with no cap of its own.
struct one_more_second {
  stockade::duration delay(int n) const { return std::chrono::seconds(n); }
};

TEST(OpenDuration, AcceptsAUserDefinedSchedule) {
  manual_clock clock;
  circuit_breaker<consecutive_failures, stockade::null_observer, one_more_second> breaker{
      {.trip = {.threshold = 1}}, clock};
  trip(breaker, clock);
  EXPECT_EQ(breaker.metrics().open_remaining, 1s);
  clock.advance(1s);
  fail(breaker, clock);
  EXPECT_EQ(breaker.metrics().open_remaining, 2s);
}

// --- health probe
// ---------------------------------------------------------------------------------

TEST(HealthProbe, HealthyProbeClosesAndTheCallRuns) {
  manual_clock clock;
  consecutive_breaker breaker{consecutive(1, 5s), clock};
  int probes = 0;
  breaker.set_health_probe([&] {
    ++probes;
    return true;
  });
  trip(breaker, clock);
  clock.advance(5s);
  EXPECT_EQ(succeed(breaker, clock), ended::succeeded);
  EXPECT_EQ(probes, 1);
  EXPECT_EQ(breaker.state(), circuit_state::closed);
}

TEST(HealthProbe, UnhealthyProbeReopensWithoutCallingTheDependency) {
  manual_clock clock;
  consecutive_breaker breaker{
      {.trip = {.threshold = 1}, .open_for = stockade::exponential{1s, 3.0, 60s}}, clock};
  breaker.set_health_probe([](stockade::context&) { return false; });
  trip(breaker, clock);
  clock.advance(1s);
  int ran = 0;
  stockade::duration retry_after{};
  EXPECT_EQ(call(
                breaker, clock,
                [&] {
                  ++ran;
                  return 1;
                },
                nullptr, &retry_after),
            ended::open);
  EXPECT_EQ(ran, 0);
  EXPECT_EQ(retry_after, 3s);  // grown, as after a failed trial
  EXPECT_EQ(breaker.state(), circuit_state::open);
}

TEST(HealthProbe, ProbeThatThrowsCountsAsUnhealthy) {
  manual_clock clock;
  consecutive_breaker breaker{consecutive(1, 5s), clock};
  breaker.set_health_probe([]() -> bool { throw dependency_down{}; });
  trip(breaker, clock);
  clock.advance(5s);
  EXPECT_EQ(succeed(breaker, clock), ended::open);
  EXPECT_EQ(breaker.state(), circuit_state::open);
}

TEST(HealthProbe, RunsOnceHoweverManyCallersArrive) {
  manual_clock clock;
  consecutive_breaker breaker{consecutive(1, 5s), clock};
  std::atomic<int> probes{0};
  std::latch probing{1};
  std::latch release{1};
  breaker.set_health_probe([&] {
    probes.fetch_add(1);
    probing.count_down();
    release.wait();
    return true;
  });
  trip(breaker, clock);
  clock.advance(5s);
  std::thread prober([&] { EXPECT_EQ(succeed(breaker, clock), ended::succeeded); });
  probing.wait();
  for (int i = 0; i < 5; ++i) EXPECT_EQ(succeed(breaker, clock), ended::open);
  release.count_down();
  prober.join();
  EXPECT_EQ(probes.load(), 1);
  EXPECT_EQ(breaker.state(), circuit_state::closed);
  EXPECT_EQ(succeed(breaker, clock), ended::succeeded);
  EXPECT_EQ(probes.load(), 1);
}

TEST(HealthProbe, GetsAContextOfItsOwnWithProbeTimeoutAndTheCallersName) {
  manual_clock clock;
  consecutive_breaker breaker{
      {.trip = {.threshold = 1}, .open_for = stockade::constant{5s}, .probe_timeout = 2s}, clock};
  std::string probe_name;
  stockade::time_point probe_deadline{};
  bool probe_could_stop = true;
  breaker.set_health_probe([&](stockade::context& probe_ctx) {
    probe_name = std::string(probe_ctx.name());
    probe_deadline = probe_ctx.deadline();
    probe_could_stop = probe_ctx.caller_stop_token().stop_possible();
    // A probe may run its own pipeline: that must not disturb the caller's context.
    return stockade::pipeline{stockade::pass_through{}}(probe_ctx, [] { return true; });
  });
  trip(breaker, clock);
  clock.advance(5s);
  std::stop_source caller_stop;
  stockade::context ctx{clock};
  ctx.set_name("query").set_timeout(300ms).set_stop_token(caller_stop.get_token());
  const auto policy = stockade::pipeline{std::ref(breaker)};
  EXPECT_THROW(policy(ctx, []() -> int { throw dependency_down{}; }), dependency_down);
  EXPECT_EQ(probe_name, "query");
  // Shared work: its own limit, not the caller's 300 ms, and not the caller's stop token.
  EXPECT_EQ(probe_deadline, clock.now() + 2s);
  EXPECT_FALSE(probe_could_stop);
  EXPECT_EQ(breaker.state(), circuit_state::open);  // the call after the probe failed: counted
}

TEST(HealthProbe, IsNotRunForACallerWhoseDeadlineHasPassed) {
  manual_clock clock;
  consecutive_breaker breaker{consecutive(1, 5s), clock};
  int probes = 0;
  breaker.set_health_probe([&](stockade::context& probe_ctx) {
    ++probes;
    return !probe_ctx.expired();  // a probe run for such a caller would fail for its sake
  });
  trip(breaker, clock);
  clock.advance(5s);
  const auto policy = stockade::pipeline{std::ref(breaker)};
  stockade::context late{clock};
  late.set_deadline(clock.now());
  const auto refused = policy.try_call(late, [] { return 1; });
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code(), stockade::errc::deadline_already_passed);
  EXPECT_TRUE(refused.outcome().rejected);
  EXPECT_EQ(probes, 0);
  EXPECT_EQ(breaker.state(), circuit_state::half_open);  // not reopened, open_for not grown
  EXPECT_EQ(breaker.metrics().failed_half_opens, 0U);
  EXPECT_EQ(succeed(breaker, clock), ended::succeeded);  // the next caller probes
  EXPECT_EQ(probes, 1);
  EXPECT_EQ(breaker.state(), circuit_state::closed);
}

TEST(HealthProbe, IsNotRunForACancelledCaller) {
  manual_clock clock;
  consecutive_breaker breaker{consecutive(1, 5s), clock};
  int probes = 0;
  breaker.set_health_probe([&] {
    ++probes;
    return true;
  });
  trip(breaker, clock);
  clock.advance(5s);
  std::stop_source stop;
  stop.request_stop();
  stockade::context cancelled{clock};
  cancelled.set_stop_token(stop.get_token());
  EXPECT_EQ(stockade_test::error_of(
                [&] { stockade::pipeline{std::ref(breaker)}(cancelled, [] { return 1; }); }),
            stockade::errc::cancelled);
  EXPECT_EQ(probes, 0);
  EXPECT_EQ(breaker.state(), circuit_state::half_open);
}

TEST(HealthProbe, AProbeOutlastingItsCallersDeadlineStillDecides) {
  manual_clock clock;
  consecutive_breaker breaker{consecutive(1, 5s), clock};
  int probes = 0;
  breaker.set_health_probe([&] {
    ++probes;
    clock.advance(500ms);  // longer than the caller's 200 ms, shorter than probe_timeout
    return true;
  });
  trip(breaker, clock);
  clock.advance(5s);
  stockade::context ctx{clock};
  ctx.set_timeout(200ms);
  EXPECT_EQ(stockade::pipeline{std::ref(breaker)}(ctx, [] { return 1; }), 1);
  EXPECT_EQ(probes, 1);
  EXPECT_EQ(breaker.state(), circuit_state::closed);
}

TEST(HealthProbe, AProbeLongerThanProbeTimeoutIsUnhealthy) {
  manual_clock clock;
  consecutive_breaker breaker{
      {.trip = {.threshold = 1}, .open_for = stockade::constant{5s}, .probe_timeout = 1s}, clock};
  breaker.set_health_probe([&] {
    clock.advance(1500ms);
    return true;
  });
  trip(breaker, clock);
  clock.advance(5s);
  EXPECT_EQ(succeed(breaker, clock), ended::open);
  EXPECT_EQ(breaker.state(), circuit_state::open);
}

TEST(HealthProbe, RefusalWhileItRunsHintsAsLongAgainAsItHasRun) {
  manual_clock clock;
  consecutive_breaker breaker{
      {.trip = {.threshold = 1}, .open_for = stockade::constant{5s}, .probe_timeout = 2s}, clock};
  stockade::duration hint{};
  ended nested = ended::succeeded;
  breaker.set_health_probe([&] {
    clock.advance(500ms);
    nested = call(
        breaker, clock, [] { return 1; }, nullptr, &hint);
    return true;
  });
  trip(breaker, clock);
  clock.advance(5s);
  EXPECT_EQ(succeed(breaker, clock), ended::succeeded);
  EXPECT_EQ(nested, ended::open);
  EXPECT_EQ(hint, 500ms);  // at most until its timeout, 1.5 s away
}

/// The operator actions a probe may run across; each ends in a closed breaker.
enum class operator_action { reset, isolate_then_reset, disable_then_reset };

class ProbeAcrossOperatorActions : public ::testing::TestWithParam<operator_action> {};

TEST_P(ProbeAcrossOperatorActions, NeverRunsTwiceAtOnce) {
  manual_clock clock;
  consecutive_breaker breaker{consecutive(1, 5s), clock};
  std::atomic<int> running{0};
  std::atomic<int> most_at_once{0};
  std::atomic<int> probes{0};
  std::latch first_probing{1};
  std::latch release_first{1};
  breaker.set_health_probe([&] {
    const int now_running = running.fetch_add(1) + 1;
    most_at_once.store(std::max(most_at_once.load(), now_running));
    if (probes.fetch_add(1) == 0) {
      first_probing.count_down();
      release_first.wait();
    }
    running.fetch_sub(1);
    return true;
  });
  trip(breaker, clock);
  clock.advance(5s);
  std::thread first([&] { EXPECT_EQ(succeed(breaker, clock), ended::open); });
  first_probing.wait();
  switch (GetParam()) {
    case operator_action::reset:
      break;
    case operator_action::isolate_then_reset:
      breaker.isolate();
      break;
    case operator_action::disable_then_reset:
      breaker.disable();
      break;
  }
  breaker.reset();
  // A new round while the first probe still runs: trip, wait out open_for, and call.
  trip(breaker, clock);
  clock.advance(5s);
  stockade::duration hint{};
  EXPECT_EQ(call(
                breaker, clock, [] { return 1; }, nullptr, &hint),
            ended::open);
  EXPECT_GT(hint, stockade::duration::zero());
  release_first.count_down();
  first.join();
  EXPECT_EQ(most_at_once.load(), 1);
  EXPECT_EQ(probes.load(), 1);  // the first caller ran one probe, not a second for the new round
  // Its verdict belonged to a round that is over: the new round is still open for a probe.
  EXPECT_EQ(breaker.state(), circuit_state::half_open);
  EXPECT_EQ(succeed(breaker, clock), ended::succeeded);
  EXPECT_EQ(probes.load(), 2);
  EXPECT_EQ(breaker.state(), circuit_state::closed);
}

INSTANTIATE_TEST_SUITE_P(EveryAction, ProbeAcrossOperatorActions,
                         ::testing::Values(operator_action::reset,
                                           operator_action::isolate_then_reset,
                                           operator_action::disable_then_reset));

TEST(HalfOpen, RefusalHintsAsLongAgainAsTheTrialHasRunButNotPastItsDeadline) {
  manual_clock clock;
  consecutive_breaker breaker{consecutive(1, 5s), clock};
  trip(breaker, clock);
  clock.advance(5s);
  stockade::duration early{};
  stockade::duration late{};
  stockade::context trial{clock};
  trial.set_timeout(2s);
  stockade::pipeline{std::ref(breaker)}(trial, [&] {
    clock.advance(300ms);
    call(
        breaker, clock, [] { return 1; }, nullptr, &early);
    clock.advance(1200ms);  // 1.5 s into a trial due by 2 s
    call(
        breaker, clock, [] { return 1; }, nullptr, &late);
    return 1;
  });
  EXPECT_EQ(early, 300ms);  // waits double while a slow trial runs, stay short for quick ones
  EXPECT_EQ(late, 500ms);   // the trial's verdict is due by its deadline
}

TEST(HalfOpen, RefusalHintIsAtLeastAMillisecondAndAtMostThePrecedingOpenDuration) {
  manual_clock clock;
  consecutive_breaker breaker{consecutive(1, 5s), clock};
  trip(breaker, clock);
  clock.advance(5s);
  stockade::duration at_once{};
  stockade::duration much_later{};
  call(breaker, clock, [&] {  // a trial without a deadline
    call(
        breaker, clock, [] { return 1; }, nullptr, &at_once);
    clock.advance(8s);
    call(
        breaker, clock, [] { return 1; }, nullptr, &much_later);
    return 1;
  });
  EXPECT_EQ(at_once, 1ms);
  EXPECT_EQ(much_later, 5s);
}

TEST(HalfOpen, AnOuterRetryWaitsItsHintInsteadOfItsBackoff) {
  manual_clock clock{manual_clock::sleeps::wait_for_advance};
  consecutive_breaker breaker{consecutive(1, 5s), clock};
  trip(breaker, clock);
  clock.advance(5s);
  std::latch in_trial{1};
  std::latch release_trial{1};
  std::thread trial([&] {
    stockade::context ctx{clock};
    ctx.set_timeout(2s);
    stockade::pipeline{std::ref(breaker)}(ctx, [&] {
      in_trial.count_down();
      release_trial.wait();
      return 1;
    });
  });
  in_trial.wait();
  int runs = 0;
  int result = 0;
  std::thread caller([&] {
    stockade::context ctx{clock};
    result =
        stockade::pipeline{stockade::retry{{.max_attempts = 2, .jitter = stockade::jitter::none()}},
                           std::ref(breaker)}(ctx, [&] {
          ++runs;
          return 7;
        });
  });
  ASSERT_TRUE(clock.await_waiting(1));  // refused once, the retry waits its hint
  release_trial.count_down();
  trial.join();  // the trial closed the breaker
  clock.advance(2s);
  caller.join();
  EXPECT_EQ(result, 7);
  EXPECT_EQ(runs, 1);
  EXPECT_EQ(clock.total_slept(), 1ms);  // the hint (the trial had just begun), not a backoff
}

// --- operator controls ------------------------------------------------------------------------

TEST(Operator, IsolateRejectsWithCircuitIsolatedUntilReset) {
  manual_clock clock;
  circuit_breaker<> breaker{{}, clock};
  breaker.isolate();
  stockade::outcome rejection;
  EXPECT_EQ(call(
                breaker, clock, [] { return 1; }, &rejection),
            ended::isolated);
  EXPECT_TRUE(rejection.rejected);
  clock.advance(1h);
  EXPECT_EQ(breaker.state(), circuit_state::isolated);  // no open duration ends it
  breaker.reset();
  EXPECT_EQ(succeed(breaker, clock), ended::succeeded);
}

TEST(Operator, ResetClosesAndEmptiesTheWindow) {
  manual_clock clock;
  counted_breaker breaker{counted(10, 0.5, 4), clock};
  fail(breaker, clock);
  fail(breaker, clock);
  breaker.reset();
  EXPECT_EQ(breaker.metrics().window.calls, 0U);
  fail(breaker, clock);
  fail(breaker, clock);
  EXPECT_EQ(breaker.state(), circuit_state::closed);  // only 2 calls since the reset
}

TEST(Operator, DisabledLetsEveryCallThroughButKeepsCounting) {
  manual_clock clock;
  consecutive_breaker breaker{consecutive(2, 5s), clock};
  breaker.disable();
  for (int i = 0; i < 5; ++i) EXPECT_EQ(fail(breaker, clock), ended::failed);
  EXPECT_EQ(breaker.state(), circuit_state::disabled);
  EXPECT_EQ(breaker.metrics().window.failures, 5U);
  breaker.reset();
  EXPECT_EQ(breaker.state(), circuit_state::closed);
  EXPECT_EQ(breaker.metrics().window.failures, 0U);
}

// --- events and metrics -----------------------------------------------------------------------

TEST(Events, ReportedForEveryStateChangeAndRejection) {
  manual_clock clock;
  recorder seen;
  recorded_breaker breaker{
      {.trip = {.threshold = 1}, .open_for = stockade::constant{5s}, .name = "db"},
      clock,
      stockade::observer_ref<recorder>{seen}};
  fail(breaker, clock);     // closed -> open
  succeed(breaker, clock);  // rejected
  clock.advance(5s);
  succeed(breaker, clock);  // open -> half_open -> closed
  breaker.isolate();        // closed -> isolated
  succeed(breaker, clock);  // rejected
  breaker.disable();        // isolated -> disabled
  breaker.reset();          // disabled -> closed
  using S = circuit_state;
  EXPECT_EQ(seen.changes, (std::vector<std::pair<S, S>>{{S::closed, S::open},
                                                        {S::open, S::half_open},
                                                        {S::half_open, S::closed},
                                                        {S::closed, S::isolated},
                                                        {S::isolated, S::disabled},
                                                        {S::disabled, S::closed}}));
  ASSERT_EQ(seen.rejections.size(), 2U);
  EXPECT_EQ(seen.rejections[0].state, S::open);
  EXPECT_EQ(seen.rejections[0].retry_after, 5s);
  EXPECT_EQ(seen.rejections[0].breaker, "db");
  EXPECT_EQ(seen.rejections[1].state, S::isolated);
  EXPECT_EQ(seen.change_events[0].open_for, 5s);
  EXPECT_EQ(seen.change_events[0].window.failures, 1U);
}

TEST(Events, ThrowingObserverCannotChangeTheCallsResult) {
  manual_clock clock;
  auto throwing = stockade::callback_observer{[](const auto&) { throw std::runtime_error("x"); }};
  circuit_breaker<consecutive_failures, decltype(throwing)> breaker{
      {.trip = {.threshold = 1}}, clock, throwing};
  EXPECT_EQ(fail(breaker, clock), ended::failed);
  EXPECT_EQ(breaker.state(), circuit_state::open);
  EXPECT_EQ(succeed(breaker, clock), ended::open);
}

TEST(Metrics, SnapshotReportsCountsRejectionsAndSince) {
  manual_clock clock;
  counted_breaker breaker{counted(10, 0.5, 4), clock};
  const stockade::time_point built = clock.now();
  succeed(breaker, clock);
  succeed(breaker, clock);
  fail(breaker, clock);
  auto snapshot = breaker.metrics();
  EXPECT_EQ(snapshot.state, circuit_state::closed);
  EXPECT_EQ(snapshot.since, built);
  EXPECT_EQ(snapshot.window.calls, 3U);
  EXPECT_EQ(snapshot.window.failures, 1U);
  clock.advance(1s);
  fail(breaker, clock);  // 2 of 4: opens
  succeed(breaker, clock);
  succeed(breaker, clock);
  snapshot = breaker.metrics();
  EXPECT_EQ(snapshot.state, circuit_state::open);
  EXPECT_EQ(snapshot.since, built + 1s);
  EXPECT_EQ(snapshot.rejections, 2U);
  EXPECT_EQ(snapshot.times_opened, 1U);
  EXPECT_EQ(snapshot.open_remaining, 10s);
}

}  // namespace

namespace {

// g++ 12 once crashed compiling a breaker built in another class's default member initializer.
struct owner_of_a_breaker {
  stockade::circuit_breaker<stockade::count_window> breaker{
      {.trip = {.size = 10, .failure_ratio = 0.5, .minimum_calls = 5}}};
};

TEST(CircuitBreakerOptions, CanBeBuiltInADefaultMemberInitializer) {
  owner_of_a_breaker owner;
  EXPECT_EQ(owner.breaker.options().trip.size, 10U);
}

}  // namespace
