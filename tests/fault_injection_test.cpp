#include <stockade/fault_injection.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <exception>
#include <functional>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include <stockade/classifier.hpp>
#include <stockade/errors.hpp>
#include <stockade/events.hpp>
#include <stockade/manual_clock.hpp>
#include <stockade/pipeline.hpp>

#include "support.hpp"

namespace {

using namespace std::chrono_literals;
using stockade::context;
using stockade::fault_injection_options;
using stockade::fault_injector;
using stockade::fault_kind;
using stockade::inject_exception;
using stockade::inject_latency;
using stockade::inject_result;
using stockade::verdict;
using stockade::testing::manual_clock;

// Not derived from std::exception: injected exceptions of any type must pass unchanged.
struct odd_error {
  int code;
};

struct response {
  int status;
};

using stockade_test::outcome_spy;

// Runs `calls` calls through `chaos` and returns the numbers (from 1) of the calls that threw.
template <class Injector>
std::vector<std::uint64_t> failing_calls(Injector& chaos, int calls) {
  const auto p = stockade::pipeline{std::ref(chaos)};
  std::vector<std::uint64_t> failed;
  for (int i = 1; i <= calls; ++i) {
    try {
      p([] { return 0; });
    } catch (const stockade::error&) {
      failed.push_back(static_cast<std::uint64_t>(i));
    }
  }
  return failed;
}

static_assert(stockade::policy<std::reference_wrapper<
                  fault_injector<stockade::null_observer, inject_exception<>, inject_latency>>>);

// Built at compile time: a bad value here would not compile (see the last test).
constinit fault_injector compile_time_chaos{{.seed = 1}, inject_exception{{.every_nth = 2}}};

// --- enabled flag and the compiled-out variant ---------------------------------------------

TEST(FaultInjection, DisabledInjectorCallsThroughAndCountsNothing) {
  fault_injector chaos{{.enabled = false}, inject_exception{{}}};
  const auto p = stockade::pipeline{std::ref(chaos)};
  int executions = 0;
  for (int i = 0; i < 100; ++i) EXPECT_EQ(p([&] { return ++executions; }), i + 1);
  EXPECT_EQ(executions, 100);
  EXPECT_EQ(chaos.calls_seen(), 0U);
  EXPECT_EQ(chaos.injected(), 0U);
}

TEST(FaultInjection, SetEnabledTurnsInjectionOnAndOff) {
  fault_injector chaos{{.enabled = false}, inject_exception{{}}};
  const auto p = stockade::pipeline{std::ref(chaos)};
  EXPECT_NO_THROW(p([] { return 1; }));
  chaos.set_enabled(true);
  EXPECT_TRUE(chaos.enabled());
  EXPECT_THROW(p([] { return 1; }), stockade::error);
  chaos.set_enabled(false);
  EXPECT_NO_THROW(p([] { return 1; }));
  EXPECT_EQ(chaos.calls_seen(), 1U);
  EXPECT_EQ(chaos.injected(fault_kind::exception), 1U);
}

TEST(FaultInjection, ConstinitInjectorInjects) {
  EXPECT_EQ(failing_calls(compile_time_chaos, 4), (std::vector<std::uint64_t>{2, 4}));
}

TEST(FaultInjection, InjectorWithoutFaultsIsAPlainCall) {
  fault_injector chaos{{}};
  static_assert(decltype(chaos)::fault_count == 0);
  const auto p = stockade::pipeline{std::ref(chaos)};
  EXPECT_EQ(p([] { return 7; }), 7);
  EXPECT_EQ(chaos.calls_seen(), 0U);  // not even counted: nothing is compiled in
}

// --- exceptions ----------------------------------------------------------------------------

TEST(FaultInjection, InjectedExceptionPassesThroughWithItsOwnType) {
  fault_injector chaos{{}, inject_exception{{}, [] { return odd_error{42}; }}};
  const auto p = stockade::pipeline{std::ref(chaos)};
  int executions = 0;
  try {
    p([&] { return ++executions; });
    FAIL() << "no exception";
  } catch (const odd_error& e) {
    EXPECT_EQ(e.code, 42);
  }
  EXPECT_EQ(executions, 0);  // the callee never ran
}

TEST(FaultInjection, DefaultExceptionIsAnInjectedFaultErrorClassifiedAsDependencyFailure) {
  fault_injector chaos{{}, inject_exception{{}}};
  std::vector<stockade::outcome> seen;
  const auto p = stockade::pipeline{outcome_spy{&seen}, std::ref(chaos)};
  try {
    p([] { return 1; });
    FAIL() << "no exception";
  } catch (const stockade::error& e) {
    EXPECT_EQ(e.code(), stockade::errc::injected_fault);
    EXPECT_FALSE(e.is_rejection());
  }
  ASSERT_EQ(seen.size(), 1U);
  EXPECT_EQ(seen[0].kind, verdict::transient);
  EXPECT_TRUE(seen[0].is_dependency_failure());
}

TEST(FaultInjection, InjectedExceptionIsClassifiedByThePipelinesClassifier) {
  fault_injector chaos{{}, inject_exception{{}, [] { return odd_error{1}; }}};
  std::vector<stockade::outcome> seen;
  const auto p = stockade::pipeline{outcome_spy{&seen}, std::ref(chaos)}.classify_with(
      stockade::classifier{stockade::on<odd_error, verdict::fatal>{}});
  context ctx;
  EXPECT_THROW(p(ctx, [] { return 1; }), odd_error);
  ASSERT_EQ(seen.size(), 1U);
  EXPECT_EQ(seen[0].kind, verdict::fatal);  // classified, as the pipeline classifies a callee's
}

TEST(FaultInjection, ExceptionFactoryMayReturnAnExceptionPtr) {
  fault_injector chaos{
      {}, inject_exception{{}, [] { return std::make_exception_ptr(std::out_of_range("x")); }}};
  std::vector<stockade::outcome> seen;
  const auto p = stockade::pipeline{outcome_spy{&seen}, std::ref(chaos)};
  EXPECT_THROW(p([] { return 1; }), std::out_of_range);
  ASSERT_EQ(seen.size(), 1U);
  EXPECT_EQ(seen[0].kind, verdict::permanent);  // a logic_error, by the default rules
}

TEST(FaultInjection, FactoryMayTakeTheContext) {
  fault_injector chaos{{}, inject_exception{{}, [](context& ctx) {
                                              return std::runtime_error(std::string(ctx.name()));
                                            }}};
  const auto p = stockade::pipeline{std::ref(chaos)};
  context ctx;
  ctx.set_name("orders-db");
  try {
    p(ctx, [] { return 1; });
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "orders-db");
  }
}

