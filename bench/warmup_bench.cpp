// The per-call cost of a warm-up gate that is ready, a health check whose result is fresh, and a
// lease on a warm resource, each read against raw_call (pipeline_bench.cpp) from the same run.
#include <benchmark/benchmark.h>

#include <chrono>
#include <functional>

#include <stockade/health_check.hpp>
#include <stockade/pipeline.hpp>
#include <stockade/resource.hpp>
#include <stockade/warmup_gate.hpp>

#include "common.hpp"

namespace {

using namespace std::chrono_literals;
using stockade_bench::dependency;

template <class Pipeline>
void run_through(benchmark::State& state, const Pipeline& pipeline) {
  int x = 0;
  for (auto _ : state) benchmark::DoNotOptimize(x = pipeline([&] { return dependency(x); }));
}

// With the caller's context reused, read against pipeline_0_layers_own_context: a layer whose
// slow path takes the context makes the compiler build the context for real, which a pipeline
// of pass_through layers optimizes away; that cost belongs to the context, not to the layer.
template <class Pipeline>
void run_through_own_context(benchmark::State& state, const Pipeline& pipeline) {
  stockade::context ctx;
  int x = 0;
  for (auto _ : state) benchmark::DoNotOptimize(x = pipeline(ctx, [&] { return dependency(x); }));
}

// Target: under 2 ns over raw_call (one atomic load, and the fatal-verdict check after the call).
void warmup_gate_ready(benchmark::State& state) {
  stockade::warmup_gate gate{[] {}};
  gate.start();
  run_through(state, stockade::pipeline{std::ref(gate)});
}
BENCHMARK(warmup_gate_ready);

void warmup_gate_ready_own_context(benchmark::State& state) {
  stockade::warmup_gate gate{[] {}};
  gate.start();
  run_through_own_context(state, stockade::pipeline{std::ref(gate)});
}
BENCHMARK(warmup_gate_ready_own_context);

// Target: under 5 ns over raw_call (one atomic load: no clock read, no lock).
void health_check_fresh(benchmark::State& state) {
  stockade::health_check health{[] { return true; }, {.max_age = 1h}};
  health.check();
  run_through(state, stockade::pipeline{std::ref(health)});
}
BENCHMARK(health_check_fresh);

void health_check_fresh_own_context(benchmark::State& state) {
  stockade::health_check health{[] { return true; }, {.max_age = 1h}};
  health.check();
  run_through_own_context(state, stockade::pipeline{std::ref(health)});
}
BENCHMARK(health_check_fresh_own_context);

// A lease on a warm, fresh resource: the gate load, a lock-free counted reference in and out, the
// health load, and handing the object to the callable through the context.
void resource_lease_warm(benchmark::State& state) {
  struct client {
    int offset = 1;
  };
  stockade::resource<client> db{
      {.create = [] { return client{}; }, .check_health = [](client&) { return true; }},
      {.max_age = 1h, .health = {.max_age = 1h}}};
  const auto pipeline = stockade::pipeline{std::ref(db)};
  int x = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(x = pipeline([&](stockade::context& ctx) {
                               return dependency(x) + ctx.resource<client>().offset;
                             }));
  }
}
BENCHMARK(resource_lease_warm);

// The same two shared objects with two threads calling at once (the gate and health words are
// only read, so they scale; the resource's counters are written by every call).
void warmup_gate_and_health_2_threads(benchmark::State& state) {
  static stockade::warmup_gate gate{[] {}};
  static stockade::health_check health{[] { return true; }, {.max_age = 1h}};
  gate.start();  // both thread-safe: whichever thread comes first warms and probes
  health.check();
  run_through(state, stockade::pipeline{std::ref(gate), std::ref(health)});
}
BENCHMARK(warmup_gate_and_health_2_threads)->Threads(2);

}  // namespace
