// Many threads against the warm-up gate, the health check and the resource, on the manual clock.
// They check invariants, not timings: one warm-up per generation, one probe per max age, no call
// on a closed instance, every instance closed exactly once.
#include <gtest/gtest.h>

#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdint>
#include <functional>
#include <latch>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include <stockade/classifier.hpp>
#include <stockade/health_check.hpp>
#include <stockade/manual_clock.hpp>
#include <stockade/pipeline.hpp>
#include <stockade/resource.hpp>
#include <stockade/warmup_gate.hpp>

namespace {

using namespace std::chrono_literals;
using stockade::context;
using stockade::verdict;
using stockade::testing::manual_clock;

constexpr int threads = 8;
constexpr int calls_per_thread = 1500;

struct broken_connection : std::runtime_error {
  broken_connection() : std::runtime_error("engine is not yet connected") {}
};

const auto fatal_on_broken =
    stockade::classifier{stockade::on<broken_connection, verdict::fatal>{}};

template <class Body>
void run_threads(Body body) {
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) pool.emplace_back([&body, t] { body(t); });
  for (auto& thread : pool) thread.join();
}

TEST(WarmupStress, WarmUpRunsOncePerGenerationHoweverManyCallersFail) {
  manual_clock clock;
  std::mutex mutex;
  std::map<std::uint64_t, int> warmups_per_generation;
  stockade::counters events;
  stockade::warmup_gate gate{[&](context&, std::uint64_t generation) {
                               std::lock_guard lock(mutex);
                               ++warmups_per_generation[generation];
                             },
                             {},
                             clock,
                             stockade::observer_ref{events}};
  const auto policy = stockade::pipeline{std::ref(gate)}.classify_with(fatal_on_broken);
  std::atomic<int> calls{0};
  std::atomic<int> calls_before_any_warmup{0};

  run_threads([&](int t) {
    for (int i = 0; i < calls_per_thread; ++i) {
      context ctx{clock};
      try {
        policy(ctx, [&] {
          calls.fetch_add(1);
          if (events.count(stockade::event_kind::warmup_succeeded) == 0) {
            calls_before_any_warmup.fetch_add(1);
          }
          if ((i + t) % 97 == 0) throw broken_connection();  // the client broke: re-warm
        });
      } catch (const broken_connection&) {
      }
    }
  });

  EXPECT_EQ(calls.load(), threads * calls_per_thread);
  EXPECT_EQ(calls_before_any_warmup.load(), 0);
  std::lock_guard lock(mutex);
  for (const auto& [generation, warmups] : warmups_per_generation) {
    EXPECT_EQ(warmups, 1) << "generation " << generation;
  }
  // Every reset made exactly one new generation, and each warmed once (the last maybe not yet).
  const std::uint64_t resets = events.count(stockade::event_kind::gate_reset);
  EXPECT_EQ(gate.generation(), resets + 1);
  EXPECT_GE(warmups_per_generation.size() + 1, gate.generation());
  EXPECT_GT(resets, 0U);
}

TEST(WarmupStress, ProbeRunsOncePerMaxAgeHoweverManyCallersCheck) {
  manual_clock clock;
  std::atomic<int> probes{0};
  stockade::health_check health{[&] { return probes.fetch_add(1) >= 0; }, {.max_age = 10s}, clock};
  constexpr int rounds = 100;
  // Each round every thread checks at the same virtual time; then time moves 3 s (firing the
  // age-out timers). Results taken at 0, 12, 24, ... s: stale after 10 s, seen at the next round.
  std::barrier round{threads, [&]() noexcept { clock.advance(3s); }};
  run_threads([&](int) {
    for (int r = 0; r < rounds; ++r) {
      for (int i = 0; i < 20; ++i) {
        context ctx{clock};
        EXPECT_TRUE(health.check(ctx));
      }
      round.arrive_and_wait();
    }
  });
  EXPECT_EQ(probes.load(), (rounds - 1) * 3 / 12 + 1);
}

