// docs/circuit-breaker.md's example: a breaker that opens on a failure ratio, refuses calls with
// a retry-after hint, lets a trial through after its open time and closes; then per-host
// breakers from a registry. On the manual clock, so it runs at once.
#include <chrono>
#include <cstdio>
#include <functional>
#include <stdexcept>
#include <string>

#include <stockade/breaker_registry.hpp>
#include <stockade/circuit_breaker.hpp>
#include <stockade/manual_clock.hpp>
#include <stockade/pipeline.hpp>

using namespace std::chrono_literals;

#define CHECK(condition)                                             \
  do {                                                               \
    if (!(condition)) throw std::logic_error("failed: " #condition); \
  } while (false)

namespace {

struct db_error : std::runtime_error {
  db_error() : std::runtime_error("too many clients") {}
};

}  // namespace

int main() {
  stockade::testing::manual_clock clock;
  stockade::counters events;

  // One breaker per dependency, owned by the application. It opens when half of the last 20
  // calls failed (once 10 were made), stays open 5 s the first time, then 10 s, 20 s... up to
  // 2 min while trials keep failing, and lets 2 trial calls through when half-open.
  using breaker_type =
      stockade::circuit_breaker<stockade::count_window, stockade::observer_ref<stockade::counters>>;
  breaker_type db_breaker{{.trip = {.size = 20, .failure_ratio = 0.5, .minimum_calls = 10},
                           .open_for = stockade::exponential{5s, 2.0, 2min},
                           .half_open_permits = 2,
                           .name = "db"},
                          clock,
                          stockade::observer_ref{events}};

  const auto query = stockade::pipeline{std::ref(db_breaker)};
  bool db_up = false;
  const auto run_query = [&](stockade::context& /*ctx*/) {
    if (!db_up) throw db_error{};
    return 42;
  };

  // The database is down: after 10 failed calls the breaker opens.
  for (int i = 0; i < 10; ++i) {
    stockade::context ctx{clock};
    try {
      query(ctx, run_query);
    } catch (const db_error&) {
    }
  }
  CHECK(db_breaker.state() == stockade::circuit_state::open);

  // Calls are now refused without touching the database. The error is a rejection (no outer
  // breaker or retry budget counts it as a failure) and carries the time left open.
  clock.advance(2s);
  try {
    stockade::context ctx{clock};
    query(ctx, run_query);
    CHECK(false);
  } catch (const stockade::error& e) {
    CHECK(e.code() == stockade::errc::circuit_open);
    CHECK(e.is_rejection());
    CHECK(e.retry_after() == 3s);
  }

  // The database recovers; once the open time has passed, two trial calls close the breaker.
  db_up = true;
  clock.advance(3s);
  CHECK(db_breaker.state() == stockade::circuit_state::half_open);
  for (int i = 0; i < 2; ++i) {
    stockade::context ctx{clock};
    CHECK(query(ctx, run_query) == 42);
  }
  CHECK(db_breaker.state() == stockade::circuit_state::closed);

  const auto seen = db_breaker.metrics();
  std::printf(
      "db: %s, opened %llu time(s), %llu call(s) refused, %llu state change(s)\n",
      stockade::to_string(seen.state), static_cast<unsigned long long>(seen.times_opened),
      static_cast<unsigned long long>(seen.rejections),
      static_cast<unsigned long long>(events.count(stockade::event_kind::breaker_state_changed)));
  CHECK(seen.times_opened == 1 && seen.rejections == 1);

  // One breaker per host: a registry makes them on first use and keeps at most 100.
  stockade::breaker_registry<std::string, stockade::circuit_breaker<stockade::consecutive_failures>>
      per_host{{.trip = {.threshold = 3}}, {.max_breakers = 100}, clock};
  const auto replica = per_host.get("db-replica-2");  // keep it for this host's calls
  for (int i = 0; i < 3; ++i) {
    stockade::context ctx{clock};
    try {
      stockade::pipeline{std::ref(*replica)}(ctx, []() -> int { throw db_error{}; });
    } catch (const db_error&) {
    }
  }
  CHECK(replica->state() == stockade::circuit_state::open);
  CHECK(per_host.get("db-replica-1")->state() == stockade::circuit_state::closed);
  std::printf("%s: %s\n", std::string(replica->name()).c_str(),
              stockade::to_string(replica->state()));
  return 0;
}
