// docs/warmup-and-health.md: the post-mortem's database client, managed by stockade::resource.
// A burst of cold-start callers connects once; a fatal error replaces the client once; the
// health probe and the queries run on the same client; the 5-minute age limit replaces it.
// Runs on the manual clock, so it is instant and always prints the same thing.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <stockade/classifier.hpp>
#include <stockade/manual_clock.hpp>
#include <stockade/pipeline.hpp>
#include <stockade/resource.hpp>
#include <stockade/retry.hpp>
#include <stockade/timeout.hpp>

using namespace std::chrono_literals;

/// The error the post-mortem's client threw when used before it was connected, or after its
/// engine died: the client is broken, only a new one helps.
struct engine_not_connected : std::runtime_error {
  engine_not_connected() : std::runtime_error("Engine is not yet connected") {}
};

/// A stand-in for the database client.
class db_client {
 public:
  explicit db_client(int id) : id_(id) {}
  void connect() { connected_ = true; }
  bool ping() const { return connected_ && !broken_; }
  std::string query(const std::string& sql) {
    if (!connected_ || broken_) throw engine_not_connected();
    return "client " + std::to_string(id_) + ": " + sql;
  }
  void break_engine() { broken_ = true; }
  int id() const { return id_; }

 private:
  int id_;
  bool connected_ = false;
  bool broken_ = false;
};

int main() {
  stockade::testing::manual_clock clock;
  stockade::counters events;
  std::atomic<int> clients_made{0};

  // One object owns the client's whole life. Each hook receives the client it acts on, so the
  // health check cannot run on another client than the queries.
  stockade::resource<db_client, stockade::observer_ref<stockade::counters>> db{
      {.create = [&] { return db_client{clients_made.fetch_add(1) + 1}; },
       .warm_up = [](db_client& c) { c.connect(); },
       .check_health = [](db_client& c) { return c.ping(); },
       .close = [](db_client&) { /* disconnect */ }},
      {.max_age = 5min, .health = {.max_age = 10s}},
      clock,
      stockade::observer_ref{events}};

  // "Engine is not yet connected" means the client is broken: a fatal verdict.
  const auto policy =
      stockade::pipeline{
          stockade::timeout{8s},
          stockade::retry{{.max_attempts = 3, .backoff = stockade::exponential{200ms, 2.0, 2s}}},
          std::ref(db)}
          .classify_with(
              stockade::classifier{stockade::on<engine_not_connected, stockade::verdict::fatal>{}});
  const auto run = [&](const std::string& sql) {
    stockade::context ctx{clock};
    return policy(ctx, [&](stockade::context& c) { return c.resource<db_client>().query(sql); });
  };

  // 1. Cold start: eight requests at once. One connects; the others wait for it.
  std::vector<std::thread> burst;
  for (int i = 0; i < 8; ++i) burst.emplace_back([&] { run("select 1"); });
  for (auto& t : burst) t.join();
  std::printf("after the cold-start burst: %d client(s) made\n", clients_made.load());

  // 2. The engine dies under a query: that call's retry gets a new client, made once.
  {
    stockade::context ctx{clock};
    db.acquire(ctx)->break_engine();
  }
  std::printf("%s\n", run("select * from orders").c_str());

  // 3. Five minutes later the client is too old and is replaced at the next call.
  clock.advance(5min);
  std::printf("%s\n", run("select count(*) from users").c_str());

  const auto count = [&](stockade::event_kind kind) {
    return static_cast<unsigned long long>(events.count(kind));
  };
  std::printf(
      "created %llu, retired %llu, warm-ups %llu, probes %llu\n",
      count(stockade::event_kind::resource_created), count(stockade::event_kind::resource_retired),
      count(stockade::event_kind::warmup_started), count(stockade::event_kind::health_probed));
  return clients_made.load() == 3 && count(stockade::event_kind::resource_retired) == 2 ? 0 : 1;
}