// --- results -------------------------------------------------------------------------------

TEST(FaultInjection, InjectedResultReplacesTheCalleeAndIsClassifiedByThePipelinesClassifier) {
  fault_injector chaos{{}, inject_result{{}, [] { return response{503}; }}};
  std::vector<stockade::outcome> seen;
  const auto p = stockade::pipeline{outcome_spy{&seen}, std::ref(chaos)}.classify_with(
      stockade::classifier{stockade::on_result([](const response& r) {
        return r.status >= 500 ? verdict::transient : verdict::success;
      })});
  int executions = 0;
  context ctx;
  const response r = p(ctx, [&] {
    ++executions;
    return response{200};
  });
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(executions, 0);
  ASSERT_EQ(seen.size(), 1U);
  EXPECT_EQ(seen[0].kind, verdict::transient);
  EXPECT_EQ(chaos.injected(fault_kind::result), 1U);
}

TEST(FaultInjection, InjectedExpectedErrorIsTransientByDefault) {
  // An expected-like result without a value: the default rules call it transient.
  struct db_result {
    bool ok;
    bool has_value() const { return ok; }
    int error() const { return 1; }
  };
  fault_injector chaos{{}, inject_result{{}, [] { return db_result{false}; }}};
  std::vector<stockade::outcome> seen;
  const auto p = stockade::pipeline{outcome_spy{&seen}, std::ref(chaos)};
  EXPECT_FALSE(p([] { return db_result{true}; }).ok);
  ASSERT_EQ(seen.size(), 1U);
  EXPECT_EQ(seen[0].kind, verdict::transient);
}

