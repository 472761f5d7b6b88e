// Using stockade's manual clock in your own tests: give your class a stockade::clock& (the real
// clock by default) and build its contexts and breakers on it; a test passes a manual_clock and
// the retry's backoff, the deadline and the breaker's open time all pass instantly and
// deterministically. The same lines go inside TEST() with GoogleTest or Catch2.
#include <chrono>
#include <cstdio>
#include <functional>
#include <stdexcept>
#include <thread>

#include <stockade/circuit_breaker.hpp>
#include <stockade/manual_clock.hpp>
#include <stockade/pipeline.hpp>
#include <stockade/retry.hpp>
#include <stockade/timeout.hpp>

using namespace std::chrono_literals;

// --- the code under test ---------------------------------------------------------------------

struct gateway_unavailable : std::runtime_error {
  gateway_unavailable() : std::runtime_error("payment gateway unavailable") {}
};

/// Charges a card through a flaky gateway. The clock is injected; production passes nothing.
class payment_client {
 public:
  explicit payment_client(std::function<int(int)> gateway,
                          stockade::clock& clock = stockade::real_clock::instance())
      : gateway_(std::move(gateway)), clock_(clock), breaker_({.trip = {.threshold = 5}}, clock) {}

  int charge(int cents) {
    stockade::context ctx{clock_};  // every wait of this call goes through the injected clock
    return policy_(ctx, [&] { return gateway_(cents); });
  }
  stockade::circuit_state state() const { return breaker_.state(); }

 private:
  std::function<int(int)> gateway_;
  stockade::clock& clock_;
  stockade::circuit_breaker<stockade::consecutive_failures> breaker_;
  const stockade::pipeline<stockade::timeout<>, stockade::retry<>,
                           std::reference_wrapper<decltype(breaker_)>>
      policy_{stockade::timeout{3s},
              stockade::retry{{.max_attempts = 4,
                               .backoff = stockade::exponential{200ms, 2.0, 2s},
                               .jitter = stockade::jitter::none()}},  // exact waits in tests
              std::ref(breaker_)};
};

// --- the tests -----------------------------------------------------------------------------

int failures = 0;
void check(bool holds, const char* what) {
  std::printf("%s  %s\n", holds ? "ok  " : "FAIL", what);
  if (!holds) ++failures;
}

void retries_with_backoff_without_sleeping() {
  stockade::testing::manual_clock clock;  // sleeps move virtual time at once
  int calls = 0;
  payment_client client(
      [&](int cents) { return ++calls < 3 ? throw gateway_unavailable() : cents; }, clock);
  const auto wall_start = std::chrono::steady_clock::now();
  check(client.charge(500) == 500, "the third attempt succeeds");
  check(clock.total_slept() == 600ms, "it waited 200 ms then 400 ms of virtual time");
  check(std::chrono::steady_clock::now() - wall_start < 1s, "and no real time at all");
}

void gives_up_at_the_deadline() {
  stockade::testing::manual_clock clock;
  int calls = 0;
  payment_client client(
      [&](int) -> int {
        ++calls;
        throw gateway_unavailable();
      },
      clock);
  const auto start = clock.now();
  bool failed = false;
  try {
    client.charge(500);
  } catch (const gateway_unavailable&) {
    failed = true;
  }
  check(failed && calls == 4, "four attempts, then the gateway's own error");
  check(clock.now() - start == 200ms + 400ms + 800ms, "1.4 s of backoff, within the 3 s deadline");
}

void breaker_opens_and_half_opens_after_its_open_time() {
  stockade::testing::manual_clock clock;
  payment_client client([](int) -> int { throw gateway_unavailable(); }, clock);
  try {
    client.charge(100);  // four failed attempts
  } catch (const gateway_unavailable&) {
  }
  try {
    client.charge(100);  // the fifth failure opens the breaker; the retry then waits its hint
  } catch (const std::exception&) {
  }
  check(client.state() != stockade::circuit_state::closed, "five failures in a row open it");
  clock.advance(5s);  // the breaker's default open time
  check(client.state() == stockade::circuit_state::half_open, "5 s later it lets a trial through");
}

void a_thread_waits_until_the_test_moves_time() {
  // With wait_for_advance, sleeps block until the test advances time: the test decides when a
  // backoff ends, and await_waiting() orders threads without sleeping.
  stockade::testing::manual_clock clock{stockade::testing::manual_clock::sleeps::wait_for_advance};
  int calls = 0;
  payment_client client(
      [&](int cents) { return ++calls < 2 ? throw gateway_unavailable() : cents; }, clock);
  int charged = 0;
  std::thread caller([&] { charged = client.charge(700); });
  check(clock.await_waiting(1), "the caller is waiting out its first backoff");
  check(calls == 1, "after one attempt");
  clock.advance(200ms);
  caller.join();
  check(charged == 700 && calls == 2, "advancing 200 ms lets the second attempt run");
}

int main(int /*argc*/, char** /*argv*/) {  // --quick accepted and ignored
  retries_with_backoff_without_sleeping();
  gives_up_at_the_deadline();
  breaker_opens_and_half_opens_after_its_open_time();
  a_thread_waits_until_the_test_moves_time();
  std::printf("%d failed\n", failures);
  return failures == 0 ? 0 : 1;
}
