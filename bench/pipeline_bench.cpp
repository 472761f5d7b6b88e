// The raw call every other figure is read against, and pipelines of no-op layers.
#include <benchmark/benchmark.h>

#include <stockade/pipeline.hpp>

#include "common.hpp"

namespace {

using stockade::pass_through;
using stockade_bench::dependency;

void raw_call(benchmark::State& state) {
  int x = 0;
  for (auto _ : state) benchmark::DoNotOptimize(x = dependency(x));
}
BENCHMARK(raw_call);

template <class Pipeline>
void run_through(benchmark::State& state, const Pipeline& pipeline) {
  int x = 0;
  for (auto _ : state) benchmark::DoNotOptimize(x = pipeline([&] { return dependency(x); }));
}

void pipeline_0_layers(benchmark::State& state) { run_through(state, stockade::pipeline{}); }
BENCHMARK(pipeline_0_layers);

void pipeline_1_layer(benchmark::State& state) {
  run_through(state, stockade::pipeline{pass_through{}});
}
BENCHMARK(pipeline_1_layer);

void pipeline_2_layers(benchmark::State& state) {
  run_through(state, stockade::pipeline{pass_through{}, pass_through{}});
}
BENCHMARK(pipeline_2_layers);

void pipeline_5_layers(benchmark::State& state) {
  run_through(state, stockade::pipeline{pass_through{}, pass_through{}, pass_through{},
                                        pass_through{}, pass_through{}});
}
BENCHMARK(pipeline_5_layers);

void pipeline_10_layers(benchmark::State& state) {
  run_through(state,
              stockade::pipeline{pass_through{}, pass_through{}, pass_through{}, pass_through{},
                                 pass_through{}, pass_through{}, pass_through{}, pass_through{},
                                 pass_through{}, pass_through{}});
}
BENCHMARK(pipeline_10_layers);

}  // namespace
