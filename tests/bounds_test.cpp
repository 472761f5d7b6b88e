// The worst case of a stack (bounds.hpp, pipeline::worst_case): each layer's contribution, the
// names given to what has no bound, arithmetic that saturates, and the post-mortem's stack.
#include <stockade/stockade.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <climits>
#include <functional>
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

TEST(WorstCase, SumsThatWouldOverflowSaturateToUnbounded) {
  constexpr auto stack =
      pipeline{stockade::allow_nested_retries, plain_retry(INT_MAX, stockade::constant{1h}),
               plain_retry(INT_MAX, stockade::constant{1h})};
  constexpr stack_bounds bounds = stack.worst_case(1h);
  static_assert(bounds.attempts.bounded());  // 2^62: large, but a number
  static_assert(bounds.attempts.value() == std::int64_t{INT_MAX} * INT_MAX);
  EXPECT_TRUE(names(bounds.elapsed, "retry"));
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

TEST(WorstCase, HealthCheckAddsOneProbeTimeout) {
  manual_clock clock;
  stockade::health_check health{[] { return true; }, {.probe_timeout = 300ms}, clock};
  EXPECT_EQ((pipeline{std::ref(health), timeout{1s}}.worst_case().elapsed.value()), 1300ms);
}

TEST(WorstCase, ResourceIsBoundedOnlyByATimeoutOutsideIt) {
  struct client {};
  manual_clock clock;
  stockade::resource<client> db{{.create = [] { return client{}; }}, {}, clock};
  EXPECT_TRUE(names(pipeline{std::ref(db), timeout{1s}}.worst_case().elapsed, "resource"));
}

TEST(WorstCase, BreakerAddsNothingUnlessAHealthProbeMayMakeCallersWait) {
  manual_clock clock;
  stockade::circuit_breaker<> breaker{{}, clock};
  EXPECT_EQ((pipeline{std::ref(breaker), timeout{1s}}.worst_case().elapsed.value()), 1s);
  breaker.set_health_probe([] { return true; });
  EXPECT_TRUE(
      names(pipeline{std::ref(breaker), timeout{1s}}.worst_case().elapsed, "circuit_breaker"));
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
