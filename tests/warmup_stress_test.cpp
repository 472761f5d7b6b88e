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

TEST(WarmupStress, FailedWarmUpsAreRecordedWhenTheirLeadersHaveGivenUp) {
  // Half the callers have deadlines shorter than a warm-up, so a leader has often given up by
  // the time its warm-up fails. Every failure must still be recorded: no warm-up of a generation
  // starts before the cool-down of the last failed one has passed, and none runs twice at once.
  manual_clock clock;
  constexpr auto cool_down = 2ms;
  std::mutex mutex;
  struct attempt {
    stockade::time_point started;
    stockade::time_point failed_at;  // time_point{} if it succeeded
  };
  std::map<std::uint64_t, std::vector<attempt>> attempts;
  std::atomic<int> running{0};
  std::atomic<int> peak{0};
  std::atomic<int> attempt_number{0};
  stockade::warmup_gate gate{
      [&](context&, std::uint64_t generation) {
        const int now_running = running.fetch_add(1) + 1;
        int seen = peak.load();
        while (now_running > seen && !peak.compare_exchange_weak(seen, now_running)) {
        }
        const stockade::time_point started = clock.now();
        clock.advance(1ms);  // longer than the short deadlines
        const bool fails = attempt_number.fetch_add(1) % 3 != 2;
        {
          std::lock_guard lock(mutex);
          attempts[generation].push_back({started, fails ? clock.now() : stockade::time_point{}});
        }
        running.fetch_sub(1);
        if (fails) throw broken_connection();
      },
      {.cool_down = stockade::constant{cool_down}, .cool_down_jitter = stockade::jitter::none()},
      clock};
  const auto policy = stockade::pipeline{std::ref(gate)}.classify_with(fatal_on_broken);
  std::atomic<int> unexpected{0};
  run_threads([&](int t) {
    for (int i = 0; i < 400; ++i) {
      context ctx{clock};
      if ((i + t) % 2 == 0) ctx.set_timeout(500us);
      try {
        policy(ctx, [&] {
          clock.advance(10us);  // time moves with the calls, so cool-downs end
          if ((i + t) % 53 == 0) throw broken_connection();  // re-warm
        });
      } catch (const broken_connection&) {
      } catch (const stockade::error& e) {
        switch (e.code()) {
          case stockade::errc::warmup_failed:
          case stockade::errc::warmup_cooling_down:
          case stockade::errc::warmup_wait_exceeded:
            break;
          default:
            unexpected.fetch_add(1);
        }
      }
      clock.advance(10us);
    }
  });

  EXPECT_EQ(unexpected.load(), 0);
  EXPECT_EQ(peak.load(), 1);
  std::lock_guard lock(mutex);
  std::size_t failures = 0;
  for (const auto& [generation, tries] : attempts) {
    int successes = 0;
    for (std::size_t i = 0; i < tries.size(); ++i) {
      if (tries[i].failed_at == stockade::time_point{}) {
        ++successes;
        continue;
      }
      ++failures;
      if (i + 1 < tries.size()) {
        EXPECT_GE(tries[i + 1].started, tries[i].failed_at + cool_down)
            << "generation " << generation << ", attempt " << i + 2
            << " started inside the cool-down of a failure nobody recorded";
      }
    }
    EXPECT_LE(successes, 1) << "generation " << generation;
  }
  EXPECT_GT(failures, 10U);
  EXPECT_GT(attempts.size(), 2U);
}

TEST(WarmupStress, ProbeResultsKeepTheirAgeWhenTheirLeadersHaveGivenUp) {
  // Probes take 1 s, longer than half the callers' deadlines, and alternate between healthy and
  // unhealthy. Every result is published whoever still waits for it: the next probe starts no
  // sooner than the last result's age after it.
  manual_clock clock;
  constexpr stockade::health_check_options ages{
      .max_age = 10s, .unhealthy_max_age = 2s, .probe_timeout = 1h};
  std::mutex mutex;
  struct probe {
    stockade::time_point started;
    stockade::time_point finished;
    bool healthy;
  };
  std::vector<probe> probes;
  stockade::health_check health{[&] {
                                  const stockade::time_point started = clock.now();
                                  clock.advance(1s);
                                  std::lock_guard lock(mutex);
                                  const bool healthy = probes.size() % 2 == 1;
                                  probes.push_back({started, clock.now(), healthy});
                                  return healthy;
                                },
                                ages, clock};
  std::latch all_checking{threads};
  std::atomic<bool> done{false};
  std::atomic<int> checks{0};
  std::thread time_keeper([&] {
    all_checking.wait();
    for (int step = 0; step < 200; ++step) {
      // Time moves only once the callers have checked since the last step, so every age
      // is seen by callers however the threads are scheduled.
      const int seen = checks.load();
      while (checks.load() < seen + threads) std::this_thread::yield();
      clock.advance(500ms);
    }
    done = true;
  });
  run_threads([&](int t) {
    all_checking.count_down();
    for (int i = 0; !done.load(); ++i) {
      context ctx{clock};
      if ((i + t) % 2 == 0) ctx.set_timeout(300ms);
      try {
        (void)health.check(ctx);
      } catch (const stockade::error& e) {
        EXPECT_EQ(e.code(), stockade::errc::timeout);  // a waiter whose deadline passed
      }
      checks.fetch_add(1);
    }
  });
  time_keeper.join();

  std::lock_guard lock(mutex);
  ASSERT_GT(probes.size(), 4U);
  for (std::size_t i = 1; i < probes.size(); ++i) {
    const probe& last = probes[i - 1];
    const auto age = last.healthy ? ages.max_age : ages.unhealthy_max_age;
    EXPECT_GE(probes[i].started, last.finished + age) << "probe " << i;
  }
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
