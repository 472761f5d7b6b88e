#include <stockade/classifier.hpp>
#include <stockade/manual_clock.hpp>
#include <stockade/pipeline.hpp>
#include <stockade/retry.hpp>

#include <gtest/gtest.h>

#include "support.hpp"

#include <exception>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

namespace {

using stockade_test::compiles_as_constant;
using stockade_test::message_of;

using namespace std::chrono_literals;
using stockade::duration;
using stockade::give_up_reason;
using stockade::jitter;
using stockade::outcome;
using stockade::verdict;
using stockade::testing::manual_clock;

/// What the callee throws; `attempt` tells which attempt threw it.
struct flaky_error : std::runtime_error {
  explicit flaky_error(int n) : std::runtime_error("flaky"), attempt(n) {}
  int attempt;
};
/// Classified fatal (see fatal_rules).
struct broken_error : std::runtime_error {
  broken_error() : std::runtime_error("broken") {}
};
/// Carries a server's retry-after hint (see hint_rules).
struct busy_error : std::runtime_error {
  explicit busy_error(duration h) : std::runtime_error("busy"), hint(h) {}
  duration hint;
};

const auto fatal_rules = stockade::classifier{stockade::on<broken_error, verdict::fatal>{}};
const auto hint_rules = stockade::classifier{stockade::when<busy_error>([](const busy_error& e) {
  return outcome{verdict::transient, e.hint};
})};
const auto negative_is_failure = stockade::classifier{stockade::on_result(
    [](int value) { return value < 0 ? verdict::transient : verdict::success; })};

/// Records retry events.
struct recorder {
  std::vector<stockade::retry_scheduled> scheduled;
  std::vector<stockade::retry_gave_up> gave_up;
  void on(const stockade::retry_scheduled& e) { scheduled.push_back(e); }
  void on(const stockade::retry_gave_up& e) { gave_up.push_back(e); }

