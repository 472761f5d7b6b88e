// Per-host circuit breakers from a registry: three replicas behind one client; one goes down,
// its breaker opens, and the client routes around it at once while the other two keep serving.
// Afterwards the replica recovers and its breaker closes again. Manual clock: instant.
#include <array>
#include <chrono>
#include <cstdio>
#include <functional>
#include <stdexcept>
#include <string>

#include <stockade/breaker_registry.hpp>
#include <stockade/circuit_breaker.hpp>
#include <stockade/errors.hpp>
#include <stockade/manual_clock.hpp>
#include <stockade/pipeline.hpp>

using namespace std::chrono_literals;

struct replica_down : std::runtime_error {
  explicit replica_down(const std::string& host) : std::runtime_error(host + " is down") {}
};

int main(int /*argc*/, char** /*argv*/) {  // --quick accepted and ignored
  stockade::testing::manual_clock clock;   // production code leaves the clock out
  using breaker = stockade::circuit_breaker<stockade::consecutive_failures>;
  // One breaker per host, made on first use, all with the same options; at most 100 kept.
  stockade::breaker_registry<std::string, breaker> per_host{
      {.trip = {.threshold = 3}, .open_for = stockade::constant{10s}},
      {.max_breakers = 100},
      clock};

  const std::array<std::string, 3> hosts = {"db-replica-1", "db-replica-2", "db-replica-3"};
  bool replica_2_up = false;
  const auto query = [&](const std::string& host) {
    if (host == "db-replica-2" && !replica_2_up) throw replica_down(host);
    return host;
  };

  // Round robin; a host whose breaker refuses (open) is skipped without waiting for it to fail.
  int served[3] = {0, 0, 0};
  int refused_at_once = 0;
  const auto read = [&](int request) {
    for (int offset = 0; offset < 3; ++offset) {
      const std::string& host = hosts[static_cast<std::size_t>((request + offset) % 3)];
      auto host_breaker = per_host.get(host);  // a real client keeps this pointer per host
      stockade::context ctx{clock};
      try {
        stockade::pipeline{std::ref(*host_breaker)}(ctx, [&] { return query(host); });
        ++served[(request + offset) % 3];
        return true;
      } catch (const stockade::error& e) {  // the breaker refused: the host was not called
        if (e.code() == stockade::errc::circuit_open) ++refused_at_once;
      } catch (const replica_down&) {  // the host failed; its breaker counted it
      }
    }
    return false;
  };

  int answered = 0;
  for (int request = 0; request < 30; ++request) answered += read(request) ? 1 : 0;
  std::printf("replica 2 down: %d of 30 reads answered, served by %d/%d/%d, %d refused at once\n",
              answered, served[0], served[1], served[2], refused_at_once);
  std::printf("  %s: %s\n", hosts[1].c_str(), stockade::to_string(per_host.get(hosts[1])->state()));

  // Replica 2 recovers; after open_for its breaker lets a trial through, which closes it.
  replica_2_up = true;
  clock.advance(10s);
  for (int request = 30; request < 60; ++request) answered += read(request) ? 1 : 0;
  std::printf("replica 2 back: %s, served by %d/%d/%d, %zu breakers\n",
              stockade::to_string(per_host.get(hosts[1])->state()), served[0], served[1], served[2],
              per_host.size());

  const bool as_expected = answered == 60 && refused_at_once == 7 &&
                           per_host.get(hosts[1])->state() == stockade::circuit_state::closed;
  return as_expected ? 0 : 1;
}
