#include <stockade/timeout.hpp>

#include <gtest/gtest.h>

#include "support.hpp"

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <latch>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include <stockade/classifier.hpp>
#include <stockade/manual_clock.hpp>
#include <stockade/pipeline.hpp>

namespace {

using stockade_test::error_of;

using namespace std::chrono_literals;
using stockade::context;
using stockade::errc;
using stockade::time_point;
using stockade::timeout;
using stockade::testing::manual_clock;

/// Collects the timeout events a policy reports.
struct recorded_events {
  std::vector<stockade::timeout_expired> expired;
  std::vector<stockade::deadline_overrun> overruns;
};
struct recording_observer {
  recorded_events* events;
  void on(const stockade::timeout_expired& e) const { events->expired.push_back(e); }
  void on(const stockade::deadline_overrun& e) const { events->overruns.push_back(e); }
};

/// An outer layer that records the outcome it sees when a call fails, as a breaker would.
struct outcome_recorder {
  std::optional<stockade::outcome>* seen;
  template <class Next>
  auto invoke(context& ctx, Next&& next) const {
    auto ended = next(ctx);
    if (!ended.has_value()) *seen = ended.outcome();
    return ended;
  }
};

/// A minimal retry for these tests: up to three attempts while they fail.
struct three_attempts {
  template <class Next>
  auto invoke(context& ctx, Next&& next) const {
    for (int attempt = 1;; ++attempt) {
      ctx.begin_attempt(attempt);
      auto ended = next(ctx);
      if (ended.has_value() || attempt == 3) return ended;
    }
  }
};

// --- configuration ---------------------------------------------------------------------------

std::string invalid_message(stockade::duration limit) {
  try {
    timeout<> refused{limit};
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "accepted";
}

TEST(TimeoutOptions, RefusesAZeroLimit) {
  EXPECT_EQ(invalid_message(0s), "stockade::timeout: limit must be positive (got 0ns)");
}

TEST(TimeoutOptions, RefusesANegativeLimit) {
  EXPECT_EQ(invalid_message(-5ms), "stockade::timeout: limit must be positive (got -5000000ns)");
}

template <class Make>
constexpr bool is_constant_expression = requires {
  typename std::bool_constant<(Make{}(), true)>;
};

TEST(TimeoutOptions, ABadConstexprLimitDoesNotCompile) {
  static_assert(is_constant_expression<decltype([] { return timeout{2s}.limit(); })>);
  static_assert(!is_constant_expression<decltype([] { return timeout{0s}.limit(); })>);
}

TEST(TimeoutOptions, ExposesItsLimitForAnalysis) {
  constexpr timeout per_attempt{2s};
  static_assert(per_attempt.limit() == 2s);
  static_assert(per_attempt.options().limit == 2s);
  static_assert(std::is_same_v<decltype(per_attempt), const timeout<stockade::null_observer>>);
}

// --- deadlines -------------------------------------------------------------------------------

TEST(Timeout, NarrowsTheDeadlineForTheLayersInsideOnly) {
  manual_clock clock;
  context ctx{clock};
  const time_point start = clock.now();
  std::optional<time_point> seen;
  stockade::pipeline{timeout{2s}}(ctx, [&](context& inner) { seen = inner.deadline(); });
  EXPECT_EQ(seen, start + 2s);
  EXPECT_FALSE(ctx.has_deadline());
}

TEST(Timeout, ALimitReachingPastTheEndOfTimeStillSetsADeadline) {
  // now + limit saturates: it used to become "no deadline" and leave the callee unbounded.
  manual_clock clock;
  context ctx{clock};
  std::optional<time_point> seen;
  bool bounded = false;
  stockade::pipeline{timeout{stockade::duration::max()}}(ctx, [&](context& inner) {
    seen = inner.deadline();
    bounded = inner.has_deadline();
  });
  EXPECT_TRUE(bounded);
  EXPECT_EQ(seen, stockade::latest_deadline);
  EXPECT_FALSE(ctx.has_deadline());
}

TEST(Timeout, InnerShorterTimeoutWins) {
  manual_clock clock;
  context ctx{clock};
  const time_point start = clock.now();
  std::optional<time_point> seen;
  stockade::pipeline{timeout{8s}, timeout{2s}}(ctx,
                                               [&](context& inner) { seen = inner.deadline(); });
  EXPECT_EQ(seen, start + 2s);
}

TEST(Timeout, InnerLongerTimeoutCannotExtendTheOuterDeadline) {
  manual_clock clock;
  context ctx{clock};
  const time_point start = clock.now();
  std::optional<time_point> seen;
  stockade::pipeline{timeout{2s}, timeout{8s}}(ctx,
                                               [&](context& inner) { seen = inner.deadline(); });
  EXPECT_EQ(seen, start + 2s);
}

TEST(Timeout, CallersEarlierDeadlineIsKept) {
  manual_clock clock;
  context ctx{clock};
  ctx.set_timeout(1s);
  const time_point callers = ctx.deadline();
  std::optional<time_point> seen;
  stockade::pipeline{timeout{5s}}(ctx, [&](context& inner) { seen = inner.deadline(); });
  EXPECT_EQ(seen, callers);
  EXPECT_EQ(ctx.deadline(), callers);
}

TEST(Timeout, InnerTimeoutBoundsEachAttemptOuterBoundsThemAll) {
  manual_clock clock;
  context ctx{clock};
  const time_point start = clock.now();
  std::vector<time_point> deadlines;
  const auto policy = stockade::pipeline{timeout{5s}, three_attempts{}, timeout{2s}};
  EXPECT_EQ(error_of([&] {
              policy(ctx, [&](context& inner) -> int {
                deadlines.push_back(inner.deadline());
                clock.advance(inner.remaining());  // each attempt uses all of its time
                throw std::runtime_error("slow");
              });
            }),
            errc::timeout);
  EXPECT_EQ(deadlines, (std::vector<time_point>{start + 2s, start + 4s, start + 5s}));
}

TEST(Timeout, DeadlineAlreadyPassedFailsWithoutRunningTheCallee) {
  manual_clock clock;
  context ctx{clock};
  ctx.set_deadline(clock.now());
  std::optional<stockade::outcome> seen;
  bool ran = false;
  EXPECT_EQ(error_of([&] {
              stockade::pipeline{outcome_recorder{&seen}, timeout{2s}}(ctx, [&] { ran = true; });
            }),
            errc::deadline_already_passed);
  EXPECT_FALSE(ran);
  ASSERT_TRUE(seen.has_value());
  EXPECT_TRUE(seen->rejected);
}

// --- cooperative cancellation ------------------------------------------------------------------

TEST(Timeout, StopTokenFiresAtTheDeadline) {
  manual_clock clock;
  context ctx{clock};
  stockade::pipeline{timeout{2s}}(ctx, [&](context& inner) {
    const std::stop_token token = inner.stop_token();
    clock.advance(1999ms);
    EXPECT_FALSE(token.stop_requested());
    EXPECT_FALSE(inner.stop_requested());
    clock.advance(1ms);
    EXPECT_TRUE(token.stop_requested());
    EXPECT_TRUE(inner.stop_requested());
  });
}

TEST(Timeout, StopTokenWakesACallableWaitingOnIt) {
  manual_clock clock;
  std::latch waiting{1};
  bool woken_by_stop = false;
  std::jthread caller([&] {
    context ctx{clock};
    stockade::pipeline{timeout{2s}}(ctx, [&](context& inner) {
      std::mutex mutex;
      std::condition_variable_any cv;
      std::unique_lock lock(mutex);
      const std::stop_token token = inner.stop_token();
      waiting.count_down();
      cv.wait(lock, token, [] { return false; });
      woken_by_stop = token.stop_requested();
    });
  });
  waiting.wait();
  clock.advance(2s);
  caller.join();
  EXPECT_TRUE(woken_by_stop);
}

TEST(Timeout, InnerTimeoutsStopTokenFiresAtItsOwnDeadline) {
  manual_clock clock;
  context ctx{clock};
  stockade::pipeline{timeout{8s}, timeout{2s}}(ctx, [&](context& inner) {
    const std::stop_token token = inner.stop_token();
    clock.advance(2s);
    EXPECT_TRUE(token.stop_requested());
  });
}

TEST(Timeout, CallersStopRequestReachesTheCallee) {
  manual_clock clock;
  std::stop_source cancel;
  context ctx{clock};
  ctx.set_stop_token(cancel.get_token());
  stockade::pipeline{timeout{2s}}(ctx, [&](context& inner) {
    const std::stop_token token = inner.stop_token();
    cancel.request_stop();
    EXPECT_TRUE(token.stop_requested());
  });
}

/// A clock whose first timer cannot be armed (as when the timer thread cannot be started).
class clock_failing_once final : public stockade::clock {
 public:
  explicit clock_failing_once(manual_clock& time) : time_(time) {}
  time_point now() const noexcept override { return time_.now(); }
  void arm(stockade::timer& t, time_point when) override {
    if (!failed_) {
      failed_ = true;
      throw std::runtime_error("no timer");
    }
    time_.arm(t, when);
  }
  bool cancel(stockade::timer& t) noexcept override { return time_.cancel(t); }

 private:
  manual_clock& time_;
  bool failed_ = false;
};

TEST(Timeout, StopTokenIsArmedAgainAfterAFailedSchedule) {
  manual_clock time;
  clock_failing_once clock{time};
  context ctx{clock};
  stockade::pipeline{timeout{2s}}(ctx, [&](context& inner) {
    EXPECT_THROW((void)inner.stop_token(), std::runtime_error);
    const std::stop_token token = inner.stop_token();
    time.advance(2s);
    EXPECT_TRUE(token.stop_requested());
  });
}

TEST(Timeout, RealClockFiresAStopTokenWhoseDeadlineHasAlreadyCome) {
  context ctx;  // real clock and the shared timer thread
  ctx.set_deadline(ctx.now());
  EXPECT_TRUE(ctx.stop_token().stop_requested());  // at once, without waiting for the thread
}

TEST(Timeout, RealClockLeavesAFarDeadlineUnfiredAndCancelsIt) {
  for (int i = 0; i < 100; ++i) {
    context ctx;
    ctx.set_timeout(1h);
    EXPECT_FALSE(ctx.stop_token().stop_requested());
  }  // each context cancels its timer entry as it goes
}

// --- late results ----------------------------------------------------------------------------

TEST(Timeout, LateErrorIsReportedAsATransientTimeout) {
  manual_clock clock;
  context ctx{clock};
  std::optional<stockade::outcome> seen;
  recorded_events events;
  const auto policy =
      stockade::pipeline{outcome_recorder{&seen}, timeout{2s, recording_observer{&events}}};
  try {
    policy(ctx, [&] {
      clock.advance(3s);
      throw std::runtime_error("gave up late");
    });
    FAIL() << "no exception";
  } catch (const stockade::error& e) {
    EXPECT_EQ(e.code(), errc::timeout);
    EXPECT_THROW(std::rethrow_if_nested(e), std::runtime_error);  // the cause is kept
  }
  ASSERT_TRUE(seen.has_value());
  EXPECT_EQ(seen->kind, stockade::verdict::transient);
  EXPECT_FALSE(seen->rejected);
  ASSERT_EQ(events.expired.size(), 1U);
  EXPECT_EQ(events.expired[0].late_by, 1s);
  EXPECT_TRUE(events.expired[0].converted);
}

TEST(Timeout, ErrorBeforeTheDeadlineIsKept) {
  manual_clock clock;
  context ctx{clock};
  EXPECT_THROW(stockade::pipeline{timeout{2s}}(ctx,
                                               [&] {
                                                 clock.advance(1s);
                                                 throw std::runtime_error("quick failure");
                                               }),
               std::runtime_error);
}

TEST(Timeout, LateValueIsKeptAndReportedAsAnOverrun) {
  manual_clock clock;
  context ctx{clock};
  recorded_events events;
  ctx.set_name("db");
  const int value = stockade::pipeline{timeout{2s, recording_observer{&events}}}(ctx, [&] {
    clock.advance(2500ms);
    return 42;
  });
  EXPECT_EQ(value, 42);
  ASSERT_EQ(events.overruns.size(), 1U);
  EXPECT_EQ(events.overruns[0].late_by, 500ms);
  EXPECT_EQ(events.overruns[0].name, "db");
  EXPECT_EQ(events.overruns[0].limit, 2s);
}

TEST(Timeout, ValueInTimeReportsNothing) {
  manual_clock clock;
  context ctx{clock};
  recorded_events events;
  stockade::pipeline{timeout{2s, recording_observer{&events}}}(ctx, [&] {
    clock.advance(1s);
    return 1;
  });
  EXPECT_TRUE(events.overruns.empty());
  EXPECT_TRUE(events.expired.empty());
}

TEST(Timeout, LateRejectionOfAnInnerPolicyStaysARejection) {
  manual_clock clock;
  context ctx{clock};
  EXPECT_EQ(error_of([&] {
              stockade::pipeline{timeout{2s}}(ctx, [&] {
                clock.advance(3s);
                throw stockade::error(errc::bulkhead_wait_exceeded);
              });
            }),
            errc::bulkhead_wait_exceeded);
}

struct connection_broken : std::runtime_error {
  connection_broken() : std::runtime_error("connection broken") {}
};

TEST(Timeout, LateFatalErrorKeepsItsVerdictSoTheResourceIsReset) {
  manual_clock clock;
  context ctx{clock};
  recorded_events events;
  std::optional<stockade::outcome> seen;
  const auto policy =
      stockade::pipeline{outcome_recorder{&seen}, timeout{2s, recording_observer{&events}}}
          .classify_with(
              stockade::classifier{stockade::on<connection_broken, stockade::verdict::fatal>{}});
  EXPECT_THROW(policy(ctx,
                      [&] {
                        clock.advance(3s);
                        throw connection_broken{};
                      }),
               connection_broken);
  ASSERT_TRUE(seen.has_value());
  EXPECT_EQ(seen->kind, stockade::verdict::fatal);
  ASSERT_EQ(events.expired.size(), 1U);
  EXPECT_FALSE(events.expired[0].converted);
}

TEST(Timeout, NestedTimeoutsReportALateErrorOnce) {
  manual_clock clock;
  context ctx{clock};
  recorded_events events;
  const auto policy = stockade::pipeline{timeout{8s, recording_observer{&events}},
                                         timeout{2s, recording_observer{&events}}};
  EXPECT_EQ(error_of([&] {
              policy(ctx, [&] {
                clock.advance(9s);
                throw std::runtime_error("late");
              });
            }),
            errc::timeout);
  EXPECT_EQ(events.expired.size(), 1U);
  EXPECT_EQ(events.expired[0].limit, 2s);
}

TEST(Timeout, CountersObserverCountsTimeoutEvents) {
  manual_clock clock;
  stockade::counters counted;
  const auto policy = stockade::pipeline{timeout{2s, stockade::observer_ref{counted}}};
  context ctx{clock};
  (void)error_of([&] {
    policy(ctx, [&] {
      clock.advance(3s);
      throw std::runtime_error("late");
    });
  });
  EXPECT_EQ(counted.count(stockade::event_kind::timeout_expired), 1U);
}

}  // namespace