TEST(WarmupStress, ProbesAreNeverCloserThanMaxAgeWhileTimeMovesUnderTheCallers) {
  manual_clock clock;
  constexpr auto max_age = 10s;
  std::mutex mutex;
  std::vector<stockade::time_point> probe_starts;
  stockade::health_check health{[&] {
                                  std::lock_guard lock(mutex);
                                  probe_starts.push_back(clock.now());
                                  return true;
                                },
                                // The time keeper may move time during a probe: no timeout.
                                {.max_age = max_age, .probe_timeout = 1h},
                                clock};
  std::latch all_checking{threads};
  std::atomic<bool> done{false};
  std::thread time_keeper([&] {
    all_checking.wait();
    for (int step = 0; step < 100; ++step) {
      clock.advance(3s);  // fires the age-out timers on this thread, racing the checks
      std::this_thread::yield();
    }
    done = true;
  });
  run_threads([&](int) {
    all_checking.count_down();
    while (!done.load()) {
      context ctx{clock};
      EXPECT_TRUE(health.check(ctx));
    }
  });
  time_keeper.join();

  std::lock_guard lock(mutex);
  ASSERT_FALSE(probe_starts.empty());
  for (std::size_t i = 1; i < probe_starts.size(); ++i) {
    EXPECT_GE(probe_starts[i] - probe_starts[i - 1], max_age) << "probe " << i;
  }
  EXPECT_LE(probe_starts.size(), 100U * 3 / 10 + 1);
}

struct client {
  int id;
  std::atomic<bool> closed{false};
  explicit client(int made_id) : id(made_id) {}
};

TEST(WarmupStress, ResourceNeverLendsAClosedInstanceAndClosesEachOnce) {
  manual_clock clock;
  std::atomic<int> made{0};
  std::mutex mutex;
  std::map<int, int> closes;
  {
    stockade::resource<client> db{
        {.create = [&] { return std::make_unique<client>(made.fetch_add(1) + 1); },
         .check_health = [](client& c) { return !c.closed.load(); },
         .close =
             [&](client& c) {
               c.closed = true;
               std::lock_guard lock(mutex);
               ++closes[c.id];
             }},
        {.max_age = 1min, .health = {.max_age = 5s, .probe_timeout = 1h}},
        clock};
    const auto policy = stockade::pipeline{std::ref(db)}.classify_with(fatal_on_broken);
    std::atomic<bool> done{false};
    std::latch all_calling{threads};
    std::thread time_keeper([&] {
      all_calling.wait();
      for (int step = 0; step < 200; ++step) {
        clock.advance(2s);  // health ages out every few steps, instances every 30
        std::this_thread::yield();
      }
      done = true;
    });
    std::atomic<int> on_closed{0};
    run_threads([&](int t) {
      all_calling.count_down();
      for (int i = 0; !done.load() || i < 200; ++i) {
        context ctx{clock};
        try {
          policy(ctx, [&](context& c) {
            if (c.resource<client>().closed.load()) on_closed.fetch_add(1);
            if ((i * 7 + t) % 211 == 0) throw broken_connection();
          });
        } catch (const broken_connection&) {
        } catch (const stockade::error& e) {
          // Documented refusals only (e.g. a warm-up cut short would be warmup_failed).
          EXPECT_NE(e.code(), stockade::errc::resource_closed);
        }
      }
    });
    time_keeper.join();
    EXPECT_EQ(on_closed.load(), 0);
    EXPECT_TRUE(db.shutdown(*std::make_unique<context>(clock)));
  }
  std::lock_guard lock(mutex);
  EXPECT_EQ(static_cast<int>(closes.size()), made.load());
  for (const auto& [id, count] : closes) EXPECT_EQ(count, 1) << "client " << id;
  EXPECT_GT(made.load(), 1);
}

}  // namespace