  std::vector<duration> delays() const {
    std::vector<duration> result;
    for (const auto& e : scheduled) result.push_back(e.delay);
    return result;
  }
  give_up_reason reason() const {
    return gave_up.empty() ? give_up_reason{} : gave_up.back().reason;
  }
};

/// A policy with `options` (no jitter unless asked) that reports to `events`, with `parts`.
template <class... Parts>
auto retrying(stockade::retry_options<> options, recorder& events, Parts... parts) {
  return stockade::retry{options, stockade::observer_ref{events}, parts...};
}

stockade::retry_options<> no_jitter(stockade::retry_options<> options) {
  options.jitter = jitter::none();
  return options;
}

/// A callee that throws flaky_error on its first `failures` attempts, then returns 42.
struct fails_then_succeeds {
  int failures;
  int* calls;
  int operator()() const {
    const int n = ++*calls;
    if (n <= failures) throw flaky_error(n);
    return 42;
  }
};

// --- the loop -------------------------------------------------------------------------------

TEST(Retry, FirstSuccessMakesOneCallAndNoWait) {
  manual_clock clock;
  stockade::context ctx{clock};
  recorder events;
  int calls = 0;
  const auto policy = stockade::pipeline{retrying({}, events)};
  EXPECT_EQ(policy(ctx, fails_then_succeeds{0, &calls}), 42);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(clock.sleep_count(), 0U);
  EXPECT_TRUE(events.scheduled.empty() && events.gave_up.empty());
}

TEST(Retry, RetriesTransientFailuresUntilSuccess) {
  manual_clock clock;
  stockade::context ctx{clock};
  recorder events;
  int calls = 0;
  const auto policy = stockade::pipeline{retrying({.max_attempts = 4}, events)};
  EXPECT_EQ(policy(ctx, fails_then_succeeds{3, &calls}), 42);
  EXPECT_EQ(calls, 4);
  EXPECT_EQ(events.scheduled.size(), 3U);
  EXPECT_TRUE(events.gave_up.empty());
}

TEST(Retry, NumbersEachAttemptInTheContext) {
  manual_clock clock;
  stockade::context ctx{clock};
  std::vector<int> seen;
  const auto policy = stockade::pipeline{stockade::retry{{.max_attempts = 3}}};
  EXPECT_THROW(policy(ctx,
                      [&](stockade::context& inner) -> int {
                        seen.push_back(inner.attempt());
                        throw flaky_error(inner.attempt());
                      }),
               flaky_error);
  EXPECT_EQ(seen, (std::vector<int>{1, 2, 3}));
}

TEST(Retry, RethrowsTheLastExceptionObjectUnchanged) {
  manual_clock clock;
  stockade::context ctx{clock};
  recorder events;
  std::vector<const void*> thrown;
  int calls = 0;
  const auto policy = stockade::pipeline{retrying({.max_attempts = 3}, events)};
  try {
    policy(ctx, [&]() -> int {
      try {
        throw flaky_error(++calls);
      } catch (const flaky_error& e) {
        thrown.push_back(&e);
        throw;
      }
    });
    FAIL() << "no exception";
  } catch (const flaky_error& e) {
    EXPECT_EQ(e.attempt, 3);
    EXPECT_EQ(&e, thrown.back());
  }
  EXPECT_EQ(events.reason(), give_up_reason::attempts);
  EXPECT_EQ(events.gave_up.back().attempts, 3);
}

TEST(Retry, ReturnsTheLastFailedValueWhenAttemptsRunOut) {
  manual_clock clock;
  stockade::context ctx{clock};
  recorder events;
  int calls = 0;
  const auto policy =
      stockade::pipeline{retrying({.max_attempts = 3}, events)}.classify_with(negative_is_failure);
  EXPECT_EQ(policy(ctx, [&] { return -(++calls); }), -3);
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(events.reason(), give_up_reason::attempts);
}

TEST(Retry, FailedValueRecoveredByALaterAttemptIsReplaced) {
  manual_clock clock;
  stockade::context ctx{clock};
  int calls = 0;
  const auto policy =
      stockade::pipeline{stockade::retry{{.max_attempts = 3}}}.classify_with(negative_is_failure);
  EXPECT_EQ(policy(ctx, [&] { return ++calls == 1 ? -1 : 7; }), 7);
}

TEST(Retry, RetriesAVoidCallee) {
  manual_clock clock;
  stockade::context ctx{clock};
  int calls = 0;
  const auto policy = stockade::pipeline{stockade::retry{{.max_attempts = 3}}};
  policy(ctx, [&] {
    if (++calls < 3) throw flaky_error(calls);
  });
  EXPECT_EQ(calls, 3);
}

TEST(Retry, MaxAttemptsOfOneNeverRetries) {
  manual_clock clock;
  stockade::context ctx{clock};
  recorder events;
  int calls = 0;
  const auto policy = stockade::pipeline{retrying({.max_attempts = 1}, events)};
  EXPECT_THROW(policy(ctx, fails_then_succeeds{5, &calls}), flaky_error);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(events.reason(), give_up_reason::attempts);
}

// --- which verdicts ---------------------------------------------------------------------------

TEST(Retry, NeverRetriesAPermanentVerdict) {
  manual_clock clock;
  stockade::context ctx{clock};
  recorder events;
  int calls = 0;
  const auto policy = stockade::pipeline{retrying({.max_attempts = 5}, events)};
  EXPECT_THROW(policy(ctx,
                      [&]() -> int {
                        ++calls;
                        throw std::invalid_argument("caller's fault");
                      }),
               std::invalid_argument);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(events.reason(), give_up_reason::verdict);
  EXPECT_EQ(events.gave_up.back().result.kind, verdict::permanent);
}

TEST(Retry, RetriesFatalByDefault) {
  manual_clock clock;
  stockade::context ctx{clock};
  int calls = 0;
  const auto policy =
      stockade::pipeline{stockade::retry{{.max_attempts = 3}}}.classify_with(fatal_rules);
  EXPECT_EQ(policy(ctx,
                   [&] {
                     if (++calls == 1) throw broken_error();
                     return 1;
                   }),
            1);
  EXPECT_EQ(calls, 2);
}

TEST(Retry, RetryOnDecidesWhichVerdictsAreRetried) {
  manual_clock clock;
  stockade::context ctx{clock};
  recorder events;
  int calls = 0;
  const auto policy =
      stockade::pipeline{retrying({.max_attempts = 3, .retry_on = {verdict::transient}}, events)}
          .classify_with(fatal_rules);
  EXPECT_THROW(policy(ctx,
                      [&]() -> int {
                        ++calls;
                        throw broken_error();
                      }),
               broken_error);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(events.reason(), give_up_reason::verdict);
}

TEST(Retry, PredicateRefinesRetryOn) {
  manual_clock clock;
  stockade::context ctx{clock};
  recorder events;
  int calls = 0;
  const auto policy = stockade::pipeline{retrying(
      {.max_attempts = 5,
       .retry_if = [](const outcome&, const stockade::context& c) { return c.attempt() < 2; }},
      events)};
  EXPECT_THROW(policy(ctx, fails_then_succeeds{5, &calls}), flaky_error);
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(events.reason(), give_up_reason::verdict);
}

// --- delays -----------------------------------------------------------------------------------

TEST(Retry, WaitsTheExactExponentialSequence) {
  manual_clock clock;
  stockade::context ctx{clock};
  recorder events;
  int calls = 0;
  const auto policy = stockade::pipeline{retrying(
      no_jitter({.max_attempts = 6, .backoff = stockade::exponential{100ms, 2.0, 1s}}), events)};
  EXPECT_THROW(policy(ctx, fails_then_succeeds{10, &calls}), flaky_error);
  EXPECT_EQ(events.delays(), (std::vector<duration>{100ms, 200ms, 400ms, 800ms, 1s}));
  EXPECT_EQ(clock.sleep_count(), 5U);
  EXPECT_EQ(clock.total_slept(), 2500ms);
}

TEST(Retry, WaitsTheExactConstantAndLinearSequences) {
  manual_clock clock;
  stockade::context ctx{clock};
  recorder constant_events, linear_events;
  int calls = 0;
  const auto constant_policy = stockade::pipeline{retrying(
      no_jitter({.max_attempts = 4, .backoff = stockade::constant{300ms}}), constant_events)};
  const auto linear_policy = stockade::pipeline{
      retrying(no_jitter({.max_attempts = 5, .backoff = stockade::linear{100ms, 100ms, 350ms}}),
               linear_events)};
  EXPECT_THROW(constant_policy(ctx, fails_then_succeeds{10, &calls}), flaky_error);
  EXPECT_THROW(linear_policy(ctx, fails_then_succeeds{10, &calls}), flaky_error);
  EXPECT_EQ(constant_events.delays(), (std::vector<duration>{300ms, 300ms, 300ms}));
  EXPECT_EQ(linear_events.delays(), (std::vector<duration>{100ms, 200ms, 300ms, 350ms}));
}

TEST(Retry, ZeroDelayRetriesWithoutSleeping) {
  manual_clock clock;
  stockade::context ctx{clock};
  int calls = 0;
  const auto policy =
      stockade::pipeline{stockade::retry{{.max_attempts = 3, .backoff = stockade::constant{0ms}}}};
  EXPECT_EQ(policy(ctx, fails_then_succeeds{2, &calls}), 42);
  EXPECT_EQ(clock.sleep_count(), 0U);
}

TEST(Retry, FullJitterKeepsEveryDelayWithinTheSchedule) {
  manual_clock clock;
  stockade::context ctx{clock};
  recorder events;
  int calls = 0;
  const auto policy = stockade::pipeline{
      retrying({.max_attempts = 200, .backoff = stockade::exponential{10ms, 2.0, 1s}}, events,
               stockade::seeded_random{2024})};
  EXPECT_THROW(policy(ctx, fails_then_succeeds{1000, &calls}), flaky_error);
  ASSERT_EQ(events.scheduled.size(), 199U);
  const stockade::exponential schedule{10ms, 2.0, 1s};
  for (const auto& e : events.scheduled) {
    ASSERT_GE(e.delay, 0ms);
    ASSERT_LE(e.delay, schedule.delay(e.attempt)) << e.attempt;
  }
}

TEST(Retry, SameSeedGivesTheSameJitteredDelays) {
  manual_clock clock;
  stockade::context ctx{clock};
  recorder first, second;
  int calls_a = 0, calls_b = 0;
  const stockade::retry_options<> options{.max_attempts = 6, .jitter = jitter::decorrelated()};
  const auto a = stockade::pipeline{retrying(options, first, stockade::seeded_random{9})};
  const auto b = stockade::pipeline{retrying(options, second, stockade::seeded_random{9})};
  EXPECT_THROW(a(ctx, fails_then_succeeds{10, &calls_a}), flaky_error);
  EXPECT_THROW(b(ctx, fails_then_succeeds{10, &calls_b}), flaky_error);
  EXPECT_EQ(first.delays(), second.delays());
  EXPECT_EQ(first.delays().size(), 5U);
}

TEST(Retry, DecorrelatedJitterKeepsToTheBackoffsOwnCap) {
  manual_clock clock;
  stockade::context ctx{clock};
  recorder events;
  int calls = 0;
  const auto policy = stockade::pipeline{
      retrying({.max_attempts = 30,
                .backoff = stockade::exponential{10ms, 2.0, 1s},
                .jitter = jitter::decorrelated()},  // max_delay stays at its 30 s default
               events, stockade::seeded_random{5})};
  EXPECT_THROW(policy(ctx, fails_then_succeeds{100, &calls}), flaky_error);
  ASSERT_EQ(events.delays().size(), 29U);
  for (const duration delay : events.delays()) EXPECT_LE(delay, 1s);
}

TEST(Retry, MaxDelayCapsTheScheduleAndItsJitter) {
  manual_clock clock;
  stockade::context ctx{clock};
  recorder events;
  int calls = 0;
  const auto policy = stockade::pipeline{retrying({.max_attempts = 50,
                                                   .backoff = stockade::exponential{1s, 2.0, 60s},
                                                   .jitter = jitter::proportional(0.2),
                                                   .max_delay = 1500ms},
                                                  events, stockade::seeded_random{5})};
  EXPECT_THROW(policy(ctx, fails_then_succeeds{100, &calls}), flaky_error);
  // The schedule is capped first, then spread by ±20 % and capped again: [1.2 s, 1.5 s].
  for (const auto& e : events.scheduled) {
    if (e.attempt >= 2) {
      ASSERT_GE(e.delay, 1200ms);
    }
    ASSERT_LE(e.delay, 1500ms);
  }
}

// --- retry-after hints --------------------------------------------------------------------------

TEST(Retry, RetryAfterHintReplacesTheComputedDelay) {
  manual_clock clock;
  stockade::context ctx{clock};
  recorder events;
  int calls = 0;
  const auto policy =
      stockade::pipeline{retrying({.max_attempts = 3, .backoff = stockade::constant{10ms}}, events)}
          .classify_with(hint_rules);
  EXPECT_EQ(policy(ctx,
                   [&] {
                     if (++calls == 1) throw busy_error(750ms);
                     return 5;
                   }),
            5);
  ASSERT_EQ(events.scheduled.size(), 1U);
  EXPECT_EQ(events.scheduled[0].delay, 750ms);
  EXPECT_TRUE(events.scheduled[0].from_hint);
  EXPECT_EQ(clock.total_slept(), 750ms);
}

TEST(Retry, RetryAfterHintIsCappedByMaxDelay) {
  manual_clock clock;
  stockade::context ctx{clock};
  recorder events;
  int calls = 0;
  const auto policy =
      stockade::pipeline{retrying({.max_attempts = 2, .max_delay = 1s}, events)}.classify_with(
          hint_rules);
  EXPECT_THROW(policy(ctx,
                      [&]() -> int {
                        ++calls;
                        throw busy_error(5s);
                      }),
               busy_error);
  EXPECT_EQ(events.delays(), (std::vector<duration>{1s}));
}

TEST(Retry, RetryAfterHintPastTheDeadlineGivesUpWithoutWaiting) {
  manual_clock clock;
  stockade::context ctx{clock};
  ctx.set_timeout(500ms);
  recorder events;
  int calls = 0;
  const auto policy =
      stockade::pipeline{retrying({.max_attempts = 3}, events)}.classify_with(hint_rules);
  EXPECT_THROW(policy(ctx,
                      [&]() -> int {
                        ++calls;
                        throw busy_error(600ms);
                      }),
               busy_error);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(clock.sleep_count(), 0U);
  EXPECT_EQ(events.reason(), give_up_reason::deadline);
  EXPECT_EQ(events.gave_up.back().delay, 600ms);
}

TEST(Retry, NegativeRetryAfterMeansDoNotRetry) {
  manual_clock clock;
  stockade::context ctx{clock};
  recorder events;
  int calls = 0;
  const auto policy =
      stockade::pipeline{retrying({.max_attempts = 3}, events)}.classify_with(hint_rules);
  EXPECT_THROW(policy(ctx,
                      [&]() -> int {
                        ++calls;
                        throw busy_error(-1ms);
                      }),
               busy_error);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(events.reason(), give_up_reason::pushback);
}

TEST(Retry, HintIsIgnoredWhenUseRetryAfterIsOff) {
  manual_clock clock;
  stockade::context ctx{clock};
  recorder events;
  int calls = 0;
  const auto policy = stockade::pipeline{retrying(no_jitter({.max_attempts = 2,
                                                             .backoff = stockade::constant{20ms},
                                                             .use_retry_after = false}),
                                                  events)}
                          .classify_with(hint_rules);
  EXPECT_THROW(policy(ctx,
                      [&]() -> int {
                        ++calls;
                        throw busy_error(-1ms);
                      }),
               busy_error);
  EXPECT_EQ(events.delays(), (std::vector<duration>{20ms}));
}

TEST(Retry, RejectionIsRetriedAfterItsRetryAfter) {
  manual_clock clock;
  stockade::context ctx{clock};
  recorder events;
  int calls = 0;
  const auto policy = stockade::pipeline{retrying({.max_attempts = 3}, events)};
  EXPECT_EQ(policy(ctx,
                   [&] {
                     if (++calls == 1) throw stockade::error(stockade::errc::circuit_open, 300ms);
                     return 3;
                   }),
            3);
  ASSERT_EQ(events.scheduled.size(), 1U);
  EXPECT_EQ(events.scheduled[0].delay, 300ms);
  EXPECT_TRUE(events.scheduled[0].result.rejected);
}

TEST(Retry, RejectionEndsTheCallWhenRetryRejectionsIsOff) {
  manual_clock clock;
  stockade::context ctx{clock};
  recorder events;
  int calls = 0;
  const auto policy =
      stockade::pipeline{retrying({.max_attempts = 3, .retry_rejections = false}, events)};
  EXPECT_THROW(policy(ctx,
                      [&]() -> int {
                        ++calls;
                        throw stockade::error(stockade::errc::bulkhead_full);
                      }),
               stockade::error);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(events.reason(), give_up_reason::verdict);
}

// --- deadline, elapsed, cancellation -------------------------------------------------------------

TEST(Retry, GivesUpAtOnceWhenTheNextWaitWouldPassTheDeadline) {
  manual_clock clock;
  stockade::context ctx{clock};
  ctx.set_timeout(250ms);
  recorder events;
  int calls = 0;
  const auto policy = stockade::pipeline{retrying(
      no_jitter({.max_attempts = 5, .backoff = stockade::exponential{100ms, 2.0, 1s}}), events)};
  EXPECT_THROW(policy(ctx, fails_then_succeeds{10, &calls}), flaky_error);
  EXPECT_EQ(calls, 2);                 // 100 ms wait fitted; the 200 ms one would end at 300 ms
  EXPECT_EQ(clock.sleep_count(), 1U);  // it was never started
  EXPECT_EQ(clock.total_slept(), 100ms);
  EXPECT_EQ(events.reason(), give_up_reason::deadline);
  EXPECT_EQ(events.gave_up.back().delay, 200ms);
}

TEST(Retry, GivesUpWhenTheWaitWouldEndExactlyAtTheDeadline) {
  manual_clock clock;
  stockade::context ctx{clock};
  ctx.set_timeout(100ms);
  recorder events;
  int calls = 0;
  const auto policy = stockade::pipeline{
      retrying(no_jitter({.max_attempts = 5, .backoff = stockade::constant{100ms}}), events)};
  EXPECT_THROW(policy(ctx, fails_then_succeeds{10, &calls}), flaky_error);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(clock.sleep_count(), 0U);
  EXPECT_EQ(events.reason(), give_up_reason::deadline);
}

TEST(Retry, GivesUpWhenMaxElapsedWouldBeExceeded) {
  manual_clock clock;
  stockade::context ctx{clock};
  recorder events;
  int calls = 0;
  const auto policy =
      stockade::pipeline{retrying(no_jitter({.max_attempts = 5,
                                             .max_elapsed = 250ms,
                                             .backoff = stockade::exponential{100ms, 2.0, 1s}}),
                                  events)};
  EXPECT_THROW(policy(ctx, fails_then_succeeds{10, &calls}), flaky_error);
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(clock.total_slept(), 100ms);
  EXPECT_EQ(events.reason(), give_up_reason::elapsed);
}

TEST(Retry, MaxElapsedCountsTheTimeAttemptsTake) {
  manual_clock clock;
  stockade::context ctx{clock};
  recorder events;
  int calls = 0;
  const auto policy = stockade::pipeline{retrying(
      no_jitter({.max_attempts = 10, .max_elapsed = 250ms, .backoff = stockade::constant{10ms}}),
      events)};
  EXPECT_THROW(policy(ctx,
                      [&]() -> int {
                        clock.advance(100ms);  // each attempt takes 100 ms
                        throw flaky_error(++calls);
                      }),
               flaky_error);
  // attempts at [0,100] [110,210] [220,320]: the next would start at 330 ms > 250 ms
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(events.reason(), give_up_reason::elapsed);
}

TEST(Retry, ReportsTheEarlierOfDeadlineAndMaxElapsed) {
  manual_clock clock;
  stockade::context ctx{clock};
  ctx.set_timeout(1s);
  recorder events;
  int calls = 0;
  const auto policy = stockade::pipeline{
      retrying(no_jitter({.max_attempts = 5, .max_elapsed = 2s, .backoff = stockade::constant{3s}}),
               events)};
  EXPECT_THROW(policy(ctx, fails_then_succeeds{10, &calls}), flaky_error);
  EXPECT_EQ(events.reason(), give_up_reason::deadline);
}

TEST(Retry, StopTokenWakesTheWaitAndEndsTheCallWithTheLastError) {
  manual_clock clock{manual_clock::sleeps::wait_for_advance};
  const stockade::time_point start = clock.now();
  std::stop_source stop;
  recorder events;
  int calls = 0;
  int last_attempt = 0;
  const auto policy = stockade::pipeline{
      retrying(no_jitter({.max_attempts = 5, .backoff = stockade::constant{10s}}), events)};
  std::thread caller([&] {
    stockade::context ctx{clock};
    ctx.set_stop_token(stop.get_token());
    try {
      policy(ctx, fails_then_succeeds{10, &calls});
    } catch (const flaky_error& e) {
      last_attempt = e.attempt;
    }
  });
  ASSERT_TRUE(clock.await_waiting(1));  // the caller is in its 10 s wait
  stop.request_stop();
  caller.join();
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(last_attempt, 1);
  EXPECT_EQ(clock.now(), start);  // woken without virtual time passing
  EXPECT_EQ(events.reason(), give_up_reason::cancelled);
}

TEST(Retry, StopRequestedBeforeAWaitGivesUpWithoutWaiting) {
  manual_clock clock;
  stockade::context ctx{clock};
  std::stop_source stop;
  ctx.set_stop_token(stop.get_token());
  recorder events;
  int calls = 0;
  const auto policy = stockade::pipeline{retrying({.max_attempts = 5}, events)};
  EXPECT_THROW(policy(ctx,
                      [&]() -> int {
                        ++calls;
                        stop.request_stop();
                        throw flaky_error(calls);
                      }),
               flaky_error);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(clock.sleep_count(), 0U);
  EXPECT_EQ(events.reason(), give_up_reason::cancelled);
}

/// A clock that notes whether any sleep began while an exception was being handled.
class catch_checking_clock final : public stockade::clock {
 public:
  bool slept_inside_catch = false;
  stockade::time_point now() const noexcept override { return inner_.now(); }
  void arm(stockade::timer& t, stockade::time_point when) override {
    if (std::current_exception()) slept_inside_catch = true;
    inner_.arm(t, when);
  }
  bool cancel(stockade::timer& t) noexcept override { return inner_.cancel(t); }

