// Many threads against one breaker: the invariants that must hold however threads interleave
// (run under TSan). Each test asserts counts and bounds, never timings, and stops after a fixed
// number of calls.
#include <stockade/circuit_breaker.hpp>
#include <stockade/manual_clock.hpp>
#include <stockade/pipeline.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <random>
#include <stdexcept>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using stockade::circuit_breaker;
using stockade::circuit_state;
using stockade::consecutive_failures;
using stockade::testing::manual_clock;

constexpr int workers = 4;
constexpr int calls_per_worker = 3000;
constexpr int calls_for_trials = 100'000;  // most are rejected at once
constexpr std::size_t permits = 2;         // fewer than the workers, so a leak or overrun shows

/// Raises `peak` to at least `value`.
void raise_to(std::atomic<int>& peak, int value) {
  int seen = peak.load();
  while (seen < value && !peak.compare_exchange_weak(seen, value)) {
  }
}

/// Runs `workers` threads calling `body(thread_index, call_index)` while `controller` runs
/// until they are done: after `calls` calls each, or earlier once `enough()`.
template <class Body, class Controller, class Enough>
void run_concurrently(Body body, Controller controller, Enough enough, int calls) {
  std::atomic<int> finished{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < workers; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < calls && !enough(); ++i) body(t, i);
      finished.fetch_add(1);
    });
  }
  std::thread control([&] {
    while (finished.load() < workers) controller();
  });
  for (auto& t : threads) t.join();
  control.join();
}

template <class Body, class Controller>
void run_concurrently(Body body, Controller controller) {
  run_concurrently(
      body, controller, [] { return false; }, calls_per_worker);
}

/// After the storm: a breaker whose permits all came back admits `permits` trials in a row and
/// closes on their success.
template <class Breaker>
void expect_every_permit_back(Breaker& breaker, manual_clock& clock) {
  EXPECT_EQ(breaker.metrics().trials_in_flight, 0U);
  breaker.reset();
  stockade::context ctx{clock};
  const auto policy = stockade::pipeline{std::ref(breaker)};
  for (int i = 0; i < 10 && breaker.state() == circuit_state::closed; ++i) {
    EXPECT_THROW(policy(ctx, []() -> int { throw std::runtime_error("down"); }),
                 std::runtime_error);
  }
  ASSERT_EQ(breaker.state(), circuit_state::open);
  clock.advance(breaker.metrics().open_remaining);
  for (std::size_t i = 0; i < permits; ++i) EXPECT_EQ(policy(ctx, [] { return 1; }), 1);
  EXPECT_EQ(breaker.state(), circuit_state::closed);
}

