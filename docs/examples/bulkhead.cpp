// docs/bulkhead.md's example: a bulkhead shared by call sites, a queued caller served when a
// slot comes free, and a refused caller, on the manual clock so it runs at once.
#include <cstdio>
#include <functional>
#include <latch>
#include <stdexcept>
#include <thread>

#include <stockade/bulkhead.hpp>
#include <stockade/manual_clock.hpp>
#include <stockade/pipeline.hpp>
#include <stockade/timeout.hpp>

using namespace std::chrono_literals;

#define CHECK(condition)                                             \
  do {                                                               \
    if (!(condition)) throw std::logic_error("failed: " #condition); \
  } while (false)

int main() {
  stockade::testing::manual_clock clock;

  // One bulkhead per dependency, owned by the application: the database pool has 2 connections,
  // so at most 2 queries run at once, 1 more may wait up to 500 ms, the rest are refused.
  stockade::counters events;
  stockade::bulkhead db_slots{{.max_concurrent = 2, .max_queue = 1, .max_wait = 500ms},
                              stockade::observer_ref{events}};

  // Every call site takes it by std::ref; the timeout outside also bounds the wait for a slot.
  const auto query = stockade::pipeline{stockade::timeout{2s}, std::ref(db_slots)};

  // Two slow queries hold both slots until the example lets them finish.
  std::latch inside{2};
  std::latch finish{1};
  auto slow_query = [&] {
    stockade::context ctx{clock};
    query(ctx, [&] {
      inside.count_down();
      finish.wait();
      return 1;
    });
  };
  std::jthread first(slow_query);
  std::jthread second(slow_query);
  inside.wait();
  CHECK(db_slots.metrics().in_flight == 2);

  // A third caller queues; it will get the first slot that comes free.
  std::jthread third([&] {
    stockade::context ctx{clock};
    const int rows = query(ctx, [] { return 3; });
    CHECK(rows == 3);
  });
  CHECK(clock.await_waiting(1));  // it is in the queue now
  CHECK(db_slots.metrics().queued == 1);

  // A fourth finds the queue full and is refused at once: a rejection, never a dependency
  // failure (an outer circuit breaker does not count it).
  try {
    stockade::context ctx{clock};
    query(ctx, [] { return 4; });
    CHECK(false);
  } catch (const stockade::error& e) {
    CHECK(e.code() == stockade::errc::bulkhead_full);
    CHECK(e.is_rejection());
  }

  finish.count_down();  // the slow queries end; the queued caller gets a slot and runs
  first.join();
  second.join();
  third.join();

  const auto seen = db_slots.metrics();
  std::printf(
      "in flight %zu, queued %zu, peak %zu, rejected %llu, events %llu\n", seen.in_flight,
      seen.queued, seen.peak_in_flight, static_cast<unsigned long long>(seen.rejected),
      static_cast<unsigned long long>(events.count(stockade::event_kind::bulkhead_rejected)));
  CHECK(seen.in_flight == 0 && seen.queued == 0);
  CHECK(seen.peak_in_flight == 2 && seen.rejected == 1);
  return 0;
}