 private:
  manual_clock inner_;
};

TEST(Retry, WaitsOutsideTheCatchBlock) {
  catch_checking_clock clock;
  stockade::context ctx{clock};
  int calls = 0;
  const auto policy = stockade::pipeline{stockade::retry{{.max_attempts = 3}}};
  EXPECT_EQ(policy(ctx, fails_then_succeeds{2, &calls}), 42);
  EXPECT_FALSE(clock.slept_inside_catch);
}

// --- reset on fatal
// -------------------------------------------------------------------------------

TEST(Retry, RunsResetActionsOnAFatalVerdictBeforeTheNextAttempt) {
  manual_clock clock;
  stockade::context ctx{clock};
  std::vector<std::string> log;
  int calls = 0;
  const auto policy =
      stockade::pipeline{
          stockade::retry{{.max_attempts = 3},
                          stockade::on_fatal([&] { log.push_back("reset gate"); },
                                             [&] { log.push_back("drop connection"); })}}
          .classify_with(fatal_rules);
  EXPECT_EQ(policy(ctx,
                   [&] {
                     log.push_back("attempt " + std::to_string(++calls));
                     if (calls == 1) throw broken_error();
                     return 1;
                   }),
            1);
  EXPECT_EQ(log,
            (std::vector<std::string>{"attempt 1", "reset gate", "drop connection", "attempt 2"}));
}

TEST(Retry, DoesNotRunResetActionsOnATransientVerdict) {
  manual_clock clock;
  stockade::context ctx{clock};
  int resets = 0, calls = 0;
  const auto policy = stockade::pipeline{
      stockade::retry{{.max_attempts = 3}, stockade::on_fatal([&] { ++resets; })}};
  EXPECT_EQ(policy(ctx, fails_then_succeeds{2, &calls}), 42);
  EXPECT_EQ(resets, 0);
}

TEST(Retry, RunsResetActionsWhenGivingUpOnAFatalVerdict) {
  manual_clock clock;
  stockade::context ctx{clock};
  int resets = 0;
  const auto policy = stockade::pipeline{
      stockade::retry{{.max_attempts = 2}, stockade::on_fatal([&] {
                        ++resets;
                      })}}.classify_with(fatal_rules);
  EXPECT_THROW(policy(ctx, []() -> int { throw broken_error(); }), broken_error);
  EXPECT_EQ(resets, 2);  // once per fatal attempt, the last one included
}

TEST(Retry, ResetActionsRunInTheOrderGiven) {
  manual_clock clock;
  stockade::context ctx{clock};
  std::string order;
  const auto policy = stockade::pipeline{stockade::retry{{.max_attempts = 1},
                                                         stockade::on_fatal([&] { order += "a"; },
                                                                            [&] { order += "b"; })}}
                          .classify_with(fatal_rules);
  EXPECT_THROW(policy(ctx, []() -> int { throw broken_error(); }), broken_error);
  EXPECT_EQ(order, "ab");
}

// --- budgets
// ---------------------------------------------------------------------------------------

TEST(Retry, BudgetRefusalReturnsTheErrorAsIsAndSaysWhy) {
  manual_clock clock;
  stockade::context ctx{clock};
  stockade::token_budget budget{{.max_tokens = 2, .token_ratio = 0.1}};
  recorder events;
  int calls = 0;
  const auto policy = stockade::pipeline{
      retrying(no_jitter({.max_attempts = 5, .backoff = stockade::constant{50ms}}), events,
               std::ref(budget))};
  try {
    policy(ctx, fails_then_succeeds{10, &calls});
    FAIL() << "no exception";
  } catch (const flaky_error& e) {
    EXPECT_EQ(e.attempt, 1);
  }
  EXPECT_EQ(calls, 1);  // one failure leaves 1 token: not above max_tokens / 2
  EXPECT_EQ(clock.sleep_count(), 0U);
  EXPECT_EQ(events.reason(), give_up_reason::budget);
  EXPECT_EQ(events.gave_up.back().delay, 50ms);
  EXPECT_EQ(budget.retries_refused(), 1U);
}

TEST(Retry, BudgetSeesEveryAttempt) {
  manual_clock clock;
  stockade::context ctx{clock};
  stockade::token_budget budget{{.max_tokens = 10, .token_ratio = 0.1}};
  int calls = 0;
  const auto policy = stockade::pipeline{stockade::retry{{.max_attempts = 5}, std::ref(budget)}};
  EXPECT_EQ(policy(ctx, fails_then_succeeds{2, &calls}), 42);
  EXPECT_DOUBLE_EQ(budget.tokens(), 8.1);  // 10 - 1 - 1 + 0.1
  EXPECT_EQ(budget.retries_granted(), 2U);
}

TEST(Retry, SharedPercentBudgetBoundsRetriesAcrossCallSites) {
  manual_clock clock;
  stockade::context ctx{clock};
  stockade::percent_budget budget{{.ttl = 10s, .min_per_sec = 0, .percent_can_retry = 0.5}, clock};
  // Two call sites, different policies; one shared through its concrete type, one through the
  // run-time base class.
  stockade::retry_budget& erased = budget;
  const auto reads = stockade::pipeline{
      stockade::retry{{.max_attempts = 3, .backoff = stockade::constant{0ms}}, std::ref(budget)}};
  const auto writes = stockade::pipeline{
      stockade::retry{{.max_attempts = 4, .backoff = stockade::constant{0ms}}, std::ref(erased)}};
  int attempts = 0;
  const auto always_fails = [&]() -> int { throw flaky_error(++attempts); };
  for (int i = 0; i < 10; ++i) {
    if (i % 2 == 0) {
      EXPECT_THROW(reads(ctx, always_fails), flaky_error);
    } else {
      EXPECT_THROW(writes(ctx, always_fails), flaky_error);
    }
  }
  EXPECT_EQ(budget.retries_granted(), 5U);  // 50 % of 10 calls, however many attempts allowed
  EXPECT_EQ(attempts, 15);
}

/// Any type with on_attempt/try_retry is a budget; this one refuses every retry.
struct refusing_budget {
  int attempts_seen = 0;
  int first_attempts = 0;
  void on_attempt(const outcome& /*result*/, bool first) {
    ++attempts_seen;
    first_attempts += first ? 1 : 0;
  }
  bool try_retry() const { return false; }
};

TEST(Retry, AcceptsAUserDefinedBudgetType) {
  manual_clock clock;
  stockade::context ctx{clock};
  refusing_budget budget;
  recorder events;
  int calls = 0;
  const auto policy = stockade::pipeline{retrying({.max_attempts = 3}, events, std::ref(budget))};
  EXPECT_THROW(policy(ctx, fails_then_succeeds{5, &calls}), flaky_error);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(budget.attempts_seen, 1);
  EXPECT_EQ(budget.first_attempts, 1);
  EXPECT_EQ(events.reason(), give_up_reason::budget);
}

// --- events
// ----------------------------------------------------------------------------------------

TEST(Retry, ScheduledEventsReportAttemptDelayVerdictAndName) {
  manual_clock clock;
  stockade::context ctx{clock};
  ctx.set_name("db.query");
  recorder events;
  int calls = 0;
  const auto policy =
      stockade::pipeline{
          retrying(no_jitter({.max_attempts = 3, .backoff = stockade::exponential{10ms, 3.0, 1s}}),
                   events)}
          .classify_with(fatal_rules);
  EXPECT_EQ(policy(ctx,
                   [&] {
                     if (++calls == 1) throw broken_error();
                     if (calls == 2) throw flaky_error(2);
                     return 0;
                   }),
            0);
  ASSERT_EQ(events.scheduled.size(), 2U);
  EXPECT_EQ(events.scheduled[0].name, "db.query");
  EXPECT_EQ(events.scheduled[0].attempt, 1);
  EXPECT_EQ(events.scheduled[0].delay, 10ms);
  EXPECT_EQ(events.scheduled[0].result.kind, verdict::fatal);
  EXPECT_FALSE(events.scheduled[0].from_hint);
  EXPECT_EQ(events.scheduled[1].attempt, 2);
  EXPECT_EQ(events.scheduled[1].delay, 30ms);
  EXPECT_EQ(events.scheduled[1].result.kind, verdict::transient);
}

TEST(Retry, CountersObserverCountsRetryEvents) {
  manual_clock clock;
  stockade::context ctx{clock};
  stockade::counters counts;
  int calls = 0;
  const auto policy =
      stockade::pipeline{stockade::retry{{.max_attempts = 3}, stockade::observer_ref{counts}}};
  EXPECT_THROW(policy(ctx, fails_then_succeeds{5, &calls}), flaky_error);
  EXPECT_EQ(counts.count(stockade::event_kind::retry_scheduled), 2U);
  EXPECT_EQ(counts.count(stockade::event_kind::retry_gave_up), 1U);
  EXPECT_STREQ(stockade::to_string(give_up_reason::budget), "budget");
}

// --- configuration
// ---------------------------------------------------------------------------------

TEST(RetryOptions, DefaultsFollowTheCitedAnchors) {
  constexpr stockade::retry_options<> defaults{};
  static_assert(defaults.max_attempts == 4);  // Polly v8: 3 retries + the first attempt
  static_assert(defaults.retry_on == stockade::verdict_set{verdict::transient, verdict::fatal});
  static_assert(defaults.jitter == jitter::full());  // AWS
  static_assert(defaults.backoff == stockade::backoff_schedule{stockade::exponential{}});
  static_assert(defaults.max_delay == 30s && defaults.max_elapsed == duration::max());
  static_assert(defaults.use_retry_after && defaults.retry_rejections);
  SUCCEED();
}

TEST(RetryOptions, ConstexprPolicyCompiles) {
  constexpr stockade::retry policy{
      {.max_attempts = 4, .backoff = stockade::exponential{200ms, 2.0, 2s}}};
  static_assert(policy.options().max_attempts == 4);
  static_assert(policy.options().backoff.delay(3) == 800ms);
  SUCCEED();
}

TEST(RetryOptions, MaxAttemptsMustBeAtLeastOne) {
  EXPECT_EQ(message_of([] { stockade::retry{{.max_attempts = 0}}; }),
            "stockade::retry: max_attempts must be at least 1 (got 0)");
  static_assert(!compiles_as_constant<[] { return stockade::retry_options<>{.max_attempts = 0}; }>);
  static_assert(compiles_as_constant<[] { return stockade::retry_options<>{.max_attempts = 1}; }>);
}

TEST(RetryOptions, MaxElapsedMustBePositive) {
  EXPECT_EQ(message_of([] { stockade::retry{{.max_elapsed = 0s}}; }),
            "stockade::retry: max_elapsed must be positive (got 0ns)");
  static_assert(
      !compiles_as_constant<[] { return stockade::retry_options<>{.max_elapsed = -1s}; }>);
}

TEST(RetryOptions, RetryOnMustNotContainPermanentOrSuccess) {
  EXPECT_NE(message_of([] {
              stockade::retry{{.retry_on = {verdict::transient, verdict::permanent}}};
            }).find("retry_on must not contain permanent"),
            std::string::npos);
  EXPECT_NE(message_of([] {
              stockade::retry{{.retry_on = {verdict::success}}};
            }).find("retry_on must not contain success"),
            std::string::npos);
  static_assert(!compiles_as_constant<[] {
    return stockade::retry_options<>{.retry_on = {verdict::permanent}};
  }>);
}

TEST(RetryOptions, MaxDelayMustNotBeNegative) {
  EXPECT_EQ(message_of([] { stockade::retry{{.max_delay = -1ns}}; }),
            "stockade::retry: max_delay must not be negative (got -1ns)");
}

TEST(RetryOptions, BackoffAndJitterAreValidatedToo) {
  EXPECT_NE(message_of([] {
              stockade::retry{{.backoff = stockade::exponential{1s, 0.5, 2s}}};
            }).find("exponential: multiplier"),
            std::string::npos);
  EXPECT_NE(message_of([] {
              stockade::retry{{.jitter = jitter::proportional(3.0)}};
            }).find("jitter: spread"),
            std::string::npos);
  static_assert(!compiles_as_constant<[] {
    return stockade::retry_options<>{.backoff = stockade::linear{1s, 1s, 0s}};
  }>);
}

struct doubling {
  duration unit;
  constexpr duration delay(int n) const { return unit * (1 << (n - 1)); }
};

TEST(RetryOptions, AcceptsAUserDefinedBackoff) {
  manual_clock clock;
  stockade::context ctx{clock};
  recorder events;
  int calls = 0;
  const auto policy = stockade::pipeline{
      stockade::retry{stockade::retry_options<doubling>{
                          .max_attempts = 4, .backoff = doubling{5ms}, .jitter = jitter::none()},
                      stockade::observer_ref{events}}};
  EXPECT_THROW(policy(ctx, fails_then_succeeds{10, &calls}), flaky_error);
  EXPECT_EQ(events.delays(), (std::vector<duration>{5ms, 10ms, 20ms}));
}

TEST(RetryOptions, WorstCaseDelayAddsUpTheLongestWaits) {
  constexpr stockade::retry plain{{.max_attempts = 4,
                                   .backoff = stockade::exponential{100ms, 2.0, 1s},
                                   .jitter = jitter::full(),
                                   .use_retry_after = false}};
  static_assert(plain.worst_case_delay() == 700ms);
  constexpr stockade::retry spread{{.max_attempts = 3,
                                    .backoff = stockade::constant{1s},
                                    .jitter = jitter::proportional(0.5),
                                    .use_retry_after = false}};
  static_assert(spread.worst_case_delay() == 2s);  // the schedule's cap (1 s) holds jitter too
  constexpr stockade::retry decorrelated{{.max_attempts = 4,
                                          .backoff = stockade::exponential{10ms, 2.0, 1s},
                                          .jitter = jitter::decorrelated(),
                                          .use_retry_after = false}};
  static_assert(decorrelated.worst_case_delay() == 3s);  // not 3 x max_delay (30 s)
  constexpr stockade::retry hinted{{.max_attempts = 4, .max_delay = 2s}};
  static_assert(hinted.worst_case_delay() == 6s);  // any hint may be as long as max_delay
  constexpr stockade::retry bounded{{.max_attempts = 4, .max_elapsed = 1s, .max_delay = 2s}};
  static_assert(bounded.worst_case_delay() == 1s);
  constexpr stockade::retry many{{.max_attempts = 1'000'000'000, .max_delay = 10ms}};
  static_assert(many.worst_case_delay() == 10ms * 999'999'999);  // computed, not looped
  SUCCEED();
}

// --- parts: after the options, in any order ----------------------------------------------------

TEST(RetryParts, AreFoundByWhatTheyAreInAnyOrder) {
  stockade::token_budget budget{};
  recorder events;
  const auto reset = stockade::on_fatal([] {});
  using expected = stockade::retry<stockade::backoff_schedule, stockade::observer_ref<recorder>,
                                   stockade::seeded_random, std::remove_const_t<decltype(reset)>,
                                   stockade::token_budget>;
  const stockade::retry one{{.max_attempts = 2},
                            std::ref(budget),
                            stockade::observer_ref{events},
                            reset,
                            stockade::seeded_random{1}};
  const stockade::retry other{{.max_attempts = 2},
                              stockade::seeded_random{1},
                              reset,
                              stockade::observer_ref{events},
                              std::ref(budget)};
  static_assert(std::is_same_v<decltype(one), const expected>);
  static_assert(std::is_same_v<decltype(other), const expected>);
}

TEST(RetryParts, ThoseNotGivenKeepTheirDefaults) {
  stockade::percent_budget budget{};
  const stockade::retry with_budget{{.max_attempts = 2}, std::ref(budget)};
  static_assert(
      std::is_same_v<decltype(with_budget),
                     const stockade::retry<stockade::backoff_schedule, stockade::null_observer,
                                           stockade::default_random, stockade::reset_actions<>,
                                           stockade::percent_budget>>);
  constexpr stockade::retry plain{{.max_attempts = 2}};
  static_assert(std::is_same_v<decltype(plain), const stockade::retry<>>);
}

}  // namespace