TEST(CircuitBreakerStress, HalfOpenTrialsNeverExceedPermitsAndPermitsNeverLeak) {
  manual_clock clock;
  circuit_breaker<consecutive_failures> breaker{
      {.trip = {.threshold = 1}, .open_for = stockade::constant{1s}, .half_open_permits = permits},
      clock};
  // No call ever succeeds, so the breaker never closes and every call that reaches the callee
  // is a half-open trial: the callee itself can count how many run at once.
  std::atomic<int> running{0};
  std::atomic<int> peak{0};
  std::atomic<int> trials{0};
  {
    stockade::context ctx{clock};
    EXPECT_THROW(stockade::pipeline{std::ref(breaker)}(
                     ctx, []() -> int { throw std::runtime_error("down"); }),
                 std::runtime_error);
  }
  run_concurrently(
      [&](int thread, int index) {
        std::minstd_rand pick(static_cast<unsigned>(thread * 100'003 + index));
        stockade::context ctx{clock};
        try {
          stockade::pipeline{std::ref(breaker)}(ctx, [&]() -> int {
            raise_to(peak, running.fetch_add(1) + 1);
            trials.fetch_add(1);
            for (int spin = 0; spin < 4; ++spin) std::this_thread::yield();  // widen the overlap
            running.fetch_sub(1);
            switch (pick() % 3) {
              case 0:
                throw std::runtime_error("still down");  // transient: reopens
              case 1:
                throw std::invalid_argument("bad request");  // permanent: permit back
              default:
                throw stockade::error(stockade::errc::cancelled);  // rejection: permit back
            }
          });
        } catch (...) {
        }
      },
      [&] {
        clock.advance(1s);
        std::this_thread::yield();
      },
      [&] { return trials.load() >= 2000; }, calls_for_trials);
  EXPECT_LE(peak.load(), static_cast<int>(permits));
  EXPECT_GT(trials.load(), 0);
  expect_every_permit_back(breaker, clock);
}

TEST(CircuitBreakerStress, OperatorActionsDuringTrafficNeverLeakPermits) {
  manual_clock clock;
  circuit_breaker<consecutive_failures> breaker{{.trip = {.threshold = 2},
                                                 .open_for = stockade::constant{1s},
                                                 .half_open_permits = permits,
                                                 .half_open_success_ratio = 0.6},
                                                clock};
  std::minstd_rand controller_pick(7);
  run_concurrently(
      [&](int thread, int index) {
        std::minstd_rand pick(static_cast<unsigned>(thread * 100'003 + index));
        stockade::context ctx{clock};
        try {
          stockade::pipeline{std::ref(breaker)}(ctx, [&]() -> int {
            switch (pick() % 4) {
              case 0:
                return 1;
              case 1:
                throw std::invalid_argument("bad request");
              default:
                throw std::runtime_error("down");
            }
          });
        } catch (...) {
        }
      },
      [&] {
        switch (controller_pick() % 8) {
          case 0:
            breaker.isolate();
            break;
          case 1:
            breaker.reset();
            break;
          case 2:
            breaker.disable();
            break;
          default:
            clock.advance(1s);
        }
        (void)breaker.metrics();
        std::this_thread::yield();
      });
  expect_every_permit_back(breaker, clock);
}

TEST(CircuitBreakerStress, ClosedBreakerOpensOnceAndAccountsForEveryCall) {
  manual_clock clock;
  circuit_breaker<stockade::count_window> breaker{
      {.trip = {.size = 100, .failure_ratio = 0.5, .minimum_calls = 100},
       .open_for = stockade::constant{1h}},
      clock};
  std::atomic<int> ran{0};
  run_concurrently(
      [&](int /*thread*/, int /*index*/) {
        stockade::context ctx{clock};
        try {
          stockade::pipeline{std::ref(breaker)}(ctx, [&]() -> int {
            ran.fetch_add(1);
            throw std::runtime_error("down");
          });
        } catch (...) {
        }
      },
      [] { std::this_thread::yield(); });
  const auto snapshot = breaker.metrics();
  EXPECT_EQ(snapshot.state, circuit_state::open);
  EXPECT_EQ(snapshot.times_opened, 1U);
  EXPECT_GE(ran.load(), 100);  // the window had to fill before it could open
  EXPECT_EQ(static_cast<std::uint64_t>(ran.load()) + snapshot.rejections,
            static_cast<std::uint64_t>(workers * calls_per_worker));
}

TEST(CircuitBreakerStress, HealthProbeNeverRunsTwiceAtOnce) {
  // Operator actions (reset, isolate, disable) and callers whose deadline has passed race the
  // probes: a probe still running across a transition must end before another may start.
  manual_clock clock;
  circuit_breaker<consecutive_failures> breaker{
      {.trip = {.threshold = 1}, .open_for = stockade::constant{1s}}, clock};
  std::atomic<int> probing{0};
  std::atomic<int> peak{0};
  std::atomic<int> probes{0};
  std::atomic<int> probes_for_late_callers{0};
  constexpr int enough_probes = 10;
  constexpr int max_calls_per_worker = 10'000'000;  // a safety net, far from ever reached
  breaker.set_health_probe([&](stockade::context& probe_ctx) {
    raise_to(peak, probing.fetch_add(1) + 1);
    probes.fetch_add(1);
    if (probe_ctx.name() == "late") probes_for_late_callers.fetch_add(1);
    std::this_thread::yield();
    probing.fetch_sub(1);
    return probes.load() % 2 == 0;  // alternately unhealthy and healthy
  });
  std::atomic<int> step{0};
  run_concurrently(
      [&](int /*thread*/, int index) {
        stockade::context ctx{clock};
        if (index % 3 == 0) ctx.set_deadline(clock.now()).set_name("late");  // given up
        try {
          stockade::pipeline{std::ref(breaker)}(ctx, [&]() -> int {
            if (index % 2 == 0) throw std::runtime_error("down");
            return 1;
          });
        } catch (...) {
        }
      },
      [&] {
        switch (step.fetch_add(1) % 8) {
          case 2:
            breaker.reset();
            break;
          case 4:
            breaker.isolate();
            break;
          case 5:
            breaker.reset();
            break;
          case 6:
            breaker.disable();
            break;
          case 7:
            breaker.reset();
            break;
          default:
            clock.advance(1s);
            break;
        }
        std::this_thread::yield();
      },
      // Until enough probes ran, not for a number of calls: a refusal costs nanoseconds, and
      // the callers could be done before the operator thread has moved the clock even once.
      [&] { return probes.load() >= enough_probes; }, max_calls_per_worker);
  EXPECT_LE(peak.load(), 1);
  EXPECT_GE(probes.load(), enough_probes);
  EXPECT_EQ(probing.load(), 0);
  EXPECT_EQ(probes_for_late_callers.load(), 0);  // never started for a caller who gave up
}

TEST(CountRingStress, TotalsNeverDriftFromTheSlots) {
  stockade::detail::count_ring ring(64);  // small, so threads collide on slots often
  std::atomic<bool> stop{false};
  std::thread clearer([&] {
    while (!stop.load()) {
      ring.clear();
      std::this_thread::yield();
    }
  });
  std::vector<std::thread> threads;
  for (int t = 0; t < workers; ++t) {
    threads.emplace_back([&ring, t] {
      std::minstd_rand pick(static_cast<unsigned>(t + 1));
      stockade::detail::window_tally after;
      for (int i = 0; i < 20 * calls_per_worker; ++i) {
        const auto bits = pick();
        ring.record((bits & 1U) != 0, (bits & 2U) != 0, after);
        EXPECT_LE(after.calls, 64U);
      }
    });
  }
  for (auto& t : threads) t.join();
  stop.store(true);
  clearer.join();
  EXPECT_EQ(ring.tally(), ring.recount());
}

TEST(TimeBucketsStress, CountsEveryCallUnderContention) {
  stockade::detail::time_buckets window(10s, 10);
  const stockade::time_point at = stockade::time_point{} + 1h;
  std::atomic<std::uint64_t> failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < workers; ++t) {
    threads.emplace_back([&, t] {
      std::minstd_rand pick(static_cast<unsigned>(t + 1));
      for (int i = 0; i < 10 * calls_per_worker; ++i) {
        const bool failure = (pick() & 1U) != 0;
        // Spread over the buckets of the window, so buckets are recycled concurrently.
        ASSERT_TRUE(window.record(at + std::chrono::seconds(i % 10), failure, false));
        if (failure) failed.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  const auto counts = window.tally(at + 9s);
  EXPECT_EQ(counts.calls, static_cast<std::uint64_t>(workers) * 10 * calls_per_worker);
  EXPECT_EQ(counts.failures, failed.load());
}

}  // namespace
