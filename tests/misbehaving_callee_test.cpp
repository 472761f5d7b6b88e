// Callables that misbehave, and what the library does about each: exceptions that are not
// std::exception, results whose destructor throws, results that come back after the deadline,
// and callees (or warm-ups, or probes) that call back into the pipeline that is running them.
// Each behaviour here is documented in docs/reliability.md.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstring>
#include <exception>
#include <functional>
#include <latch>
#include <optional>
#include <stdexcept>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include <stockade/bulkhead.hpp>
#include <stockade/circuit_breaker.hpp>
#include <stockade/classifier.hpp>
#include <stockade/detached_timeout.hpp>
#include <stockade/events.hpp>
#include <stockade/health_check.hpp>
#include <stockade/manual_clock.hpp>
#include <stockade/pipeline.hpp>
#include <stockade/retry.hpp>
#include <stockade/timeout.hpp>
#include <stockade/warmup_gate.hpp>

namespace {

using namespace std::chrono_literals;
using stockade::circuit_breaker;
using stockade::circuit_state;
using stockade::consecutive_failures;
using stockade::context;
using stockade::errc;
using stockade::verdict;
using stockade::testing::manual_clock;

struct dependency_error : std::runtime_error {
  dependency_error() : std::runtime_error("dependency failed") {}
};

/// Not derived from std::exception.
struct not_an_exception {
  int code;
};

/// A retry that waits nothing between attempts, so a test needs no clock handling.
stockade::retry<> retry_now(int attempts) {
  return stockade::retry{{.max_attempts = attempts,
                          .backoff = stockade::constant{0s},
                          .jitter = stockade::jitter::none()}};
}

/// The stockade::error a call ended in (nullopt if it ended otherwise).
template <class Call>
std::optional<errc> error_code_of(Call&& call) {
  try {
    call();
  } catch (const stockade::error& e) {
    return e.code();
  } catch (...) {
  }
  return std::nullopt;
}

/// Rethrows what `outer` has nested in it and passes it to `inspect` (which must catch it).
template <class Inspect>
void inspect_nested(const std::exception& outer, Inspect&& inspect) {
  try {
    std::rethrow_if_nested(outer);
    ADD_FAILURE() << "nothing nested in " << outer.what();
  } catch (...) {
    inspect(std::current_exception());
  }
}

/// A context for a nested call: the caller's clock, deadline, stop token and name, and nothing
/// else (its own attempt, outcome and classifier). What a callee must use to call back in.
void derive(context& child, const context& parent) {
  child.set_deadline(parent.deadline())
      .set_stop_token(parent.caller_stop_token())
      .set_name(parent.name());
}

/// Advances `clock` by `step` once `waiters` threads wait on it (a wait that only time ends).
std::jthread advance_when_waiting(manual_clock& clock, std::size_t waiters,
                                  stockade::duration step) {
  return std::jthread([&clock, waiters, step] {
    if (clock.await_waiting(waiters)) clock.advance(step);
  });
}

// --- exceptions that are not std::exception ---------------------------------------------------

TEST(NonStandardException, IsATransientFailureRetriedAndRethrownUnchanged) {
  manual_clock clock;
  context ctx{clock};
  circuit_breaker<consecutive_failures> breaker{{.trip = {.threshold = 10}}, clock};
  stockade::bulkhead slots{{.max_concurrent = 1}};
  const auto policy =
      stockade::pipeline{stockade::timeout{10s}, retry_now(3), std::ref(breaker), std::ref(slots)};
  int calls = 0;
  try {
    policy(ctx, [&]() -> int {
      ++calls;
      throw 42;
    });
    FAIL() << "returned";
  } catch (int thrown) {
    EXPECT_EQ(thrown, 42);
  }
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(breaker.metrics().window.failures, 3U);  // counted as the dependency's failures
  EXPECT_EQ(slots.metrics().in_flight, 0U);          // and every slot came back
}

TEST(NonStandardException, ARuleOnItsTypeDecidesItsVerdict) {
  manual_clock clock;
  context ctx{clock};
  circuit_breaker<consecutive_failures> breaker{{.trip = {.threshold = 1}}, clock};
  const auto policy = stockade::pipeline{retry_now(3), std::ref(breaker)}.classify_with(
      stockade::classifier{stockade::on<not_an_exception, verdict::permanent>{}});
  int calls = 0;
  try {
    policy(ctx, [&]() -> int {
      ++calls;
      throw not_an_exception{7};
    });
    FAIL() << "returned";
  } catch (const not_an_exception& thrown) {
    EXPECT_EQ(thrown.code, 7);
  }
  EXPECT_EQ(calls, 1);                                // permanent: never retried
  EXPECT_EQ(breaker.state(), circuit_state::closed);  // nor a failure of the dependency
  EXPECT_EQ(policy.try_call(ctx, []() -> int { throw not_an_exception{7}; }).outcome().kind,
            verdict::permanent);
}

TEST(NonStandardException, ThrownLateBecomesATimeoutThatKeepsItNested) {
  manual_clock clock;
  context ctx{clock};
  const auto policy = stockade::pipeline{stockade::timeout{1s}};
  try {
    policy(ctx, [&]() -> int {
      clock.advance(2s);
      throw "connection reset";
    });
    FAIL() << "returned";
  } catch (const stockade::error& e) {
    EXPECT_EQ(e.code(), errc::timeout);
    inspect_nested(e, [](const std::exception_ptr& cause) {
      try {
        std::rethrow_exception(cause);
      } catch (const char* text) {
        EXPECT_STREQ(text, "connection reset");
      }
    });
  }
}

TEST(NonStandardException, FromAWarmUpFailsTheGateAndStaysReachable) {
  manual_clock clock;
  stockade::warmup_gate gate{[] { throw 5; }, {}, clock};
  context ctx{clock};
  try {
    stockade::pipeline{std::ref(gate)}(ctx, [] { return 1; });
    FAIL() << "returned";
  } catch (const stockade::error& e) {
    EXPECT_EQ(e.code(), errc::warmup_failed);
    inspect_nested(e, [](const std::exception_ptr& cause) {
      try {
        std::rethrow_exception(cause);
      } catch (int thrown) {
        EXPECT_EQ(thrown, 5);
      }
    });
  }
  EXPECT_EQ(gate.consecutive_failures(), 1);
}

TEST(NonStandardException, FromAHealthProbeMeansUnhealthy) {
  manual_clock clock;
  stockade::health_check health{[]() -> bool { throw 5; }, {}, clock};
  context ctx{clock};
  EXPECT_EQ(error_code_of([&] { stockade::pipeline{std::ref(health)}(ctx, [] { return 1; }); }),
            errc::unhealthy);
  EXPECT_FALSE(health.status().healthy);
}

TEST(NonStandardException, FromABreakersProbeKeepsItOpen) {
  manual_clock clock;
  circuit_breaker<consecutive_failures> breaker{
      {.trip = {.threshold = 1}, .open_for = stockade::constant{1s}}, clock};
  const auto policy = stockade::pipeline{std::ref(breaker)};
  context ctx{clock};
  EXPECT_THROW(policy(ctx, []() -> int { throw dependency_error(); }), dependency_error);
  breaker.set_health_probe([]() -> bool { throw 5; });
  clock.advance(1s);
  EXPECT_EQ(error_code_of([&] { policy(ctx, [] { return 1; }); }), errc::circuit_open);
  EXPECT_EQ(breaker.state(), circuit_state::open);
  EXPECT_EQ(breaker.metrics().times_opened, 2U);
}

TEST(NonStandardException, FromADetachedCallReachesTheCaller) {
  manual_clock clock;
  stockade::detached_timeout detached{1s};
  context ctx{clock};
  try {
    detached.run(ctx, []() -> int { throw not_an_exception{3}; });
    FAIL() << "returned";
  } catch (const not_an_exception& thrown) {
    EXPECT_EQ(thrown.code, 3);
  }
}

// --- results whose destructor throws ----------------------------------------------------------

/// Throws from its destructor unless moved from.
struct throws_when_destroyed {
  bool armed = true;
  throws_when_destroyed() = default;
  throws_when_destroyed(throws_when_destroyed&& other) noexcept
      : armed(std::exchange(other.armed, false)) {}
  throws_when_destroyed& operator=(throws_when_destroyed&&) = delete;
  ~throws_when_destroyed() noexcept(false) {
    if (armed) throw std::runtime_error("thrown by a destructor");
  }
};

throws_when_destroyed* somewhere = nullptr;

using returns_throwing_result = decltype([] { return throws_when_destroyed{}; });
using returns_throwing_result_from_context = decltype([](context&) {
  return throws_when_destroyed{};
});
using returns_reference_to_throwing_result = decltype([]() -> throws_when_destroyed& {
  return *somewhere;
});

template <class F>
concept runs_detached = requires(stockade::detached_timeout<>& detached, context& ctx, F f) {
  detached.run(ctx, f);
};

TEST(ThrowingDestructor, AResultWhoseDestructorMayThrowDoesNotCompile) {
  const auto policy = stockade::pipeline{retry_now(3)};
  using policy_type = decltype(policy);
  static_assert(!stockade::callee<returns_throwing_result>);
  static_assert(!stockade::callee<returns_throwing_result_from_context>);
  static_assert(!std::invocable<const policy_type&, context&, returns_throwing_result>);
  static_assert(!std::invocable<const policy_type&, returns_throwing_result>);
  static_assert(!runs_detached<returns_throwing_result>);
  // What is not destroyed by the library is fine: a reference to such an object, void, values.
  static_assert(std::invocable<const policy_type&, context&, returns_reference_to_throwing_result>);
  static_assert(std::invocable<const policy_type&, context&, decltype([] {})>);
  static_assert(std::invocable<const policy_type&, context&, decltype([] { return 1; })>);
  static_assert(runs_detached<decltype([] { return 1; })>);
  SUCCEED();
}

// --- results after the deadline ---------------------------------------------------------------

TEST(LateCallee, ValueAfterTheDeadlineIsKeptAndIsASuccessForEveryLayer) {
  manual_clock clock;
  stockade::counters events;
  circuit_breaker<consecutive_failures> breaker{{.trip = {.threshold = 1}}, clock};
  const auto policy = stockade::pipeline{stockade::timeout{1s, stockade::observer_ref{events}},
                                         retry_now(3), std::ref(breaker)};
  context ctx{clock};
  int calls = 0;
  EXPECT_EQ(policy(ctx,
                   [&] {
                     ++calls;
                     clock.advance(2s);
                     return 7;
                   }),
            7);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(breaker.state(), circuit_state::closed);
  EXPECT_EQ(events.count(stockade::event_kind::deadline_overrun), 1U);
}

TEST(LateCallee, FailureAfterTheCallsDeadlineIsATimeoutAndIsNotRetried) {
  manual_clock clock;
  const auto policy = stockade::pipeline{stockade::timeout{1s}, retry_now(3)};
  context ctx{clock};
  int calls = 0;
  try {
    policy(ctx, [&]() -> int {
      ++calls;
      clock.advance(2s);
      throw dependency_error();
    });
    FAIL() << "returned";
  } catch (const stockade::error& e) {
    EXPECT_EQ(e.code(), errc::timeout);
    inspect_nested(e, [](const std::exception_ptr& cause) {
      EXPECT_THROW(std::rethrow_exception(cause), dependency_error);
    });
  }
  EXPECT_EQ(calls, 1);  // no time was left for another attempt
}

TEST(LateCallee, EachLateAttemptIsATimeoutThatTheRetryRetries) {
  manual_clock clock;
  const auto policy = stockade::pipeline{retry_now(3), stockade::timeout{1s}};
  context ctx{clock};
  int calls = 0;
  EXPECT_EQ(error_code_of([&] {
              policy(ctx, [&]() -> int {
                ++calls;
                clock.advance(2s);
                throw dependency_error();
              });
            }),
            errc::timeout);
  EXPECT_EQ(calls, 3);
}

TEST(LateCallee, DetachedCallIgnoringItsDeadlineIsAbandonedAndItsValueDropped) {
  manual_clock clock;
  stockade::detached_timeout detached{1s};
  std::latch release{1};
  std::atomic<bool> returned{false};
  context ctx{clock};
  {
    const auto advancer = advance_when_waiting(clock, 1, 1s);
    EXPECT_EQ(error_code_of([&] {
                detached.run(ctx, [&release, &returned] {
                  release.wait();  // ignores its deadline and its stop token
                  returned = true;
                  return 9;
                });
              }),
              errc::timeout);
  }
  EXPECT_EQ(detached.abandoned_running(), 1U);
  release.count_down();
  EXPECT_TRUE(detached.await_abandoned_at_most(0, 30s));
  EXPECT_TRUE(returned.load());
}

// --- callees that call back into the same pipeline --------------------------------------------

TEST(ReentrantCallee, NestedCallThroughAFullBulkheadIsRefusedNotDeadlocked) {
  manual_clock clock;
  stockade::bulkhead slots{{.max_concurrent = 1}};
  const auto policy = stockade::pipeline{std::ref(slots)};
  context ctx{clock};
  std::optional<errc> nested_refusal;
  EXPECT_EQ(policy(ctx,
                   [&](context& outer) {
                     context nested{outer.clock()};
                     derive(nested, outer);
                     nested_refusal = error_code_of([&] { policy(nested, [] { return 1; }); });
                     return 2;
                   }),
            2);
  EXPECT_EQ(nested_refusal, errc::bulkhead_full);
  EXPECT_EQ(slots.metrics().in_flight, 0U);
}

TEST(ReentrantCallee, NestedCallQueuedBehindItsOwnCallerGivesUpAtMaxWait) {
  manual_clock clock;
  stockade::bulkhead slots{{.max_concurrent = 1, .max_queue = 1, .max_wait = 100ms}};
  const auto policy = stockade::pipeline{std::ref(slots)};
  context ctx{clock};
  std::optional<errc> nested_refusal;
  {
    const auto advancer = advance_when_waiting(clock, 1, 100ms);
    policy(ctx, [&](context& outer) {
      context nested{outer.clock()};
      derive(nested, outer);
      nested_refusal = error_code_of([&] { policy(nested, [] { return 1; }); });
    });
  }
  EXPECT_EQ(nested_refusal, errc::bulkhead_wait_exceeded);
  EXPECT_EQ(slots.metrics().in_flight, 0U);
  EXPECT_EQ(slots.metrics().queued, 0U);
}

TEST(ReentrantCallee, NestedCallIntoAHalfOpenBreakerFindsNoPermitLeft) {
  manual_clock clock;
  circuit_breaker<consecutive_failures> breaker{
      {.trip = {.threshold = 1}, .open_for = stockade::constant{1s}, .half_open_permits = 1},
      clock};
  const auto policy = stockade::pipeline{std::ref(breaker)};
  context ctx{clock};
  EXPECT_THROW(policy(ctx, []() -> int { throw dependency_error(); }), dependency_error);
  clock.advance(1s);
  std::optional<errc> nested_refusal;
  EXPECT_EQ(policy(ctx,
                   [&](context& outer) {  // the one half-open trial
                     context nested{outer.clock()};
                     derive(nested, outer);
                     nested_refusal = error_code_of([&] { policy(nested, [] { return 1; }); });
                     return 2;
                   }),
            2);
  EXPECT_EQ(nested_refusal, errc::circuit_open);
  EXPECT_EQ(breaker.state(), circuit_state::closed);  // the trial itself succeeded
}

TEST(ReentrantCallee, NestedFailuresThatTripTheBreakerAreNotUndoneByTheOuterSuccess) {
  manual_clock clock;
  circuit_breaker<consecutive_failures> breaker{
      {.trip = {.threshold = 2}, .open_for = stockade::constant{1s}}, clock};
  const auto policy = stockade::pipeline{std::ref(breaker)};
  context ctx{clock};
  EXPECT_EQ(policy(ctx,
                   [&](context& outer) {
                     for (int i = 0; i < 2; ++i) {
                       context nested{outer.clock()};
                       derive(nested, outer);
                       EXPECT_THROW(policy(nested, []() -> int { throw dependency_error(); }),
                                    dependency_error);
                     }
                     return 3;
                   }),
            3);
  // The outer call was admitted before the breaker opened: its success belongs to an epoch
  // that is over and is not counted, so it cannot close the breaker its own calls opened.
  EXPECT_EQ(breaker.state(), circuit_state::open);
  EXPECT_EQ(breaker.metrics().times_opened, 1U);
}

TEST(ReentrantCallee, ReusingTheCallersContextHandsTheCalleeTheNestedCallsState) {
  manual_clock clock;
  const auto outer_policy = stockade::pipeline{retry_now(3)};
  const auto nested_policy = stockade::pipeline{retry_now(2)};
  context ctx{clock};
  std::vector<int> attempt_on_entry;
  std::vector<int> attempt_after_nested_call;
  const int result = outer_policy(ctx, [&](context& same) {
    attempt_on_entry.push_back(same.attempt());
    // WRONG on purpose: the nested call runs on the caller's own context.
    EXPECT_THROW(nested_policy(same, []() -> int { throw dependency_error(); }), dependency_error);
    attempt_after_nested_call.push_back(same.attempt());
    if (attempt_on_entry.size() < 3) throw dependency_error();
    return 5;
  });
  // The outer layers keep their own count (the retry made its 3 attempts and the call ended in
  // the callee's own value), but what the callee reads from the context after the nested call
  // is the nested call's: here its last attempt number, not the caller's.
  EXPECT_EQ(result, 5);
  EXPECT_EQ(attempt_on_entry, (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(attempt_after_nested_call, (std::vector<int>{2, 2, 2}));
}

TEST(ReentrantCallee, AChildContextKeepsTheCallersDeadlineAndLeavesItsStateAlone) {
  manual_clock clock;
  const auto outer_policy = stockade::pipeline{stockade::timeout{2s}, retry_now(3)};
  const auto nested_policy = stockade::pipeline{retry_now(2)};
  context ctx{clock};
  std::vector<int> attempt_after_nested_call;
  const int result = outer_policy(ctx, [&](context& outer) {
    context nested{outer.clock()};
    derive(nested, outer);
    EXPECT_EQ(nested.deadline(), outer.deadline());
    EXPECT_THROW(nested_policy(nested, []() -> int { throw dependency_error(); }),
                 dependency_error);
    attempt_after_nested_call.push_back(outer.attempt());
    if (attempt_after_nested_call.size() < 3) throw dependency_error();
    return 5;
  });
  EXPECT_EQ(result, 5);
  EXPECT_EQ(attempt_after_nested_call, (std::vector<int>{1, 2, 3}));
}

TEST(ReentrantCallee, WarmUpCallingThroughItsOwnGateWaitsForItselfUntilItsTimeout) {
  manual_clock clock;
  std::optional<errc> nested_refusal;
  std::function<void(context&)> call_through_gate;
  stockade::warmup_gate gate{[&](context& warming) {
                               context nested{warming.clock()};
                               derive(nested, warming);
                               call_through_gate(nested);
                             },
                             {.warmup_timeout = 1s},
                             clock};
  const auto policy = stockade::pipeline{std::ref(gate)};
  call_through_gate = [&](context& nested) {
    nested_refusal = error_code_of([&] { policy(nested, [] { return 1; }); });
    throw stockade::error(*nested_refusal);
  };
  context ctx{clock};
  std::optional<errc> refusal;
  {
    const auto advancer = advance_when_waiting(clock, 1, 1s);
    refusal = error_code_of([&] { policy(ctx, [] { return 1; }); });
  }
  // The nested call waits for the warm-up it is part of until the warm-up's own timeout; the
  // warm-up then fails (it could not warm), and that failure is recorded like any other.
  EXPECT_EQ(nested_refusal, errc::warmup_wait_exceeded);
  EXPECT_EQ(refusal, errc::warmup_failed);
  EXPECT_FALSE(gate.ready());
  EXPECT_EQ(gate.consecutive_failures(), 1);
}

TEST(ReentrantCallee, ProbeCallingThroughItsOwnHealthCheckTimesOutAsUnhealthy) {
  manual_clock clock;
  std::function<bool(context&)> call_through_health;
  stockade::health_check health{[&](context& probing) { return call_through_health(probing); },
                                {.probe_timeout = 500ms},
                                clock};
  const auto policy = stockade::pipeline{std::ref(health)};
  std::optional<errc> nested_refusal;
  call_through_health = [&](context& probing) {
    context nested{probing.clock()};
    derive(nested, probing);
    nested_refusal = error_code_of([&] { policy(nested, [] { return 1; }); });
    return !nested_refusal.has_value();
  };
  context ctx{clock};
  std::optional<errc> refusal;
  {
    const auto advancer = advance_when_waiting(clock, 1, 500ms);
    refusal = error_code_of([&] { policy(ctx, [] { return 1; }); });
  }
  EXPECT_EQ(nested_refusal, errc::timeout);  // it waited for its own probe, up to probe_timeout
  EXPECT_EQ(refusal, errc::unhealthy);
  EXPECT_FALSE(health.status().healthy);
}

TEST(ReentrantCallee, BreakerProbeCallingThroughItsOwnBreakerIsRejected) {
  manual_clock clock;
  circuit_breaker<consecutive_failures> breaker{
      {.trip = {.threshold = 1}, .open_for = stockade::constant{1s}}, clock};
  const auto policy = stockade::pipeline{std::ref(breaker)};
  std::optional<errc> nested_refusal;
  breaker.set_health_probe([&](context& probing) {
    nested_refusal = error_code_of([&] { policy(probing, [] { return 1; }); });
    return !nested_refusal.has_value();
  });
  context ctx{clock};
  EXPECT_THROW(policy(ctx, []() -> int { throw dependency_error(); }), dependency_error);
  clock.advance(1s);
  EXPECT_EQ(error_code_of([&] { policy(ctx, [] { return 1; }); }), errc::circuit_open);
  EXPECT_EQ(nested_refusal, errc::circuit_open);  // the round's probe is already running
  EXPECT_EQ(breaker.state(), circuit_state::open);
}

}  // namespace
