// The whole stack of the design brief on the success path, on one and two threads, and its
// failure paths (an exception, an expected-like error), each read against raw_call from the
// same run. Issue 8's target: the success path under 60 ns over raw_call, one clock read included.
#include <benchmark/benchmark.h>

#include <chrono>
#include <functional>
#include <optional>
#include <stdexcept>

#include <stockade/stockade.hpp>

#include "common.hpp"

namespace {

using namespace std::chrono_literals;
using stockade_bench::dependency;

/// The shared objects of one dependency, as an application owns them.
struct dependency_guards {
  stockade::circuit_breaker<stockade::count_window> breaker{
      {.trip = {.size = 100, .failure_ratio = 0.5, .minimum_calls = 20}}};
  stockade::bulkhead<> slots{{.max_concurrent = 64, .max_queue = 64, .max_wait = 2s}};
  stockade::warmup_gate<> gate{[] {}};
  stockade::health_check<> health{[] { return true; }, {.max_age = 1h}};

  dependency_guards() {
    gate.start();
    health.check();
  }
};

/// timeout, retry, breaker, bulkhead, warm-up gate, health check, timeout: the brief's stack.
auto full_stack(dependency_guards& guards) {
  return stockade::pipeline{
      stockade::timeout{8s},
      stockade::retry{{.max_attempts = 4, .backoff = stockade::exponential{200ms, 2.0, 2s}}},
      std::ref(guards.breaker),
      std::ref(guards.slots),
      std::ref(guards.gate),
      std::ref(guards.health),
      stockade::timeout{2s}};
}

void full_stack_success(benchmark::State& state) {
  static dependency_guards guards;  // shared by the threads of a multi-threaded run
  const auto pipeline = full_stack(guards);
  int x = 0;
  for (auto _ : state) benchmark::DoNotOptimize(x = pipeline([&] { return dependency(x); }));
}
BENCHMARK(full_stack_success);
BENCHMARK(full_stack_success)->Threads(2)->UseRealTime();

// The clock read the stack pays once per attempt, measured alone for comparison.
void steady_clock_read(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(std::chrono::steady_clock::now());
}
BENCHMARK(steady_clock_read);

// Failure paths: no retry (max_attempts 1) and a breaker that never trips, so each iteration is
// one failed call through every layer.
struct failing_guards {
  stockade::circuit_breaker<stockade::consecutive_failures> breaker{
      {.trip = {.threshold = std::size_t{1} << 40}}};
  stockade::bulkhead<> slots{{.max_concurrent = 64}};
};

auto failing_stack(failing_guards& guards) {
  return stockade::pipeline{stockade::timeout{8s}, stockade::retry{{.max_attempts = 1}},
                            std::ref(guards.breaker), std::ref(guards.slots),
                            stockade::timeout{2s}};
}

void full_stack_failure_exception(benchmark::State& state) {
  failing_guards guards;
  const auto pipeline = failing_stack(guards);
  int x = 0;
  for (auto _ : state) {
    try {
      pipeline([&]() -> int { throw std::runtime_error("down"); });
    } catch (const std::runtime_error&) {
      ++x;
    }
  }
  benchmark::DoNotOptimize(x);
}
BENCHMARK(full_stack_failure_exception);

// An expected-like result: has_value() and error(), like std::expected (C++23).
struct result {
  std::optional<int> value;
  int code = 0;
  bool has_value() const { return value.has_value(); }
  int error() const { return code; }
};

void full_stack_failure_error_value(benchmark::State& state) {
  failing_guards guards;
  const auto pipeline = failing_stack(guards);
  int x = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(x += pipeline([&] { return result{std::nullopt, dependency(x)}; }).code);
  }
}
BENCHMARK(full_stack_failure_error_value);

}  // namespace
