// The worst case of a stack (bounds.hpp, pipeline::worst_case): each layer's contribution, the
// names given to what has no bound, arithmetic that saturates, and the post-mortem's stack.
#include <stockade/stockade.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <climits>
#include <functional>
#include <stdexcept>
#include <string_view>

namespace {

using namespace std::chrono_literals;
using stockade::bound;
using stockade::duration;
using stockade::pipeline;
using stockade::retry;
using stockade::stack_bounds;
using stockade::timeout;
using stockade::testing::manual_clock;

bool names(const bound<duration>& b, std::string_view layer) {
  return !b.bounded() && b.unbounded_by().find(layer) != std::string_view::npos;
}

// A retry whose waits are exactly its backoff: no jitter, no retry-after hints.
constexpr auto plain_retry(int attempts, stockade::backoff_schedule backoff) {
  return retry{{.max_attempts = attempts,
                .backoff = backoff,
                .jitter = stockade::jitter::none(),
                .use_retry_after = false}};
}

// The post-mortem's stack, as its three hand-written layers would be spelled with stockade:
// the handler retried twice a second apart, the repository twice half a second apart, the
// client three times from 125 ms doubling, each query bounded at 1 s. Nobody added it up until
// an outage did: 12 queries and 15.5 s, inside a 10 s platform limit.
constexpr auto post_mortem_stack =
    pipeline{stockade::allow_nested_retries,
             plain_retry(2, stockade::exponential{1s, 2.0, 10s}),     // request handler
             plain_retry(2, stockade::exponential{500ms, 2.0, 10s}),  // repository
             plain_retry(3, stockade::exponential{125ms, 2.0, 10s}),  // database client
             timeout{1s}};                                            // each query

TEST(WorstCase, PostMortemStackTakesFifteenAndAHalfSecondsInTwelveAttempts) {
  static_assert(post_mortem_stack.worst_case().elapsed == bound<duration>(15500ms));
  static_assert(post_mortem_stack.worst_case().attempts == bound<std::int64_t>(12));
  static_assert(!post_mortem_stack.worst_case().fits_within(10s));
  EXPECT_EQ(post_mortem_stack.worst_case().elapsed.value(), 15500ms);
}

TEST(WorstCase, OneRetryLayerUnderAnOuterTimeoutFitsTheLimit) {
  constexpr auto fixed =
      pipeline{timeout{8s}, plain_retry(4, stockade::exponential{200ms, 2.0, 2s}), timeout{2s}};
  static_assert(fixed.worst_case().elapsed <= 10s);
  static_assert(fixed.worst_case().fits_within(10s));
  static_assert(fixed.worst_case().attempts <= 4);
  EXPECT_EQ(fixed.worst_case().elapsed.value(), 8s);
}

TEST(WorstCase, CallableAloneHasOneAttemptAndNoBoundInTime) {
  constexpr pipeline<> empty{};
  static_assert(empty.worst_case().attempts == bound<std::int64_t>(1));
  EXPECT_TRUE(names(empty.worst_case().elapsed, "the callable"));
  EXPECT_FALSE(empty.worst_case().elapsed <= duration::max());
  EXPECT_FALSE(empty.worst_case().fits_within(24h));
}

TEST(WorstCase, StatedCalleeTimeIsUsed) {
  constexpr auto stack = pipeline{plain_retry(3, stockade::constant{100ms})};
  static_assert(stack.worst_case(1s).elapsed == bound<duration>(3s + 200ms));
  EXPECT_EQ(stack.worst_case(stack_bounds::of_callee(50ms)).elapsed.value(), 350ms);
}

TEST(WorstCase, TimeoutBoundsWhatIsInsideItToItsLimit) {
  constexpr auto stack = pipeline{timeout{3s}};
  static_assert(stack.worst_case().elapsed == bound<duration>(3s));
  static_assert(stack.worst_case(1s).elapsed == bound<duration>(1s));  // the shorter one
}

TEST(WorstCase, RetryMultipliesAttemptsAndAddsItsWaits) {
  constexpr auto stack = pipeline{plain_retry(3, stockade::constant{100ms}), timeout{1s}};
  static_assert(stack.worst_case().attempts == bound<std::int64_t>(3));
  static_assert(stack.worst_case().elapsed == bound<duration>(3s + 200ms));
}

TEST(WorstCase, RetryCountsEachRetryAfterHintAsMaxDelay) {
  // A server may say "retry after 5 s" each time; the backoff's 100 ms does not bound that.
  constexpr auto stack =
      pipeline{retry{{.max_attempts = 3, .backoff = stockade::constant{100ms}, .max_delay = 5s}},
               timeout{1s}};
  static_assert(stack.worst_case().elapsed == bound<duration>(13s));
}

TEST(WorstCase, RetryCountsTheTopOfProportionalJitter) {
  constexpr auto stack = pipeline{retry{{.max_attempts = 3,
                                         .backoff = stockade::exponential{100ms, 2.0, 10s},
                                         .jitter = stockade::jitter::proportional(0.2),
                                         .use_retry_after = false}},
                                  timeout{1s}};
  static_assert(stack.worst_case().elapsed == bound<duration>(3s + 120ms + 240ms));
}

TEST(WorstCase, RetryMaxElapsedBoundsTheLastStartPlusOneAttempt) {
  constexpr auto stack = pipeline{retry{{.max_attempts = 10,
                                         .max_elapsed = 2s,
                                         .backoff = stockade::constant{1s},
                                         .jitter = stockade::jitter::none(),
                                         .use_retry_after = false}},
                                  timeout{1s}};
  // 10 attempts and 9 waits would be 19 s; no attempt starts 2 s after the first did.
  static_assert(stack.worst_case().elapsed == bound<duration>(3s));
  static_assert(stack.worst_case().attempts == bound<std::int64_t>(10));
}

TEST(WorstCase, RetryAroundAnUnboundedCallableIsUnboundedAndSaysWhy) {
  constexpr auto stack = pipeline{plain_retry(3, stockade::constant{100ms})};
  static_assert(stack.worst_case().attempts == bound<std::int64_t>(3));
  EXPECT_TRUE(names(stack.worst_case().elapsed, "the callable"));
}

TEST(WorstCase, SumsAndProductsThatWouldOverflowAreUnbounded) {
  constexpr auto two =
      pipeline{stockade::allow_nested_retries, plain_retry(INT_MAX, stockade::constant{1h}),
               plain_retry(INT_MAX, stockade::constant{1h})};
  static_assert(two.worst_case(1h).attempts.value() == std::int64_t{INT_MAX} * INT_MAX);  // 2^62
  EXPECT_TRUE(names(two.worst_case(1h).elapsed, "retry"));
  constexpr auto three = pipeline{
      stockade::allow_nested_retries, plain_retry(INT_MAX, stockade::constant{1h}),
      plain_retry(INT_MAX, stockade::constant{1h}), plain_retry(INT_MAX, stockade::constant{1h})};
  EXPECT_EQ(three.worst_case(1h).attempts.unbounded_by().find("retry"), 0U);  // ~2^93
  constexpr bound<duration> huge = duration::max() - 1s;
  EXPECT_FALSE((huge + bound<duration>(2s)).bounded());
  EXPECT_EQ((huge + bound<duration>(1s)).value(), duration::max());
}

TEST(WorstCase, ManyAttemptsCostAFewHundredStepsEvenAtCompileTime) {
  // Retry until max_elapsed: the waits grow to the backoff's cap and stay there.
  constexpr auto patient = pipeline{
      retry{{.max_attempts = INT_MAX, .max_elapsed = 10s, .use_retry_after = false}}, timeout{1s}};
  static_assert(patient.worst_case().elapsed == bound<duration>(11s));
  // 100 000 waits growing by 1 ns to 20 s: the first 256 are added exactly, the rest counted
  // at the backoff's cap, more than can happen but never less.
  constexpr auto slow_growth = pipeline{retry{{.max_attempts = 100'000,
                                               .backoff = stockade::linear{1ns, 1ns, 20s},
                                               .jitter = stockade::jitter::none(),
                                               .use_retry_after = false}},
                                        timeout{1s}};
  static_assert(slow_growth.worst_case().elapsed.value() > 20s * (100'000 - 300));
  static_assert(slow_growth.worst_case().elapsed.value() <= 21s * 100'000);
}

TEST(WorstCase, EachJitterCountsItsLongestWait) {
  const auto waits = [](stockade::jitter spread) {
    return retry{{.max_attempts = 3,
                  .backoff = stockade::exponential{100ms, 2.0, 10s},
                  .jitter = spread,
                  .max_delay = 5s,
                  .use_retry_after = false}}
        .worst_case_delay();
  };
  EXPECT_EQ(waits(stockade::jitter::none()), 300ms);
  EXPECT_EQ(waits(stockade::jitter::full()), 300ms);        // up to the computed delay
  EXPECT_EQ(waits(stockade::jitter::equal()), 300ms);       // half fixed, half random: same top
  EXPECT_EQ(waits(stockade::jitter::decorrelated()), 10s);  // may grow to max_delay each time
  EXPECT_EQ(waits(stockade::jitter::proportional(0.5)), 450ms);
}

TEST(WorstCase, ARunThatFailsEveryWayItCanStaysWithinTheBound) {
  // Each attempt uses up its whole 1 s timeout and fails; the retry waits its full backoff.
  manual_clock clock;  // sleeps move virtual time at once
  constexpr auto stack =
      pipeline{plain_retry(3, stockade::exponential{100ms, 2.0, 10s}), timeout{1s}};
  stockade::context ctx{clock};
  const auto start = clock.now();
  int attempts = 0;
  EXPECT_THROW(stack(ctx,
                     [&](stockade::context& attempt) -> int {
                       ++attempts;
                       clock.advance_to(attempt.deadline());
                       throw std::runtime_error("slow and failing");
                     }),
               std::exception);
  EXPECT_EQ(attempts, stack.worst_case().attempts.value());
  EXPECT_EQ(clock.now() - start, stack.worst_case().elapsed.value());  // 3 x 1 s + 100 + 200 ms
}

TEST(WorstCase, BulkheadWaitingUntilTheDeadlineIsUnbounded) {
  stockade::bulkhead<> patient{{.max_concurrent = 2, .max_queue = 8, .max_wait = duration::max()}};
  EXPECT_TRUE(names(pipeline{std::ref(patient)}.worst_case(1s).elapsed, "bulkhead"));
}

TEST(WorstCase, BulkheadAddsItsQueueWait) {
  stockade::bulkhead<> queued{{.max_concurrent = 2, .max_queue = 8, .max_wait = 2s}};
  stockade::bulkhead<> no_queue{{.max_concurrent = 2}};  // refuses at once when full
  EXPECT_EQ((pipeline{std::ref(queued), timeout{1s}}.worst_case().elapsed.value()), 3s);
  EXPECT_EQ((pipeline{std::ref(no_queue), timeout{1s}}.worst_case().elapsed.value()), 1s);
}

TEST(WorstCase, WarmupGateIsBoundedOnlyByATimeoutOutsideIt) {
  manual_clock clock;
  stockade::warmup_gate gate{[] {}, {}, clock};
  EXPECT_TRUE(names(pipeline{std::ref(gate), timeout{1s}}.worst_case().elapsed, "warmup_gate"));
  EXPECT_EQ((pipeline{timeout{5s}, std::ref(gate)}.worst_case().elapsed.value()), 5s);
}

TEST(WorstCase, HealthCheckIsBoundedOnlyByATimeoutOutsideIt) {
  // A waiter whose probe-running callers give up at their own deadlines may wait through
  // several probes, each up to probe_timeout: only its own deadline ends that.
  manual_clock clock;
  stockade::health_check health{[] { return true; }, {.probe_timeout = 300ms}, clock};
  EXPECT_TRUE(names(pipeline{std::ref(health), timeout{1s}}.worst_case().elapsed, "health_check"));
  EXPECT_EQ((pipeline{timeout{5s}, std::ref(health)}.worst_case().elapsed.value()), 5s);
}

TEST(WorstCase, ResourceIsBoundedOnlyByATimeoutOutsideIt) {
  struct client {};
  manual_clock clock;
  stockade::resource<client> db{{.create = [] { return client{}; }}, {}, clock};
  EXPECT_TRUE(names(pipeline{std::ref(db), timeout{1s}}.worst_case().elapsed, "resource"));
}

TEST(WorstCase, BreakerAddsNothingUnlessAHealthProbeMayRunFirst) {
  manual_clock clock;
  stockade::circuit_breaker<> breaker{{.probe_timeout = 2s}, clock};
  EXPECT_EQ((pipeline{std::ref(breaker), timeout{1s}}.worst_case().elapsed.value()), 1s);
  breaker.set_health_probe([] { return true; });
  // A caller may run the probe (at most probe_timeout) before its own call.
  EXPECT_EQ((pipeline{std::ref(breaker), timeout{1s}}.worst_case().elapsed.value()), 3s);
}

TEST(WorstCase, FaultInjectionAddsEachLatencyFault) {
  stockade::fault_injector chaos{{.seed = 1},
                                 stockade::inject_latency{{.every_nth = 2}, 300ms},
                                 stockade::inject_exception{{.probability = 0.1}},
                                 stockade::inject_latency{{.probability = 0.5}, 200ms}};
  EXPECT_EQ((pipeline{std::ref(chaos), timeout{1s}}.worst_case().elapsed.value()), 1500ms);
}

TEST(WorstCase, CalleeBoundByADetachedTimeoutIsStatedByItsLimit) {
  // A detached timeout wraps the callable (bind), not the stack: its limit is the callable's.
  const stockade::detached_timeout limited{2s};
  constexpr auto stack = pipeline{plain_retry(2, stockade::constant{100ms})};
  EXPECT_EQ(stack.worst_case(limited.limit()).elapsed.value(), 4100ms);
}

struct silent_policy {  // a user's policy that does not say what it does to time or attempts
  template <class Next>
  auto invoke(stockade::context& ctx, Next&& next) const {
    return next(ctx);
  }
};

struct twice_policy {  // a user's policy that runs what is inside it at most twice
  template <class Next>
  auto invoke(stockade::context& ctx, Next&& next) const {
    return next(ctx);
  }
  constexpr stack_bounds worst_case(const stack_bounds& inner) const {
    return {inner.attempts.value() * 2, stockade::bound<duration>(inner.elapsed.value() * 2)};
  }
};

TEST(WorstCase, PolicyThatDoesNotSayIsUnboundedBothWays) {
  constexpr auto stack = pipeline{timeout{1s}, silent_policy{}};
  EXPECT_FALSE(stack.worst_case().attempts.bounded());
  EXPECT_NE(stack.worst_case().attempts.unbounded_by().find("without worst_case()"),
            std::string_view::npos);
  EXPECT_EQ(stack.worst_case().elapsed.value(), 1s);  // the timeout outside still bounds time
}

TEST(WorstCase, PolicyThatSaysIsTakenAtItsWord) {
  constexpr auto stack = pipeline{twice_policy{}, timeout{1s}};
  static_assert(stack.worst_case().attempts == bound<std::int64_t>(2));
  static_assert(stack.worst_case().elapsed == bound<duration>(2s));
}

}  // namespace
