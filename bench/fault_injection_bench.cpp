// What fault injection costs when it injects nothing: disabled at run time (one relaxed load),
// compiled out (no faults in the type), enabled but not firing; read against raw_call and
// pipeline_1_layer (pipeline_bench.cpp) from the same run.
#include <benchmark/benchmark.h>

#include <functional>

#include <stockade/fault_injection.hpp>
#include <stockade/pipeline.hpp>

#include "common.hpp"

namespace {

using stockade_bench::dependency;

template <class... Layers>
void run_through(benchmark::State& state, Layers... layers) {
  const auto pipeline = stockade::pipeline{layers...};
  int x = 0;
  for (auto _ : state) benchmark::DoNotOptimize(x = pipeline([&] { return dependency(x); }));
}

// A layer that lets the context escape, as any real policy (timeout, retry, breaker) does. An
// injector's enabled path takes the context's address, so the context is built in memory even
// when disabled; over a stack of only no-op layers the compiler removes it entirely. Read
// fault_injection_disabled_after_escape against this one for the cost of the flag alone.
struct context_escapes {
  template <class Next>
  auto invoke(stockade::context& ctx, Next&& next) const {
    stockade::context* address = &ctx;
    benchmark::DoNotOptimize(address);
    return next(ctx);
  }
};

void fault_injection_baseline_escape(benchmark::State& state) {
  run_through(state, context_escapes{});
}
BENCHMARK(fault_injection_baseline_escape);

void fault_injection_disabled_after_escape(benchmark::State& state) {
  stockade::fault_injector chaos{{.enabled = false},
                                 stockade::inject_exception{{.probability = 0.1}}};
  run_through(state, context_escapes{}, std::ref(chaos));
}
BENCHMARK(fault_injection_disabled_after_escape);

// The configuration a test suite would leave in place, switched off.
void fault_injection_disabled(benchmark::State& state) {
  stockade::fault_injector chaos{
      {.enabled = false},
      stockade::inject_latency{{.probability = 0.1}, std::chrono::seconds(1)},
      stockade::inject_exception{{.probability = 0.1}}};
  run_through(state, std::ref(chaos));
}
BENCHMARK(fault_injection_disabled);

// No faults in the type: the layer is a direct call, not even the flag is read.
void fault_injection_compiled_out(benchmark::State& state) {
  stockade::fault_injector chaos{{}};
  run_through(state, std::ref(chaos));
}
BENCHMARK(fault_injection_compiled_out);

// Enabled, on a schedule that never comes: the call counter and a modulo.
void fault_injection_enabled_not_due(benchmark::State& state) {
  stockade::fault_injector chaos{{}, stockade::inject_exception{{.every_nth = 1'000'000'000'000}}};
  run_through(state, std::ref(chaos));
}
BENCHMARK(fault_injection_enabled_not_due);

// Enabled with a probability: the counter plus one seeded draw per call (almost never fires).
void fault_injection_enabled_drawing(benchmark::State& state) {
  stockade::fault_injector chaos{{}, stockade::inject_exception{{.probability = 1e-12}}};
  run_through(state, std::ref(chaos));
}
BENCHMARK(fault_injection_enabled_drawing);

}  // namespace
