// docs/fault-injection.md: a test injects latency, errors and error results into a call site,
// checks how it copes, and replays the very same faults from the seed.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <stdexcept>
#include <vector>

#include <stockade/fault_injection.hpp>
#include <stockade/manual_clock.hpp>
#include <stockade/pipeline.hpp>

using namespace std::chrono_literals;

struct response {
  int status;
};

struct connection_reset : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// What the application does with a response: the code under test.
int handle(const response& r) { return r.status == 200 ? 1 : 0; }

// Runs 200 calls on virtual time and returns what happened to each: 1 handled, 0 an error
// response, -1 an exception, -2 out of time.
template <class Injector>
std::vector<int> run(Injector& chaos, stockade::testing::manual_clock& clock) {
  // The classifier decides what an injected response means, as it would for a real one.
  const auto call_site = stockade::pipeline{std::ref(chaos)}.classify_with(
      stockade::classifier{stockade::on_result([](const response& r) {
        return r.status >= 500 ? stockade::verdict::transient : stockade::verdict::success;
      })});
  std::vector<int> results;
  for (int i = 0; i < 200; ++i) {
    stockade::context ctx{clock};
    ctx.set_timeout(1s);
    try {
      results.push_back(handle(call_site(ctx, [] { return response{200}; })));
    } catch (const connection_reset&) {
      results.push_back(-1);
    } catch (const stockade::error& e) {
      results.push_back(e.code() == stockade::errc::timeout ? -2 : -1);
    }
    clock.advance(10ms);  // the next request arrives a little later
  }
  return results;
}

int main() {
  stockade::testing::manual_clock clock;  // latency is virtual: this runs in microseconds
  const auto start = clock.now();

  stockade::counters stats;
  stockade::fault_injector chaos{
      {.seed = 2024},
      stockade::observer_ref{stats},
      // Every 10th call is slow, and a quarter of those run out of time.
      stockade::inject_latency{{.every_nth = 10}, 300ms},
      stockade::inject_latency{{.probability = 0.25, .every_nth = 10}, 900ms},
      // 5 % of calls lose their connection.
      stockade::inject_exception{{.probability = 0.05},
                                 [] { return connection_reset("injected: connection reset"); }},
      // Between 0.5 s and 1 s into the test, the server answers 503.
      stockade::inject_result{{.from = start + 500ms, .until = start + 1s},
                              [] { return response{503}; }}};

  const std::vector<int> first = run(chaos, clock);
  const std::uint64_t injected = chaos.injected();

  // Replay: same seed, calls numbered from 1 again, the same clock times -> the same faults.
  chaos.reset();
  stockade::testing::manual_clock replay_clock;
  const std::vector<int> second = run(chaos, replay_clock);

  int handled = 0;
  int errors = 0;
  for (int r : first) handled += r == 1 ? 1 : 0;
  for (int r : first) errors += r < 0 ? 1 : 0;
  std::printf(
      "calls: 200, handled: %d, failed: %d, faults injected: %llu (latency %llu, "
      "exception %llu, result %llu), replay identical: %s\n",
      handled, errors, static_cast<unsigned long long>(injected),
      static_cast<unsigned long long>(chaos.injected(stockade::fault_kind::latency)),
      static_cast<unsigned long long>(chaos.injected(stockade::fault_kind::exception)),
      static_cast<unsigned long long>(chaos.injected(stockade::fault_kind::result)),
      first == second ? "yes" : "no");

  const bool counted = stats.count(stockade::event_kind::fault_injected) == 2 * injected;
  return first == second && chaos.injected() == injected && counted && handled < 200 ? 0 : 1;
}