TEST(FaultInjection, ResultFaultOfAnotherTypeNeverFires) {
  fault_injector chaos{{}, inject_result{{}, [] { return 5L; }}};  // long, callee returns int
  const auto p = stockade::pipeline{std::ref(chaos)};
  EXPECT_EQ(p([] { return 1; }), 1);
  EXPECT_EQ(chaos.calls_seen(), 1U);
  EXPECT_EQ(chaos.injected(), 0U);
}

// Asks `next` to classify a value and an exception as the callee's would be, before calling it.
struct classify_probe {
  std::vector<verdict>* seen;
  template <class Next>
  auto invoke(context& ctx, Next&& next) const {
    seen->push_back(next.classify_result(response{500}).kind);
    seen->push_back(next.classify_exception(std::make_exception_ptr(std::bad_alloc())).kind);
    return next(ctx);
  }
};

TEST(FaultInjection, NextClassifiesWithThePipelinesClassifier) {
  // The core facility the faults rely on: the pipeline's own rules, not the defaults.
  std::vector<verdict> seen;
  const auto p = stockade::pipeline{classify_probe{&seen}}.classify_with(
      stockade::classifier{stockade::on_result([](const response& r) {
                             return r.status >= 500 ? verdict::transient : verdict::success;
                           }),
                           stockade::on<std::bad_alloc, verdict::fatal>{}});
  p([] { return response{200}; });
  EXPECT_EQ(seen, (std::vector<verdict>{verdict::transient, verdict::fatal}));
}

// Classifies what a void callee and a callee returning int& look like to a policy.
struct classify_void_and_reference_probe {
  std::vector<bool>* matched;
  template <class Next>
  auto invoke(context& ctx, Next&& next) const {
    using seen = typename std::invoke_result_t<Next&, context&>::value_type;
    if constexpr (std::is_same_v<seen, stockade::void_result>) {
      matched->push_back(next.classify_result(stockade::void_result{}).succeeded());
    } else {
      int target = 0;
      matched->push_back(next.classify_result(std::ref(target)).succeeded());
    }
    return next(ctx);
  }
};

TEST(FaultInjection, NextClassifiesVoidAndReferenceResultsAsPoliciesSeeThem) {
  std::vector<bool> matched;
  const auto p = stockade::pipeline{classify_void_and_reference_probe{&matched}};
  p([] {});
  int value = 0;
  p([&]() -> int& { return value; });
  EXPECT_EQ(matched, (std::vector<bool>{true, true}));
}

TEST(FaultInjection, ResultFaultOnAVoidCalleeSkipsTheCallee) {
  fault_injector chaos{{}, inject_result{{}, [] { return stockade::void_result{}; }}};
  const auto p = stockade::pipeline{std::ref(chaos)};
  int executions = 0;
  p([&] { ++executions; });
  EXPECT_EQ(executions, 0);
  EXPECT_EQ(chaos.injected(fault_kind::result), 1U);
}

// --- probability and replay ----------------------------------------------------------------

TEST(FaultInjection, SameSeedReplaysTheSameFaults) {
  fault_injector first{{.seed = 42}, inject_exception{{.probability = 0.3}}};
  fault_injector second{{.seed = 42}, inject_exception{{.probability = 0.3}}};
  const auto a = failing_calls(first, 500);
  const auto b = failing_calls(second, 500);
  EXPECT_EQ(a, b);
  first.reset();
  EXPECT_EQ(failing_calls(first, 500), a);  // reset() restarts the numbering: a replay
  EXPECT_FALSE(a.empty());
}

TEST(FaultInjection, DifferentSeedsGiveDifferentFaults) {
  fault_injector first{{.seed = 1}, inject_exception{{.probability = 0.3}}};
  fault_injector second{{.seed = 2}, inject_exception{{.probability = 0.3}}};
  EXPECT_NE(failing_calls(first, 500), failing_calls(second, 500));
}

