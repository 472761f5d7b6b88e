// Every invalid value of every policy's configuration, in one table: each is refused when the
// policy is built, with a std::invalid_argument naming the policy, the field and the value, and
// the same value in a constant expression fails to compile. One test case per invalid value.
// (Fault injection is left out of the table: tests/fault_injection_test.cpp already checks the
// exact message and the compile-time refusal of each of its invalid values.)
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <functional>
#include <limits>
#include <memory>
#include <ostream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <stockade/breaker_registry.hpp>
#include <stockade/bulkhead.hpp>
#include <stockade/circuit_breaker.hpp>
#include <stockade/detached_timeout.hpp>
#include <stockade/health_check.hpp>
#include <stockade/manual_clock.hpp>
#include <stockade/resource.hpp>
#include <stockade/retry.hpp>
#include <stockade/retry_budget.hpp>
#include <stockade/timeout.hpp>
#include <stockade/trip_strategy.hpp>
#include <stockade/warmup_gate.hpp>

namespace {

using namespace std::chrono_literals;
using stockade::backoff_schedule;
using stockade::count_window;
using stockade::duration;
using stockade::jitter;
using stockade::verdict;
using stockade::verdict_set;
using stockade::detail::value_text;
using stockade::testing::manual_clock;

constexpr double nan = std::numeric_limits<double>::quiet_NaN();
constexpr double infinity = std::numeric_limits<double>::infinity();

/// One invalid value: how to build a policy with it, and what the refusal must say.
struct refusal_case {
  std::string label;            ///< the test's name
  std::function<void()> build;  ///< builds the policy with the invalid value
  std::string field;            ///< "stockade::<policy>: <field> " must appear in the message
  std::string value;            ///< the value as the message prints it, "(got <value>)"
};

std::ostream& operator<<(std::ostream& out, const refusal_case& c) { return out << c.label; }

// --- the policies, each built with one set of options -----------------------------------------

struct client {};

void build_retry(stockade::retry_options<> options) { stockade::retry refused{options}; }
void build_token_budget(stockade::token_budget_options options) {
  stockade::token_budget refused{options};
}
void build_percent_budget(stockade::percent_budget_options options) {
  manual_clock clock;
  stockade::percent_budget refused{options, clock};
}
void build_bulkhead(stockade::bulkhead_options options) { stockade::bulkhead<> refused{options}; }
void build_timeout(duration limit) { stockade::timeout<> refused{limit}; }
void build_detached_timeout(duration limit, stockade::detached_timeout_options options = {}) {
  stockade::detached_timeout<> refused{limit, options};
}
void build_warmup_gate(stockade::warmup_gate_options options) {
  manual_clock clock;
  stockade::warmup_gate refused{[] {}, options, clock};
}
void build_health_check(stockade::health_check_options options) {
  manual_clock clock;
  stockade::health_check refused{[] { return true; }, options, clock};
}
void build_resource(stockade::resource_options options,
                    stockade::resource_hooks<client> hooks = {.create = [] { return client{}; }}) {
  manual_clock clock;
  stockade::resource<client> refused{std::move(hooks), options, clock};
}
template <class Trip = count_window>
void build_breaker(stockade::circuit_breaker_options<Trip> options) {
  manual_clock clock;
  stockade::circuit_breaker<Trip> refused{options, clock};
}
void build_registry(stockade::breaker_registry_options limits,
                    stockade::circuit_breaker_options<> each = {}) {
  manual_clock clock;
  stockade::breaker_registry<std::string> refused{each, limits, clock};
}

template <class T>
std::string got(const T& value) {
  return value_text(value);
}

// --- the schedules and jitters every holder of one must refuse ---------------------------------

struct bad_backoff {
  const char* label;
  backoff_schedule schedule;
  const char* field;
  std::string value;
};

std::vector<bad_backoff> bad_backoffs() {
  using stockade::constant;
  using stockade::exponential;
  using stockade::linear;
  return {
      {"ConstantNegativeInterval", constant{-1ms}, "constant: interval", got(-1ms)},
      {"LinearNegativeInitial", linear{-1s, 1s, 2s}, "linear: initial", got(-1s)},
      {"LinearNegativeIncrement", linear{1s, -1s, 2s}, "linear: increment", got(-1s)},
      {"LinearCapBelowInitial", linear{2s, 1s, 1s}, "linear: max_delay", got(1s)},
      {"ExponentialNegativeInitial", exponential{-1ms, 2.0, 1s}, "exponential: initial", got(-1ms)},
      {"ExponentialMultiplierBelowOne", exponential{1ms, 0.5, 1s}, "exponential: multiplier",
       got(0.5)},
      {"ExponentialMultiplierAbove1000", exponential{1ms, 1000.5, 1s}, "exponential: multiplier",
       got(1000.5)},
      {"ExponentialMultiplierNan", exponential{1ms, nan, 1s}, "exponential: multiplier", got(nan)},
      {"ExponentialMultiplierInfinite", exponential{1ms, infinity, 1s}, "exponential: multiplier",
       got(infinity)},
      {"ExponentialCapBelowInitial", exponential{2s, 2.0, 1s}, "exponential: max_delay", got(1s)},
  };
}

struct bad_jitter {
  const char* label;
  jitter spread;
  std::string value;
};

std::vector<bad_jitter> bad_jitters() {
  return {{"JitterSpreadNegative", jitter::proportional(-0.1), got(-0.1)},
          {"JitterSpreadAboveOne", jitter::proportional(1.5), got(1.5)},
          {"JitterSpreadNan", jitter::proportional(nan), got(nan)}};
}

// --- the table -------------------------------------------------------------------------------

std::vector<refusal_case> all_cases() {
  std::vector<refusal_case> cases;
  const auto add = [&](std::string label, std::function<void()> build, std::string field,
                       std::string value) {
    cases.push_back({std::move(label), std::move(build), std::move(field), std::move(value)});
  };

  // retry
  add(
      "RetryMaxAttemptsZero", [] { build_retry({.max_attempts = 0}); }, "retry: max_attempts",
      got(0));
  add(
      "RetryMaxAttemptsNegative", [] { build_retry({.max_attempts = -3}); }, "retry: max_attempts",
      got(-3));
  add(
      "RetryMaxElapsedZero", [] { build_retry({.max_elapsed = 0s}); }, "retry: max_elapsed",
      got(0s));
  add(
      "RetryMaxElapsedNegative", [] { build_retry({.max_elapsed = -1ms}); }, "retry: max_elapsed",
      got(-1ms));
  add(
      "RetryOnPermanent",
      [] {
        build_retry({.retry_on = {verdict::transient, verdict::permanent}});
      },
      "retry: retry_on", got(verdict_set{verdict::transient, verdict::permanent}));
  add(
      "RetryOnSuccess", [] { build_retry({.retry_on = {verdict::success}}); }, "retry: retry_on",
      got(verdict_set{verdict::success}));
  add(
      "RetryOnNothing", [] { build_retry({.retry_on = {}}); }, "retry: retry_on",
      got(verdict_set{}));
  add(
      "RetryMaxDelayNegative", [] { build_retry({.max_delay = -1ns}); }, "retry: max_delay",
      got(-1ns));
  for (const bad_backoff& bad : bad_backoffs()) {
    add(
        std::string("RetryBackoff") + bad.label,
        [schedule = bad.schedule] { build_retry({.backoff = schedule}); }, bad.field, bad.value);
  }
  for (const bad_jitter& bad : bad_jitters()) {
    add(
        std::string("Retry") + bad.label,
        [spread = bad.spread] { build_retry({.jitter = spread}); }, "jitter: spread", bad.value);
  }

  // retry budgets
  add(
      "TokenBudgetMaxTokensZero", [] { build_token_budget({.max_tokens = 0}); },
      "token_budget: max_tokens", got(0));
  add(
      "TokenBudgetMaxTokensNegative", [] { build_token_budget({.max_tokens = -1}); },
      "token_budget: max_tokens", got(-1));
  add(
      "TokenBudgetMaxTokensTooMany", [] { build_token_budget({.max_tokens = 1'000'001}); },
      "token_budget: max_tokens", got(1'000'001));
  add(
      "TokenBudgetRatioZero", [] { build_token_budget({.token_ratio = 0.0}); },
      "token_budget: token_ratio", got(0.0));
  add(
      "TokenBudgetRatioBelowOneThousandth", [] { build_token_budget({.token_ratio = 0.0004}); },
      "token_budget: token_ratio", got(0.0004));
  add(
      "TokenBudgetRatioAbove1000", [] { build_token_budget({.token_ratio = 1000.5}); },
      "token_budget: token_ratio", got(1000.5));
  add(
      "TokenBudgetRatioNan", [] { build_token_budget({.token_ratio = nan}); },
      "token_budget: token_ratio", got(nan));
  add(
      "PercentBudgetTtlZero", [] { build_percent_budget({.ttl = 0s}); }, "percent_budget: ttl",
      got(0s));
  add(
      "PercentBudgetTtlBelowOneSecond", [] { build_percent_budget({.ttl = 999ms}); },
      "percent_budget: ttl", got(999ms));
  add(
      "PercentBudgetTtlAboveSixtySeconds", [] { build_percent_budget({.ttl = 61s}); },
      "percent_budget: ttl", got(61s));
  add(
      "PercentBudgetMinPerSecNegative", [] { build_percent_budget({.min_per_sec = -1}); },
      "percent_budget: min_per_sec", got(-1));
  add(
      "PercentBudgetMinPerSecTooMany", [] { build_percent_budget({.min_per_sec = 1'000'001}); },
      "percent_budget: min_per_sec", got(1'000'001));
  add(
      "PercentBudgetPercentNegative", [] { build_percent_budget({.percent_can_retry = -0.1}); },
      "percent_budget: percent_can_retry", got(-0.1));
  add(
      "PercentBudgetPercentAbove1000", [] { build_percent_budget({.percent_can_retry = 1000.5}); },
      "percent_budget: percent_can_retry", got(1000.5));
  add(
      "PercentBudgetPercentNan", [] { build_percent_budget({.percent_can_retry = nan}); },
      "percent_budget: percent_can_retry", got(nan));

  // bulkhead
  constexpr std::size_t too_many = std::size_t{1} << 31;
  add(
      "BulkheadNoSlots", [] { build_bulkhead({.max_concurrent = 0}); }, "bulkhead: max_concurrent",
      got(std::size_t{0}));
  add(
      "BulkheadMoreSlotsThanTheCounterHolds", [] { build_bulkhead({.max_concurrent = too_many}); },
      "bulkhead: max_concurrent", got(too_many));
  add(
      "BulkheadQueueLongerThanTheCounterHolds",
      [] { build_bulkhead({.max_queue = too_many, .max_wait = 1s}); }, "bulkhead: max_queue",
      got(too_many));
  add(
      "BulkheadNegativeWait", [] { build_bulkhead({.max_queue = 1, .max_wait = -1ms}); },
      "bulkhead: max_wait", got(-1ms));
  add(
      "BulkheadQueueWithoutAWait", [] { build_bulkhead({.max_queue = 4}); }, "bulkhead: max_wait",
      got(0ns));
  add(
      "BulkheadWaitWithoutAQueue", [] { build_bulkhead({.max_wait = 1s}); }, "bulkhead: max_queue",
      got(std::size_t{0}));

  // timeouts
  add(
      "TimeoutZero", [] { build_timeout(0s); }, "timeout: limit", got(0s));
  add(
      "TimeoutNegative", [] { build_timeout(-5ms); }, "timeout: limit", got(-5ms));
  add(
      "TimeoutMostNegative", [] { build_timeout(duration::min()); }, "timeout: limit",
      got(duration::min()));
  add(
      "DetachedTimeoutZero", [] { build_detached_timeout(0s); }, "detached_timeout: limit",
      got(0s));
  add(
      "DetachedTimeoutNegative", [] { build_detached_timeout(-1s); }, "detached_timeout: limit",
      got(-1s));
  add(
      "DetachedTimeoutNoAbandonedCallAllowed",
      [] { build_detached_timeout(1s, {.max_abandoned = 0}); }, "detached_timeout: max_abandoned",
      got(std::size_t{0}));

  // warm-up gate
  add(
      "WarmupGateWarmupTimeoutZero", [] { build_warmup_gate({.warmup_timeout = 0s}); },
      "warmup_gate: warmup_timeout", got(0s));
  add(
      "WarmupGateWarmupTimeoutNegative", [] { build_warmup_gate({.warmup_timeout = -1s}); },
      "warmup_gate: warmup_timeout", got(-1s));
  for (const bad_backoff& bad : bad_backoffs()) {
    add(
        std::string("WarmupGateCoolDown") + bad.label,
        [schedule = bad.schedule] { build_warmup_gate({.cool_down = schedule}); }, bad.field,
        bad.value);
  }
  for (const bad_jitter& bad : bad_jitters()) {
    add(
        std::string("WarmupGateCoolDown") + bad.label,
        [spread = bad.spread] { build_warmup_gate({.cool_down_jitter = spread}); },
        "jitter: spread", bad.value);
  }

  // health check
  add(
      "HealthCheckMaxAgeZero", [] { build_health_check({.max_age = 0s}); }, "health_check: max_age",
      got(0s));
  add(
      "HealthCheckMaxAgeNegative", [] { build_health_check({.max_age = -1s}); },
      "health_check: max_age", got(-1s));
  add(
      "HealthCheckUnhealthyMaxAgeZero", [] { build_health_check({.unhealthy_max_age = 0s}); },
      "health_check: unhealthy_max_age", got(0s));
  add(
      "HealthCheckUnhealthyMaxAgeNegative", [] { build_health_check({.unhealthy_max_age = -1ms}); },
      "health_check: unhealthy_max_age", got(-1ms));
  add(
      "HealthCheckProbeTimeoutZero", [] { build_health_check({.probe_timeout = 0s}); },
      "health_check: probe_timeout", got(0s));
  add(
      "HealthCheckProbeTimeoutNegative", [] { build_health_check({.probe_timeout = -1s}); },
      "health_check: probe_timeout", got(-1s));

  // resource
  add(
      "ResourceMaxAgeZero", [] { build_resource({.max_age = 0s}); }, "resource: max_age", got(0s));
  add(
      "ResourceMaxAgeNegative", [] { build_resource({.max_age = -1min}); }, "resource: max_age",
      got(duration{-1min}));
  add(
      "ResourceMaxAgeNotLongerThanItsWarmupTimeout",
      [] { build_resource({.max_age = 20s, .warmup_timeout = 20s}); }, "resource: max_age",
      got(20s));
  add(
      "ResourceMaxAgeShorterThanItsWarmupTimeout", [] { build_resource({.max_age = 1ms}); },
      "resource: max_age", got(1ms));
  add(
      "ResourceWarmupTimeoutZero", [] { build_resource({.warmup_timeout = 0s}); },
      "resource: warmup_timeout", got(0s));
  add(
      "ResourceHealthMaxAgeZero", [] { build_resource({.health = {.max_age = 0s}}); },
      "health_check: max_age", got(0s));
  add(
      "ResourceHealthUnhealthyMaxAgeZero",
      [] { build_resource({.health = {.unhealthy_max_age = 0s}}); },
      "health_check: unhealthy_max_age", got(0s));
  add(
      "ResourceHealthProbeTimeoutNegative",
      [] { build_resource({.health = {.probe_timeout = -1s}}); }, "health_check: probe_timeout",
      got(-1s));
  for (const bad_backoff& bad : bad_backoffs()) {
    add(
        std::string("ResourceCoolDown") + bad.label,
        [schedule = bad.schedule] { build_resource({.cool_down = schedule}); }, bad.field,
        bad.value);
  }
  for (const bad_jitter& bad : bad_jitters()) {
    add(
        std::string("ResourceCoolDown") + bad.label,
        [spread = bad.spread] { build_resource({.cool_down_jitter = spread}); }, "jitter: spread",
        bad.value);
  }
  // The one option that is not a value: a resource without a factory cannot make anything.
  add(
      "ResourceWithoutFactory", [] { build_resource({}, {}); }, "resource: hooks.create", "");

  // circuit breaker: its own options
  add(
      "BreakerOpenForZero", [] { build_breaker({.open_for = stockade::constant{0s}}); },
      "circuit_breaker: open_for", got(0s));
  add(
      "BreakerOpenForStartingAtZero",
      [] {
        build_breaker({.open_for = stockade::linear{0s, 1s, 5s}});
      },
      "circuit_breaker: open_for", got(0s));
  for (const bad_backoff& bad : bad_backoffs()) {
    add(
        std::string("BreakerOpenFor") + bad.label,
        [schedule = bad.schedule] { build_breaker({.open_for = schedule}); }, bad.field, bad.value);
  }
  for (const bad_jitter& bad : bad_jitters()) {
    add(
        std::string("BreakerOpen") + bad.label,
        [spread = bad.spread] { build_breaker({.open_jitter = spread}); }, "jitter: spread",
        bad.value);
  }
  add(
      "BreakerProbeTimeoutZero", [] { build_breaker({.probe_timeout = 0s}); },
      "circuit_breaker: probe_timeout", got(0s));
  add(
      "BreakerProbeTimeoutNegative", [] { build_breaker({.probe_timeout = -1ms}); },
      "circuit_breaker: probe_timeout", got(duration{-1ms}));
  add(
      "BreakerNoHalfOpenPermit", [] { build_breaker({.half_open_permits = 0}); },
      "circuit_breaker: half_open_permits", got(std::size_t{0}));
  add(
      "BreakerTooManyHalfOpenPermits", [] { build_breaker({.half_open_permits = 1'000'001}); },
      "circuit_breaker: half_open_permits", got(std::size_t{1'000'001}));
  add(
      "BreakerHalfOpenSuccessRatioZero", [] { build_breaker({.half_open_success_ratio = 0.0}); },
      "circuit_breaker: half_open_success_ratio", got(0.0));
  add(
      "BreakerHalfOpenSuccessRatioAboveOne",
      [] { build_breaker({.half_open_success_ratio = 1.01}); },
      "circuit_breaker: half_open_success_ratio", got(1.01));
  add(
      "BreakerHalfOpenSuccessRatioNan", [] { build_breaker({.half_open_success_ratio = nan}); },
      "circuit_breaker: half_open_success_ratio", got(nan));
  add(
      "BreakerCountsPermanentAsFailure",
      [] {
        build_breaker({.failure_verdicts = {verdict::transient, verdict::permanent}});
      },
      "circuit_breaker: failure_verdicts", "{transient, permanent}");
  add(
      "BreakerCountsSuccessAsFailure",
      [] { build_breaker({.failure_verdicts = {verdict::success}}); },
      "circuit_breaker: failure_verdicts", "{success}");
  add(
      "BreakerCountsNothingAsFailure", [] { build_breaker({.failure_verdicts = {}}); },
      "circuit_breaker: failure_verdicts", "{}");

  // circuit breaker: each trip strategy's options
  add(
      "CountWindowSizeZero", [] { build_breaker({.trip = {.size = 0, .minimum_calls = 1}}); },
      "count_window: size", got(std::size_t{0}));
  add(
      "CountWindowTooLarge",
      [] { build_breaker({.trip = {.size = 1'000'001, .minimum_calls = 1}}); },
      "count_window: size", got(std::size_t{1'000'001}));
  add(
      "CountWindowFailureRatioZero", [] { build_breaker({.trip = {.failure_ratio = 0.0}}); },
      "count_window: failure_ratio", got(0.0));
  add(
      "CountWindowFailureRatioAboveOne", [] { build_breaker({.trip = {.failure_ratio = 1.5}}); },
      "count_window: failure_ratio", got(1.5));
  add(
      "CountWindowFailureRatioNan", [] { build_breaker({.trip = {.failure_ratio = nan}}); },
      "count_window: failure_ratio", got(nan));
  add(
      "CountWindowMinimumCallsZero", [] { build_breaker({.trip = {.minimum_calls = 0}}); },
      "count_window: minimum_calls", got(std::size_t{0}));
  add(
      "CountWindowMinimumCallsAboveSize",
      [] { build_breaker({.trip = {.size = 10, .minimum_calls = 11}}); },
      "count_window: minimum_calls", got(std::size_t{11}));
  add(
      "ConsecutiveFailuresThresholdZero",
      [] { build_breaker<stockade::consecutive_failures>({.trip = {.threshold = 0}}); },
      "consecutive_failures: threshold", got(std::size_t{0}));
  using stockade::time_window;
  add(
      "TimeWindowNoBucket", [] { build_breaker<time_window>({.trip = {.buckets = 0}}); },
      "time_window: buckets", got(std::size_t{0}));
  add(
      "TimeWindowTooManyBuckets", [] { build_breaker<time_window>({.trip = {.buckets = 10'001}}); },
      "time_window: buckets", got(std::size_t{10'001}));
  add(
      "TimeWindowLengthZero", [] { build_breaker<time_window>({.trip = {.length = 0s}}); },
      "time_window: length", got(0s));
  add(
      "TimeWindowBucketsShorterThanAMicrosecond",
      [] { build_breaker<time_window>({.trip = {.length = 5us, .buckets = 10}}); },
      "time_window: length", got(duration{5us}));
  add(
      "TimeWindowFailureRatioNegative",
      [] { build_breaker<time_window>({.trip = {.failure_ratio = -1.0}}); },
      "time_window: failure_ratio", got(-1.0));
  add(
      "TimeWindowFailureRatioNan",
      [] { build_breaker<time_window>({.trip = {.failure_ratio = nan}}); },
      "time_window: failure_ratio", got(nan));
  add(
      "TimeWindowMinimumCallsZero",
      [] { build_breaker<time_window>({.trip = {.minimum_calls = 0}}); },
      "time_window: minimum_calls", got(std::size_t{0}));
  using slow_count = stockade::slow_calls<count_window>;
  using slow_time = stockade::slow_calls<time_window>;
  add(
      "SlowCallsDurationZero",
      [] { build_breaker<slow_count>({.trip = {.slow_call_duration = 0s}}); },
      "slow_calls: slow_call_duration", got(0s));
  add(
      "SlowCallsDurationNegative",
      [] { build_breaker<slow_time>({.trip = {.slow_call_duration = -1s}}); },
      "slow_calls: slow_call_duration", got(-1s));
  add(
      "SlowCallsRatioZero", [] { build_breaker<slow_count>({.trip = {.slow_call_ratio = 0.0}}); },
      "slow_calls: slow_call_ratio", got(0.0));
  add(
      "SlowCallsRatioAboveOne",
      [] { build_breaker<slow_time>({.trip = {.slow_call_ratio = 1.1}}); },
      "slow_calls: slow_call_ratio", got(1.1));
  add(
      "SlowCallsRatioNan", [] { build_breaker<slow_count>({.trip = {.slow_call_ratio = nan}}); },
      "slow_calls: slow_call_ratio", got(nan));
  add(
      "SlowCallsWindowSizeZero",
      [] { build_breaker<slow_count>({.trip = {.size = 0, .minimum_calls = 1}}); },
      "count_window: size", got(std::size_t{0}));
  add(
      "SlowCallsTimeWindowNoBucket", [] { build_breaker<slow_time>({.trip = {.buckets = 0}}); },
      "time_window: buckets", got(std::size_t{0}));

  // breaker registry
  add(
      "RegistryNoBreakerKept", [] { build_registry({.max_breakers = 0}); },
      "breaker_registry: max_breakers", got(std::size_t{0}));
  add(
      "RegistryBadBreakerOptions", [] { build_registry({}, {.half_open_permits = 0}); },
      "circuit_breaker: half_open_permits", got(std::size_t{0}));
  return cases;
}

class RefusedConfiguration : public ::testing::TestWithParam<refusal_case> {};

TEST_P(RefusedConfiguration, ThrowsInvalidArgumentNamingTheFieldAndTheValue) {
  const refusal_case& bad = GetParam();
  try {
    bad.build();
    FAIL() << bad.label << ": accepted";
  } catch (const std::invalid_argument& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("stockade::" + bad.field + " "), std::string::npos) << message;
    if (!bad.value.empty()) {
      EXPECT_NE(message.find("(got " + bad.value + ")"), std::string::npos) << message;
    }
  }
}

std::string label_of(const ::testing::TestParamInfo<refusal_case>& tested) {
  return tested.param.label;
}

INSTANTIATE_TEST_SUITE_P(EveryPolicy, RefusedConfiguration, ::testing::ValuesIn(all_cases()),
                         label_of);

TEST(RefusedConfigurationTable, LabelsAreUnique) {
  std::vector<std::string> labels;
  for (const auto& c : all_cases()) labels.push_back(c.label);
  std::sort(labels.begin(), labels.end());
  EXPECT_EQ(std::adjacent_find(labels.begin(), labels.end()), labels.end());
}

TEST(RefusedConfigurationTable, DefaultsOfEveryPolicyAreAccepted) {
  EXPECT_NO_THROW(build_retry({}));
  EXPECT_NO_THROW(build_token_budget({}));
  EXPECT_NO_THROW(build_percent_budget({}));
  EXPECT_NO_THROW(build_bulkhead({}));
  EXPECT_NO_THROW(build_timeout(1ns));
  EXPECT_NO_THROW(build_detached_timeout(1ns));
  EXPECT_NO_THROW(build_warmup_gate({}));
  EXPECT_NO_THROW(build_health_check({}));
  EXPECT_NO_THROW(build_resource({}));
  EXPECT_NO_THROW(build_breaker({}));
  EXPECT_NO_THROW(build_breaker<stockade::consecutive_failures>({}));
  EXPECT_NO_THROW(build_breaker<stockade::time_window>({}));
  EXPECT_NO_THROW(build_breaker<stockade::slow_calls<count_window>>({}));
  EXPECT_NO_THROW(build_breaker<stockade::slow_calls<stockade::time_window>>({}));
  EXPECT_NO_THROW(build_registry({}));
}

TEST(RefusedConfigurationTable, BoundaryValuesAreAccepted) {
  EXPECT_NO_THROW(build_retry({.max_attempts = 1, .max_elapsed = 1ns, .max_delay = 0ns}));
  EXPECT_NO_THROW(build_retry({.retry_on = {verdict::fatal}}));
  EXPECT_NO_THROW(build_retry({.backoff = stockade::constant{0s}}));
  EXPECT_NO_THROW(build_retry({.jitter = jitter::proportional(1.0)}));
  EXPECT_NO_THROW(build_token_budget({.max_tokens = 1'000'000, .token_ratio = 0.001}));
  EXPECT_NO_THROW(build_percent_budget({.ttl = 1s, .min_per_sec = 0, .percent_can_retry = 0.0}));
  EXPECT_NO_THROW(build_percent_budget({.ttl = 60s, .percent_can_retry = 1000.0}));
  EXPECT_NO_THROW(build_bulkhead({.max_concurrent = 1, .max_queue = 1, .max_wait = 1ns}));
  EXPECT_NO_THROW(build_bulkhead({.max_queue = 1, .max_wait = duration::max()}));
  EXPECT_NO_THROW(build_warmup_gate({.warmup_timeout = 1ns}));
  EXPECT_NO_THROW(build_resource({.max_age = 20s + 1ns, .warmup_timeout = 20s}));
  EXPECT_NO_THROW(build_resource({.max_age = duration::max()}));
  EXPECT_NO_THROW(build_breaker({.probe_timeout = 1ns}));
  EXPECT_NO_THROW(build_breaker({.half_open_permits = 1'000'000, .half_open_success_ratio = 1.0}));
  EXPECT_NO_THROW(build_breaker({.trip = {.size = 1, .failure_ratio = 1.0, .minimum_calls = 1}}));
  EXPECT_NO_THROW(build_breaker<stockade::time_window>({.trip = {.length = 10us, .buckets = 10}}));
}

// --- compile time ----------------------------------------------------------------------------
// `make` is evaluated in a constant expression; a refused value throws there, which makes the
// expression not constant, which this concept observes (a real constexpr variable would not
// compile). Each family has a positive control first: the defaults are a constant expression,
// so the one value each negative case changes is what makes it fail.

template <auto make>
concept compiles_as_constant = requires {
  typename std::bool_constant<(make(), true)>;
};

template <class Options>
constexpr bool check(const Options& options) {
  options.validate();
  return true;
}

TEST(ConstexprConfiguration, RetryRefusesEachBadValueAtCompileTime) {
  using options = stockade::retry_options<>;
  static_assert(compiles_as_constant<[] { return stockade::retry{options{}}; }>);
  static_assert(!compiles_as_constant<[] { return stockade::retry{options{.max_attempts = 0}}; }>);
  static_assert(!compiles_as_constant<[] { return stockade::retry{options{.max_elapsed = 0s}}; }>);
  static_assert(!compiles_as_constant<[] {
    return stockade::retry{options{.retry_on = {verdict::permanent}}};
  }>);
  static_assert(!compiles_as_constant<[] {
    return stockade::retry{options{.retry_on = {verdict::success}}};
  }>);
  static_assert(!compiles_as_constant<[] { return stockade::retry{options{.retry_on = {}}}; }>);
  static_assert(!compiles_as_constant<[] { return stockade::retry{options{.max_delay = -1ns}}; }>);
  static_assert(!compiles_as_constant<[] {
    return stockade::retry{options{.jitter = jitter::proportional(nan)}};
  }>);
  static_assert(!compiles_as_constant<[] {
    return stockade::retry{options{.backoff = stockade::exponential{1ms, nan, 1s}}};
  }>);
  SUCCEED();
}

TEST(ConstexprConfiguration, BackoffsAndJitterRefuseEachBadValueAtCompileTime) {
  using stockade::constant;
  using stockade::exponential;
  using stockade::linear;
  static_assert(compiles_as_constant<[] { return check(constant{}); }>);
  static_assert(compiles_as_constant<[] { return check(linear{}); }>);
  static_assert(compiles_as_constant<[] { return check(exponential{}); }>);
  static_assert(compiles_as_constant<[] { return check(jitter::proportional(0.2)); }>);
  static_assert(!compiles_as_constant<[] { return check(constant{-1ms}); }>);
  static_assert(!compiles_as_constant<[] { return check(linear{-1s, 1s, 2s}); }>);
  static_assert(!compiles_as_constant<[] { return check(linear{1s, -1s, 2s}); }>);
  static_assert(!compiles_as_constant<[] { return check(linear{2s, 1s, 1s}); }>);
  static_assert(!compiles_as_constant<[] { return check(exponential{-1ms, 2.0, 1s}); }>);
  static_assert(!compiles_as_constant<[] { return check(exponential{1ms, 0.5, 1s}); }>);
  static_assert(!compiles_as_constant<[] { return check(exponential{1ms, 1000.5, 1s}); }>);
  static_assert(!compiles_as_constant<[] { return check(exponential{1ms, nan, 1s}); }>);
  static_assert(!compiles_as_constant<[] { return check(exponential{1ms, infinity, 1s}); }>);
  static_assert(!compiles_as_constant<[] { return check(exponential{2s, 2.0, 1s}); }>);
  static_assert(!compiles_as_constant<[] { return check(backoff_schedule{linear{2s, 1s, 1s}}); }>);
  static_assert(!compiles_as_constant<[] { return check(jitter::proportional(-0.1)); }>);
  static_assert(!compiles_as_constant<[] { return check(jitter::proportional(1.5)); }>);
  static_assert(!compiles_as_constant<[] { return check(jitter::proportional(nan)); }>);
  SUCCEED();
}

TEST(ConstexprConfiguration, RetryBudgetsRefuseEachBadValueAtCompileTime) {
  using stockade::percent_budget_options;
  using stockade::token_budget_options;
  static_assert(compiles_as_constant<[] { return check(token_budget_options{}); }>);
  static_assert(!compiles_as_constant<[] { return check(token_budget_options{.max_tokens = 0}); }>);
  static_assert(
      !compiles_as_constant<[] { return check(token_budget_options{.max_tokens = 1'000'001}); }>);
  static_assert(
      !compiles_as_constant<[] { return check(token_budget_options{.token_ratio = 0.0}); }>);
  static_assert(
      !compiles_as_constant<[] { return check(token_budget_options{.token_ratio = 1000.5}); }>);
  static_assert(
      !compiles_as_constant<[] { return check(token_budget_options{.token_ratio = nan}); }>);
  static_assert(compiles_as_constant<[] { return check(percent_budget_options{}); }>);
  static_assert(!compiles_as_constant<[] { return check(percent_budget_options{.ttl = 999ms}); }>);
  static_assert(!compiles_as_constant<[] { return check(percent_budget_options{.ttl = 61s}); }>);
  static_assert(
      !compiles_as_constant<[] { return check(percent_budget_options{.min_per_sec = -1}); }>);
  static_assert(!compiles_as_constant<[] {
    return check(percent_budget_options{.min_per_sec = 1'000'001});
  }>);
  static_assert(!compiles_as_constant<[] {
    return check(percent_budget_options{.percent_can_retry = -0.1});
  }>);
  static_assert(!compiles_as_constant<[] {
    return check(percent_budget_options{.percent_can_retry = nan});
  }>);
  SUCCEED();
}

TEST(ConstexprConfiguration, BulkheadAndTimeoutsRefuseEachBadValueAtCompileTime) {
  using stockade::bulkhead;
  using stockade::detached_timeout;
  using stockade::timeout;
  static_assert(compiles_as_constant<[] { return bulkhead<>{{}}.options().max_concurrent; }>);
  static_assert(
      !compiles_as_constant<[] { return bulkhead<>{{.max_concurrent = 0}}.options().max_queue; }>);
  static_assert(!compiles_as_constant<[] {
    return bulkhead<>{{.max_concurrent = std::size_t{1} << 31}}.options().max_queue;
  }>);
  static_assert(!compiles_as_constant<[] {
    return bulkhead<>{{.max_queue = std::size_t{1} << 31, .max_wait = 1s}}.options().max_queue;
  }>);
  static_assert(!compiles_as_constant<[] {
    return bulkhead<>{{.max_queue = 1, .max_wait = -1ms}}.options().max_queue;
  }>);
  static_assert(
      !compiles_as_constant<[] { return bulkhead<>{{.max_queue = 4}}.options().max_queue; }>);
  static_assert(
      !compiles_as_constant<[] { return bulkhead<>{{.max_wait = 1s}}.options().max_queue; }>);
  static_assert(compiles_as_constant<[] { return timeout{1ns}.limit(); }>);
  static_assert(!compiles_as_constant<[] { return timeout{0ns}.limit(); }>);
  static_assert(!compiles_as_constant<[] { return timeout{-5ms}.limit(); }>);
  static_assert(!compiles_as_constant<[] { return timeout{duration::min()}.limit(); }>);
  // detached_timeout owns a shared counter, so it is never a constant; its checks are.
  static_assert(compiles_as_constant<[] { return check(stockade::timeout_options{1ns}); }>);
  static_assert(!compiles_as_constant<[] { return check(stockade::timeout_options{0ns}); }>);
  static_assert(compiles_as_constant<[] { return check(stockade::detached_timeout_options{}); }>);
  static_assert(!compiles_as_constant<[] {
    return check(stockade::detached_timeout_options{.max_abandoned = 0});
  }>);
  static_assert(compiles_as_constant<[] { return check(stockade::bulkhead_options{}); }>);
  static_assert(
      !compiles_as_constant<[] { return check(stockade::bulkhead_options{.max_concurrent = 0}); }>);
  SUCCEED();
}

TEST(ConstexprConfiguration, WarmupHealthAndResourceRefuseEachBadValueAtCompileTime) {
  using stockade::health_check_options;
  using stockade::resource_options;
  using stockade::warmup_gate_options;
  static_assert(compiles_as_constant<[] { return check(warmup_gate_options{}); }>);
  static_assert(!compiles_as_constant<[] {
    return check(warmup_gate_options{.cool_down = stockade::exponential{1ms, 0.5, 1s}});
  }>);
  static_assert(!compiles_as_constant<[] {
    return check(warmup_gate_options{.cool_down = stockade::constant{-1s}});
  }>);
  static_assert(!compiles_as_constant<[] {
    return check(warmup_gate_options{.cool_down_jitter = jitter::proportional(nan)});
  }>);
  static_assert(
      !compiles_as_constant<[] { return check(warmup_gate_options{.warmup_timeout = 0s}); }>);
  static_assert(compiles_as_constant<[] { return check(health_check_options{}); }>);
  static_assert(!compiles_as_constant<[] { return check(health_check_options{.max_age = 0s}); }>);
  static_assert(!compiles_as_constant<[] { return check(health_check_options{.max_age = -1s}); }>);
  static_assert(
      !compiles_as_constant<[] { return check(health_check_options{.unhealthy_max_age = 0s}); }>);
  static_assert(
      !compiles_as_constant<[] { return check(health_check_options{.probe_timeout = -1s}); }>);
  static_assert(compiles_as_constant<[] { return check(resource_options{}); }>);
  static_assert(!compiles_as_constant<[] { return check(resource_options{.max_age = -1min}); }>);
  static_assert(!compiles_as_constant<[] { return check(resource_options{.max_age = 20s}); }>);
  static_assert(
      !compiles_as_constant<[] { return check(resource_options{.warmup_timeout = 0s}); }>);
  static_assert(
      !compiles_as_constant<[] { return check(resource_options{.health = {.max_age = 0s}}); }>);
  static_assert(!compiles_as_constant<[] {
    return check(resource_options{.health = {.probe_timeout = 0s}});
  }>);
  static_assert(!compiles_as_constant<[] {
    return check(resource_options{.cool_down = stockade::linear{2s, 1s, 1s}});
  }>);
  static_assert(!compiles_as_constant<[] {
    return check(resource_options{.cool_down_jitter = jitter::proportional(1.5)});
  }>);
  SUCCEED();
}

TEST(ConstexprConfiguration, CircuitBreakerRefusesEachBadValueAtCompileTime) {
  using options = stockade::circuit_breaker_options<>;
  static_assert(compiles_as_constant<[] { return check(options{}); }>);
  static_assert(
      !compiles_as_constant<[] { return check(options{.open_for = stockade::constant{0s}}); }>);
  static_assert(!compiles_as_constant<[] {
    return check(options{.open_for = stockade::exponential{1ms, 0.5, 1s}});
  }>);
  static_assert(
      !compiles_as_constant<[] { return check(options{.open_jitter = jitter::proportional(2)}); }>);
  static_assert(!compiles_as_constant<[] { return check(options{.half_open_permits = 0}); }>);
  static_assert(!compiles_as_constant<[] { return check(options{.probe_timeout = 0s}); }>);
  static_assert(
      !compiles_as_constant<[] { return check(options{.half_open_permits = 1'000'001}); }>);
  static_assert(
      !compiles_as_constant<[] { return check(options{.half_open_success_ratio = 0.0}); }>);
  static_assert(
      !compiles_as_constant<[] { return check(options{.half_open_success_ratio = nan}); }>);
  static_assert(!compiles_as_constant<[] {
    return check(options{.failure_verdicts = {verdict::permanent}});
  }>);
  static_assert(
      !compiles_as_constant<[] { return check(options{.failure_verdicts = {verdict::success}}); }>);
  static_assert(!compiles_as_constant<[] { return check(options{.failure_verdicts = {}}); }>);
  static_assert(!compiles_as_constant<[] {
    return check(options{.trip = {.size = 0, .minimum_calls = 1}});
  }>);
  static_assert(!compiles_as_constant<[] { return check(options{.trip = {.failure_ratio = 0}}); }>);
  static_assert(!compiles_as_constant<[] { return check(options{.trip = {.minimum_calls = 0}}); }>);
  static_assert(!compiles_as_constant<[] {
    return check(options{.trip = {.size = 10, .minimum_calls = 11}});
  }>);
  SUCCEED();
}

TEST(ConstexprConfiguration, TripStrategiesAndRegistryRefuseEachBadValueAtCompileTime) {
  using stockade::circuit_breaker_options;
  using stockade::consecutive_failures;
  using stockade::time_window;
  using slow_count = stockade::slow_calls<count_window>;
  using slow_time = stockade::slow_calls<time_window>;
  static_assert(compiles_as_constant<[] { return check(consecutive_failures::options{}); }>);
  static_assert(!compiles_as_constant<[] { return check(consecutive_failures::options{0}); }>);
  static_assert(compiles_as_constant<[] { return check(time_window::options{}); }>);
  static_assert(!compiles_as_constant<[] { return check(time_window::options{.buckets = 0}); }>);
  static_assert(
      !compiles_as_constant<[] { return check(time_window::options{.buckets = 10'001}); }>);
  static_assert(!compiles_as_constant<[] { return check(time_window::options{.length = 0s}); }>);
  static_assert(!compiles_as_constant<[] {
    return check(time_window::options{.length = 5us, .buckets = 10});
  }>);
  static_assert(
      !compiles_as_constant<[] { return check(time_window::options{.failure_ratio = nan}); }>);
  static_assert(
      !compiles_as_constant<[] { return check(time_window::options{.minimum_calls = 0}); }>);
  static_assert(compiles_as_constant<[] { return check(slow_count::options{}); }>);
  static_assert(compiles_as_constant<[] { return check(slow_time::options{}); }>);
  static_assert(
      !compiles_as_constant<[] { return check(slow_count::options{.slow_call_duration = 0s}); }>);
  static_assert(
      !compiles_as_constant<[] { return check(slow_time::options{.slow_call_duration = -1s}); }>);
  static_assert(
      !compiles_as_constant<[] { return check(slow_count::options{.slow_call_ratio = 0.0}); }>);
  static_assert(
      !compiles_as_constant<[] { return check(slow_time::options{.slow_call_ratio = 1.1}); }>);
  static_assert(!compiles_as_constant<[] {
    return check(circuit_breaker_options<slow_count>{.trip = {.slow_call_ratio = nan}});
  }>);
  static_assert(compiles_as_constant<[] { return check(stockade::breaker_registry_options{}); }>);
  static_assert(!compiles_as_constant<[] {
    return check(stockade::breaker_registry_options{.max_breakers = 0});
  }>);
  SUCCEED();
}

}  // namespace
