// The circuit breaker's cost: closed-state overhead per call for each trip strategy (read it
// against raw_call and pipeline_0_layers from the same run), the cost of a rejection while
// open, and throughput of one shared breaker from 2 threads.
#include <benchmark/benchmark.h>

#include <chrono>
#include <functional>

#include <stockade/circuit_breaker.hpp>
#include <stockade/pipeline.hpp>

#include "common.hpp"

namespace {

using namespace std::chrono_literals;
using stockade_bench::dependency;

template <class Breaker>
void run_closed(benchmark::State& state, Breaker& breaker) {
  const auto policy = stockade::pipeline{std::ref(breaker)};
  int x = 0;
  for (auto _ : state) benchmark::DoNotOptimize(x = policy([&] { return dependency(x); }));
}

// With the caller's context reused, read against pipeline_0_layers_own_context (retry_bench):
// a pipeline of no-op layers optimizes its context away, a breaker reads it (the outcome), so
// the figures above include building a context; these do not.
template <class Breaker>
void run_closed_own_context(benchmark::State& state, Breaker& breaker) {
  const auto policy = stockade::pipeline{std::ref(breaker)};
  stockade::context ctx;
  int x = 0;
  for (auto _ : state) benchmark::DoNotOptimize(x = policy(ctx, [&] { return dependency(x); }));
}

void circuit_breaker_closed_consecutive(benchmark::State& state) {
  stockade::circuit_breaker<stockade::consecutive_failures> breaker;
  run_closed(state, breaker);
}
BENCHMARK(circuit_breaker_closed_consecutive);

void circuit_breaker_closed_count_window(benchmark::State& state) {
  stockade::circuit_breaker<stockade::count_window> breaker;
  run_closed(state, breaker);
}
BENCHMARK(circuit_breaker_closed_count_window);

// Target: under 5 ns over the raw call (one atomic load for the state, a load and a store to
// advance the ring, one load of the slot, the epoch check).
void circuit_breaker_closed_count_window_own_context(benchmark::State& state) {
  stockade::circuit_breaker<stockade::count_window> breaker;
  run_closed_own_context(state, breaker);
}
BENCHMARK(circuit_breaker_closed_count_window_own_context);

void circuit_breaker_closed_consecutive_own_context(benchmark::State& state) {
  stockade::circuit_breaker<stockade::consecutive_failures> breaker;
  run_closed_own_context(state, breaker);
}
BENCHMARK(circuit_breaker_closed_consecutive_own_context);

void circuit_breaker_closed_time_window(benchmark::State& state) {
  stockade::circuit_breaker<stockade::time_window> breaker;
  run_closed(state, breaker);
}
BENCHMARK(circuit_breaker_closed_time_window);

void circuit_breaker_closed_slow_calls(benchmark::State& state) {
  stockade::circuit_breaker<stockade::slow_calls<stockade::count_window>> breaker;
  run_closed(state, breaker);
}
BENCHMARK(circuit_breaker_closed_slow_calls);

/// A refused call: the state check, the remaining time, the event and throwing the error.
void circuit_breaker_open_rejection(benchmark::State& state) {
  stockade::circuit_breaker<stockade::consecutive_failures> breaker;
  breaker.isolate();
  const auto policy = stockade::pipeline{std::ref(breaker)};
  int x = 0;
  for (auto _ : state) {
    try {
      x = policy([&] { return dependency(x); });
    } catch (const stockade::error& e) {
      benchmark::DoNotOptimize(e.code());
    }
  }
}
BENCHMARK(circuit_breaker_open_rejection);

// One breaker shared by every benchmark thread: what contention on its counters costs.
template <class Breaker>
void run_shared(benchmark::State& state) {
  static Breaker breaker;
  run_closed(state, breaker);
}

void circuit_breaker_shared_count_window(benchmark::State& state) {
  run_shared<stockade::circuit_breaker<stockade::count_window>>(state);
}
BENCHMARK(circuit_breaker_shared_count_window)->Threads(1)->Threads(2);

void circuit_breaker_shared_consecutive(benchmark::State& state) {
  run_shared<stockade::circuit_breaker<stockade::consecutive_failures>>(state);
}
BENCHMARK(circuit_breaker_shared_consecutive)->Threads(1)->Threads(2);

}  // namespace
