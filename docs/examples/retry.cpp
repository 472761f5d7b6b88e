// docs/retry.md's example: a query that meets "too many clients" twice and a dead connection
// once, retried with capped exponential backoff and jitter, a shared retry budget, a reset of
// the connection on the fatal verdict, and events counted. Runs on the manual clock: instant.
#include <stockade/classifier.hpp>
#include <stockade/manual_clock.hpp>
#include <stockade/pipeline.hpp>
#include <stockade/retry.hpp>

#include <cstdio>
#include <stdexcept>
#include <string>

using namespace std::chrono_literals;

// What the database client throws.
struct too_many_clients : std::runtime_error {
  too_many_clients() : std::runtime_error("too many clients") {}
};
struct engine_not_connected : std::runtime_error {
  engine_not_connected() : std::runtime_error("engine is not yet connected") {}
};

int main() {
  stockade::testing::manual_clock clock;  // production code leaves the clock out

  // Pool exhaustion is worth retrying; a dead engine must be reconnected first (fatal).
  const auto rules =
      stockade::classifier{stockade::on<too_many_clients, stockade::verdict::transient>{},
                           stockade::on<engine_not_connected, stockade::verdict::fatal>{}};

  // One budget per dependency, shared by every call site: gRPC A6's example numbers.
  static stockade::token_budget db_budget{{.max_tokens = 10, .token_ratio = 0.1}};
  stockade::counters events;
  bool connected = false;

  const auto query_policy = stockade::pipeline{
      stockade::retry{
          {.max_attempts = 4,
           .backoff = stockade::exponential{.initial = 200ms, .multiplier = 2.0, .max_delay = 2s},
           .jitter = stockade::jitter::equal()},
          // the next attempt reconnects
          stockade::on_fatal([&] { connected = false; }),
          std::ref(db_budget),
          stockade::observer_ref{
              events}}}.classify_with(rules);

  int attempts = 0;
  stockade::context ctx{clock};
  ctx.set_timeout(10s).set_name("db.query");
  const std::string rows = query_policy(ctx, [&](stockade::context& call) {
    ++attempts;
    if (!connected) connected = true;  // stands for db.connect()
    if (call.attempt() <= 2) throw too_many_clients();
    if (call.attempt() == 3) throw engine_not_connected();
    return std::string("42 rows");
  });

  std::printf(
      "%s after %d attempts, %lld ms of backoff, %llu retries scheduled, budget %.1f\n",
      rows.c_str(), attempts,
      static_cast<long long>(
          std::chrono::duration_cast<std::chrono::milliseconds>(clock.total_slept()).count()),
      static_cast<unsigned long long>(events.count(stockade::event_kind::retry_scheduled)),
      db_budget.tokens());

  // Equal jitter waits between half and all of 200, 400, 800 ms: 700 ms to 1.4 s in total.
  const bool as_expected = rows == "42 rows" && attempts == 4 && clock.total_slept() >= 700ms &&
                           clock.total_slept() <= 1400ms &&
                           events.count(stockade::event_kind::retry_gave_up) == 0;
  return as_expected ? 0 : 1;
}