TEST(FaultInjection, ProbabilityIsTheShareOfCallsInjected) {
  // Deterministic for this seed; the bounds are those of a fair draw (about 6 sigma).
  fault_injector chaos{{.seed = 7}, inject_exception{{.probability = 0.25}}};
  const auto failed = failing_calls(chaos, 10000);
  EXPECT_GT(failed.size(), 2250U);
  EXPECT_LT(failed.size(), 2750U);
  EXPECT_EQ(chaos.injected(fault_kind::exception), failed.size());
}

TEST(FaultInjection, ProbabilityZeroNeverFiresAndOneAlwaysFires) {
  fault_injector never{{}, inject_exception{{.probability = 0.0}}};
  fault_injector always{{}, inject_exception{{.probability = 1.0}}};
  EXPECT_TRUE(failing_calls(never, 1000).empty());
  EXPECT_EQ(failing_calls(always, 1000).size(), 1000U);
}

TEST(FaultInjection, AppendingAFaultKeepsTheDecisionsOfTheOthers) {
  fault_injector alone{{.seed = 9}, inject_exception{{.probability = 0.2}}};
  std::vector<std::uint64_t> with_second;
  fault_injector both{{.seed = 9},
                      stockade::callback_observer{[&](const stockade::fault_injected& e) {
                        if (e.position == 0) with_second.push_back(e.call);
                      }},
                      inject_exception{{.probability = 0.2}},
                      inject_exception{{.probability = 0.5}}};
  const auto a = failing_calls(alone, 1000);
  failing_calls(both, 1000);
  EXPECT_EQ(a, with_second);
}

