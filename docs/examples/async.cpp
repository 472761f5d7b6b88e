// docs/async.md's example: a thousand coroutines on one thread call a flaky dependency through
// timeout > retry > breaker > bulkhead, with a breaker and a bulkhead shared with a blocking
// caller. On the manual runtime, so the backoffs and the queue pass in virtual time at once.
#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <stdexcept>
#include <vector>

#include <stockade/bulkhead.hpp>
#include <stockade/circuit_breaker.hpp>
#include <stockade/manual_clock.hpp>
#include <stockade/manual_runtime.hpp>
#include <stockade/pipeline.hpp>
#include <stockade/retry.hpp>
#include <stockade/task.hpp>
#include <stockade/timeout.hpp>

using namespace std::chrono_literals;

#define CHECK(condition)                                             \
  do {                                                               \
    if (!(condition)) throw std::logic_error("failed: " #condition); \
  } while (false)

namespace {

struct row {
  int id;
};

/// The dependency: every third request of each caller fails once, and a reply takes 5 ms.
struct database {
  stockade::testing::manual_clock& clock;
  int requests = 0;

  stockade::task<row> fetch(stockade::context& ctx, int id) {
    ++requests;
    stockade::context own{clock};
    (void)co_await stockade::runtime_traits<stockade::task<row>>::sleep_until(own, own.now() + 5ms);
    if (id % 3 == 0 && ctx.attempt() == 1) throw std::runtime_error("connection reset");
    co_return row{id};
  }
};

}  // namespace

int main() {
  stockade::testing::manual_clock clock;
  stockade::testing::manual_runtime runtime{clock};
  database db{clock};

  // Shared with blocking callers of the same database: one state.
  stockade::circuit_breaker<stockade::consecutive_failures> breaker{{.trip = {.threshold = 50}},
                                                                    clock};
  stockade::bulkhead<> slots{{.max_concurrent = 16, .max_queue = 1000, .max_wait = 2s}};
  const auto policy = stockade::pipeline{stockade::timeout{8s},
                                         stockade::retry{{.max_attempts = 3,
                                                          .backoff = stockade::constant{20ms},
                                                          .jitter = stockade::jitter::none()}},
                                         std::ref(breaker), std::ref(slots)};

  int fetched = 0;
  auto handler = [&](int id) -> stockade::task<void> {
    stockade::context ctx{clock};
    const row got = co_await policy.async(
        ctx, [&db, id](stockade::context& inner) { return db.fetch(inner, id); });
    CHECK(got.id == id);
    ++fetched;
  };
  for (int id = 1; id <= 1000; ++id) runtime.spawn(handler(id));
  const stockade::duration took = runtime.run_until_idle();

  CHECK(fetched == 1000);
  CHECK(db.requests == 1000 + 333);  // one retry for each id divisible by 3
  CHECK(slots.metrics().peak_in_flight == 16);
  CHECK(breaker.state() == stockade::circuit_state::closed);
  std::printf(
      "1000 coroutines on one thread: %d requests, %lld ms of virtual time\n", db.requests,
      static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(took).count()));

  // A blocking caller on the same breaker and bulkhead, between coroutine calls.
  stockade::context blocking{clock};
  const auto guards = stockade::pipeline{std::ref(breaker), std::ref(slots)};
  CHECK(guards(blocking, [] { return 7; }) == 7);
  return 0;
}
