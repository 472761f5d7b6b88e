// Many more threads than slots, through the fast path, the queue, hand-overs, timeouts and
// cancellations at once. Asserts invariants, never timings: the callee never sees more than
// max_concurrent calls at once, and every call ends exactly once (ran, or a documented rejection).
#include <stockade/bulkhead.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <stop_token>
#include <thread>
#include <vector>

#include <stockade/manual_clock.hpp>
#include <stockade/pipeline.hpp>

namespace {

using namespace std::chrono_literals;
using stockade::bulkhead;
using stockade::context;
using stockade::errc;
using stockade::testing::manual_clock;

constexpr int threads = 8;
constexpr int calls_per_thread = 4000;
constexpr std::size_t slots_count = 3;

/// Counts the calls inside the callee and remembers the most seen at once.
struct occupancy {
  std::atomic<std::size_t> inside{0};
  std::atomic<std::size_t> most{0};

  void enter() {
    const std::size_t now = inside.fetch_add(1) + 1;
    std::size_t seen = most.load();
    while (now > seen && !most.compare_exchange_weak(seen, now)) {
    }
  }
  void leave() { inside.fetch_sub(1); }
};

/// How each call ended; every call must land in exactly one of these.
struct endings {
  std::atomic<std::uint64_t> returned{0};
  std::atomic<std::uint64_t> threw{0};
  std::atomic<std::uint64_t> full{0};
  std::atomic<std::uint64_t> wait_exceeded{0};
  std::atomic<std::uint64_t> cancelled{0};
  std::atomic<std::uint64_t> other{0};

  std::uint64_t total() const {
    return returned + threw + full + wait_exceeded + cancelled + other;
  }
  std::uint64_t rejections() const { return full + wait_exceeded + cancelled; }
};

TEST(BulkheadStress, FailFastBulkheadNeverExceedsItsSlots) {
  manual_clock clock;
  bulkhead slots{{.max_concurrent = slots_count}};
  const auto policy = stockade::pipeline{std::ref(slots)};
  occupancy occupied;
  endings ended;
  std::vector<std::atomic<int>> ends_of_call(threads * calls_per_thread);
  {
    std::vector<std::jthread> workers;
    for (int t = 0; t < threads; ++t) {
      workers.emplace_back([&, t] {
        for (int i = 0; i < calls_per_thread; ++i) {
          const int id = t * calls_per_thread + i;
          context ctx{clock};
          try {
            policy(ctx, [&] {
              occupied.enter();
              if (i % 3 == 0) std::this_thread::yield();
              occupied.leave();
            });
            ++ended.returned;
          } catch (const stockade::error& e) {
            (e.code() == errc::bulkhead_full ? ended.full : ended.other)++;
          }
          ends_of_call[static_cast<std::size_t>(id)]++;
        }
      });
    }
  }
  EXPECT_LE(occupied.most.load(), slots_count);
  EXPECT_EQ(ended.other.load(), 0U);
  EXPECT_EQ(ended.total(), static_cast<std::uint64_t>(threads * calls_per_thread));
  for (const auto& ends : ends_of_call) ASSERT_EQ(ends.load(), 1);
  const auto metrics = slots.metrics();
  EXPECT_EQ(metrics.in_flight, 0U);
  EXPECT_EQ(metrics.rejected, ended.full.load());
  EXPECT_LE(metrics.peak_in_flight, slots_count);
  EXPECT_GE(metrics.peak_in_flight, 1U);
}

TEST(BulkheadStress, QueuedBulkheadNeverExceedsItsSlotsAndEndsEveryCallOnce) {
  manual_clock clock;
  bulkhead slots{{.max_concurrent = slots_count, .max_queue = 4, .max_wait = 3ms}};
  const auto policy = stockade::pipeline{std::ref(slots)};
  occupancy occupied;
  endings ended;
  std::atomic<std::uint64_t> executed{0};
  std::vector<std::atomic<int>> ends_of_call(threads * calls_per_thread);
  std::atomic<bool> done{false};
  std::stop_source cancel;  // some calls carry its token; the ticker fires it midway

  // Moves virtual time on, so that max_wait and deadlines run out while threads wait.
  std::jthread ticker([&] {
    for (int tick = 0; !done.load(); ++tick) {
      clock.advance(1ms);
      if (tick == 200) cancel.request_stop();
      std::this_thread::yield();
    }
  });
  {
    std::vector<std::jthread> workers;
    for (int t = 0; t < threads; ++t) {
      workers.emplace_back([&, t] {
        for (int i = 0; i < calls_per_thread; ++i) {
          const int id = t * calls_per_thread + i;
          context ctx{clock};
          if (i % 5 == 0) ctx.set_timeout(2ms);
          if (i % 13 == 0) ctx.set_stop_token(cancel.get_token());
          try {
            policy(ctx, [&] {
              occupied.enter();
              ++executed;
              if (i % 2 == 0) std::this_thread::yield();
              occupied.leave();
              if (i % 7 == 0) throw std::runtime_error("dependency failed");
            });
            ++ended.returned;
          } catch (const stockade::error& e) {
            switch (e.code()) {
              case errc::bulkhead_full:
                ++ended.full;
                break;
              case errc::bulkhead_wait_exceeded:
                ++ended.wait_exceeded;
                break;
              case errc::cancelled:
                ++ended.cancelled;
                break;
              default:
                ++ended.other;
            }
          } catch (const std::runtime_error&) {
            ++ended.threw;
          }
          ends_of_call[static_cast<std::size_t>(id)]++;
        }
      });
    }
  }
  done = true;
  ticker.join();

  EXPECT_LE(occupied.most.load(), slots_count);
  EXPECT_EQ(ended.other.load(), 0U);
  EXPECT_EQ(ended.total(), static_cast<std::uint64_t>(threads * calls_per_thread));
  EXPECT_EQ(executed.load(), ended.returned + ended.threw);
  for (const auto& ends : ends_of_call) ASSERT_EQ(ends.load(), 1);
  const auto metrics = slots.metrics();
  EXPECT_EQ(metrics.in_flight, 0U);
  EXPECT_EQ(metrics.queued, 0U);
  EXPECT_EQ(metrics.rejected, ended.rejections());
  EXPECT_LE(metrics.peak_in_flight, slots_count);
}

}  // namespace