TEST(FaultInjection, DecisionsDependOnTheCallNumberNotOnTheThread) {
  fault_injector sequential{{.seed = 3}, inject_exception{{.probability = 0.4}}};
  const auto expected = failing_calls(sequential, 2000);

  std::mutex mutex;
  std::vector<std::uint64_t> injected_calls;
  fault_injector concurrent{{.seed = 3},
                            stockade::callback_observer{[&](const stockade::fault_injected& e) {
                              std::lock_guard lock(mutex);
                              injected_calls.push_back(e.call);
                            }},
                            inject_exception{{.probability = 0.4}}};
  const auto p = stockade::pipeline{std::ref(concurrent)};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 500; ++i) {
        try {
          p([] { return 0; });
        } catch (const stockade::error&) {
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  std::sort(injected_calls.begin(), injected_calls.end());
  EXPECT_EQ(injected_calls, expected);
}

// --- schedules -----------------------------------------------------------------------------

TEST(FaultInjection, EveryNthCallIsInjected) {
  fault_injector chaos{{}, inject_exception{{.every_nth = 3}}};
  EXPECT_EQ(failing_calls(chaos, 10), (std::vector<std::uint64_t>{3, 6, 9}));
  EXPECT_EQ(chaos.calls_seen(), 10U);
}

TEST(FaultInjection, TimeWindowIsHalfOpenOnTheContextsClock) {
  manual_clock clock;
  const auto start = clock.now();
  fault_injector chaos{{}, inject_exception{{.from = start + 10s, .until = start + 20s}}};
  const auto p = stockade::pipeline{std::ref(chaos)};
  context ctx{clock};
  const auto fails_now = [&] {
    try {
      p(ctx, [] { return 0; });
      return false;
    } catch (const stockade::error&) {
      return true;
    }
  };
  EXPECT_FALSE(fails_now());  // start
  clock.advance(10s);
  EXPECT_TRUE(fails_now());  // start + 10 s: from is inside
  clock.advance(9s);
  EXPECT_TRUE(fails_now());  // start + 19 s
  clock.advance(1s);
  EXPECT_FALSE(fails_now());  // start + 20 s: until is outside
}

TEST(FaultInjection, MaxInjectionsFailsOnlyTheFirstCalls) {
  fault_injector chaos{{}, inject_exception{{.max_injections = 2}}};
  EXPECT_EQ(failing_calls(chaos, 5), (std::vector<std::uint64_t>{1, 2}));
  EXPECT_EQ(chaos.injected_at(0), 2U);
}

TEST(FaultInjection, MaxInjectionsHoldsUnderConcurrency) {
  fault_injector chaos{{}, inject_exception{{.probability = 0.5, .max_injections = 25}}};
  const auto p = stockade::pipeline{std::ref(chaos)};
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 200; ++i) {
        try {
          p([] { return 0; });
        } catch (const stockade::error&) {
          failures.fetch_add(1);
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 25);
  EXPECT_EQ(chaos.injected(), 25U);
  EXPECT_EQ(chaos.calls_seen(), 800U);
}

// --- latency -------------------------------------------------------------------------------

TEST(FaultInjection, LatencyWaitsThroughTheContextsClockThenCallsTheCallee) {
  manual_clock clock;
  const auto start = clock.now();
  fault_injector chaos{{}, inject_latency{{}, 250ms}};
  const auto p = stockade::pipeline{std::ref(chaos)};
  context ctx{clock};
  const auto seen_by_callee = p(ctx, [](context& inner) { return inner.now(); });
  EXPECT_EQ(seen_by_callee - start, 250ms);
  EXPECT_EQ(clock.sleep_count(), 1U);
  EXPECT_EQ(clock.total_slept(), 250ms);
  EXPECT_EQ(chaos.injected(fault_kind::latency), 1U);
}

TEST(FaultInjection, LatencyIsCutAtTheDeadlineAndTheCalleeDoesNotRunLate) {
  manual_clock clock;
  const auto start = clock.now();
  fault_injector chaos{{}, inject_latency{{}, 1s}};
  std::vector<stockade::outcome> seen;
  const auto p = stockade::pipeline{outcome_spy{&seen}, std::ref(chaos)};
  context ctx{clock};
  ctx.set_timeout(100ms);
  int executions = 0;
  try {
    p(ctx, [&] { return ++executions; });
    FAIL() << "no exception";
  } catch (const stockade::error& e) {
    EXPECT_EQ(e.code(), stockade::errc::timeout);
  }
  EXPECT_EQ(executions, 0);
  EXPECT_EQ(clock.now() - start, 100ms);  // never waited past the deadline
  ASSERT_EQ(seen.size(), 1U);
  EXPECT_TRUE(seen[0].is_dependency_failure());
}

TEST(FaultInjection, LatencyStoppedByTheCallerIsCancelled) {
  manual_clock clock;
  fault_injector chaos{{}, inject_latency{{}, 1s}};
  const auto p = stockade::pipeline{std::ref(chaos)};
  std::stop_source stop;
  stop.request_stop();
  context ctx{clock};
  ctx.set_stop_token(stop.get_token());
  try {
    p(ctx, [] { return 0; });
    FAIL() << "no exception";
  } catch (const stockade::error& e) {
    EXPECT_EQ(e.code(), stockade::errc::cancelled);
  }
}

// --- several faults ------------------------------------------------------------------------

TEST(FaultInjection, FaultsApplyInOrderLatencyThenException) {
  manual_clock clock;
  fault_injector chaos{{}, inject_latency{{}, 2s}, inject_exception{{}}};
  const auto p = stockade::pipeline{std::ref(chaos)};
  context ctx{clock};
  EXPECT_THROW(p(ctx, [] { return 0; }), stockade::error);
  EXPECT_EQ(clock.total_slept(), 2s);  // a slow failure
  EXPECT_EQ(chaos.injected(fault_kind::latency), 1U);
  EXPECT_EQ(chaos.injected(fault_kind::exception), 1U);
}

TEST(FaultInjection, FirstFiringExceptionOrResultEndsTheCall) {
  fault_injector chaos{{},
                       inject_result{{.every_nth = 2}, [] { return -1; }},
                       inject_exception{{}, [] { return odd_error{0}; }}};
  const auto p = stockade::pipeline{std::ref(chaos)};
  EXPECT_THROW(p([] { return 0; }), odd_error);  // call 1: result does not fire, exception does
  EXPECT_EQ(p([] { return 0; }), -1);            // call 2: result fires first; exception untried
  EXPECT_EQ(chaos.injected_at(0), 1U);
  EXPECT_EQ(chaos.injected_at(1), 1U);
}

TEST(FaultInjection, CountersAddUpUnderConcurrency) {
  fault_injector chaos{{.seed = 11},
                       inject_latency{{.probability = 0.3}, 1ms},
                       inject_result{{.probability = 0.2}, [] { return -1; }},
                       inject_exception{{.every_nth = 5}}};
  const auto p = stockade::pipeline{std::ref(chaos)};
  std::atomic<int> results{0};
  std::atomic<int> exceptions{0};
  std::atomic<int> executions{0};
  manual_clock clock;  // latency is virtual
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 250; ++i) {
        context ctx{clock};
        try {
          if (p(ctx, [&] { return executions.fetch_add(1); }) == -1) results.fetch_add(1);
        } catch (const stockade::error&) {
          exceptions.fetch_add(1);
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(chaos.calls_seen(), 1000U);
  EXPECT_EQ(chaos.injected(fault_kind::result), static_cast<std::uint64_t>(results.load()));
  EXPECT_EQ(chaos.injected(fault_kind::exception), static_cast<std::uint64_t>(exceptions.load()));
  EXPECT_EQ(results.load() + exceptions.load() + executions.load(), 1000);  // each ends once
  EXPECT_EQ(chaos.injected(), chaos.injected_at(0) + chaos.injected_at(1) + chaos.injected_at(2));
  EXPECT_EQ(clock.sleep_count(), chaos.injected(fault_kind::latency));
}

// --- events --------------------------------------------------------------------------------

TEST(FaultInjection, EventCarriesWhatReplaysTheFault) {
  std::vector<stockade::fault_injected> events;
  fault_injector chaos{
      {.seed = 77},
      stockade::callback_observer{[&](const stockade::fault_injected& e) { events.push_back(e); }},
      inject_exception{{.every_nth = 2}},
      inject_latency{{.every_nth = 3}, 5ms}};
  manual_clock clock;
  const auto p = stockade::pipeline{std::ref(chaos)};
  for (int i = 0; i < 3; ++i) {
    context ctx{clock};
    ctx.set_name("db");
    try {
      p(ctx, [] { return 0; });
    } catch (const stockade::error&) {
    }
  }
  ASSERT_EQ(events.size(), 2U);
  EXPECT_EQ(events[0].fault, fault_kind::exception);
  EXPECT_EQ(events[0].position, 0U);
  EXPECT_EQ(events[0].call, 2U);
  EXPECT_EQ(events[0].seed, 77U);
  EXPECT_EQ(events[0].name, "db");
  EXPECT_EQ(events[0].attempt, 1);
  EXPECT_EQ(events[1].fault, fault_kind::latency);
  EXPECT_EQ(events[1].position, 1U);
  EXPECT_EQ(events[1].call, 3U);
  EXPECT_EQ(events[1].delay, 5ms);
}

TEST(FaultInjection, CountersObserverCountsInjections) {
  stockade::counters stats;
  fault_injector chaos{{}, stockade::observer_ref{stats}, inject_exception{{.every_nth = 2}}};
  failing_calls(chaos, 10);
  EXPECT_EQ(stats.count(stockade::event_kind::fault_injected), 5U);
}

// --- configuration -------------------------------------------------------------------------

template <class... Faults>
std::string refusal(Faults... faults) {
  try {
    fault_injector chaos{fault_injection_options{}, std::move(faults)...};
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "accepted";
}

TEST(FaultInjection, RefusesProbabilityBelowZero) {
  EXPECT_EQ(refusal(inject_exception{{.probability = -0.1}}),
            "stockade::fault_injection: inject_exception.when.probability must be in [0, 1] "
            "(got -0.100000)");
}

TEST(FaultInjection, RefusesProbabilityAboveOne) {
  EXPECT_EQ(refusal(inject_latency{{.probability = 1.5}, 1s}),
            "stockade::fault_injection: inject_latency.when.probability must be in [0, 1] "
            "(got 1.500000)");
}

TEST(FaultInjection, RefusesNanProbability) {
  const std::string message =
      refusal(inject_result{{.probability = std::nan("")}, [] { return 1; }});
  EXPECT_NE(message.find("inject_result.when.probability must be in [0, 1] (got "),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("nan"), std::string::npos) << message;
}

TEST(FaultInjection, RefusesEveryNthOfZero) {
  EXPECT_EQ(refusal(inject_exception{{.every_nth = 0}}),
            "stockade::fault_injection: inject_exception.when.every_nth must be at least 1 "
            "(got 0)");
}

TEST(FaultInjection, RefusesAnEmptyWindow) {
  const auto at = stockade::time_point{} + 1h;
  EXPECT_EQ(refusal(inject_exception{{.from = at, .until = at}}),
            "stockade::fault_injection: inject_exception.when.until must be later than "
            "when.from (the value is until - from) (got 0ns)");
  EXPECT_EQ(refusal(inject_exception{{.from = at, .until = at - 1s}}),
            "stockade::fault_injection: inject_exception.when.until must be later than "
            "when.from (the value is until - from) (got -1000000000ns)");
}

TEST(FaultInjection, RefusesAnInvertedWindowAtTheLimitsWithoutOverflow) {
  const std::string message = refusal(inject_exception{
      {.from = stockade::time_point::max(), .until = stockade::time_point::min()}});
  EXPECT_NE(
      message.find("(got " + std::to_string(std::numeric_limits<std::int64_t>::min()) + "ns)"),
      std::string::npos)
      << message;
}

TEST(FaultInjection, RefusesMaxInjectionsOfZero) {
  EXPECT_EQ(refusal(inject_exception{{.max_injections = 0}}),
            "stockade::fault_injection: inject_exception.when.max_injections must be at least 1 "
            "(got 0)");
}

TEST(FaultInjection, RefusesZeroLatency) {
  EXPECT_EQ(refusal(inject_latency{{}, 0ms}),
            "stockade::fault_injection: inject_latency.delay must be positive (got 0ns)");
}

TEST(FaultInjection, RefusesNegativeLatency) {
  EXPECT_EQ(refusal(inject_latency{{}, -5ms}),
            "stockade::fault_injection: inject_latency.delay must be positive (got -5000000ns)");
}

TEST(FaultInjection, ChecksEveryFaultNotOnlyTheFirst) {
  EXPECT_EQ(refusal(inject_latency{{}, 1s}, inject_exception{{.every_nth = 0}}),
            "stockade::fault_injection: inject_exception.when.every_nth must be at least 1 "
            "(got 0)");
}

// A configuration built in a constant expression: a refused value makes it fail to compile,
// which the concept below observes as "not a constant expression".
template <class Build>
concept builds_at_compile_time = requires {
  typename std::bool_constant<(Build{}(), true)>;
};

template <auto Configure>
struct build {
  constexpr bool operator()() const {
    fault_injector chaos{fault_injection_options{.seed = 5}, Configure()};
    return chaos.options().seed == 5;
  }
};

TEST(FaultInjection, ConstexprConfigurationWithAnInvalidValueFailsToCompile) {
  static_assert(builds_at_compile_time<build<[] { return inject_latency{{.every_nth = 2}, 1s}; }>>);
  static_assert(
      builds_at_compile_time<build<[] { return inject_exception{{.probability = 0.5}}; }>>);
  static_assert(!builds_at_compile_time<build<[] { return inject_latency{{}, 0s}; }>>);
  static_assert(
      !builds_at_compile_time<build<[] { return inject_exception{{.probability = 2}}; }>>);
  static_assert(!builds_at_compile_time<build<[] { return inject_exception{{.every_nth = 0}}; }>>);
  static_assert(
      !builds_at_compile_time<build<[] { return inject_exception{{.max_injections = 0}}; }>>);
  static_assert(!builds_at_compile_time<build<[] {
    return inject_exception{{.from = stockade::time_point{} + 2s, .until = stockade::time_point{}}};
  }>>);
}

}  // namespace
