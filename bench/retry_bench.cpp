// Retry: the cost on the success path (read against raw_call and pipeline_0_layers from
// pipeline_bench.cpp, same binary, same run) and the cost of one call whose first attempt fails
// and second succeeds, with a zero delay, failing by exception and by returned value.
#include <benchmark/benchmark.h>

#include <stdexcept>

#include <stockade/pipeline.hpp>
#include <stockade/retry.hpp>

#include "common.hpp"

namespace {

using namespace std::chrono_literals;
using stockade_bench::dependency;

void retry_success_path(benchmark::State& state) {
  const auto pipeline = stockade::pipeline{stockade::retry{{.max_attempts = 4}}};
  int x = 0;
  for (auto _ : state) benchmark::DoNotOptimize(x = pipeline([&] { return dependency(x); }));
}
BENCHMARK(retry_success_path);

// The same, with the caller's context reused: no context construction in the loop.
void retry_success_path_own_context(benchmark::State& state) {
  const auto pipeline = stockade::pipeline{stockade::retry{{.max_attempts = 4}}};
  stockade::context ctx;
  int x = 0;
  for (auto _ : state) benchmark::DoNotOptimize(x = pipeline(ctx, [&] { return dependency(x); }));
}
BENCHMARK(retry_success_path_own_context);

void pipeline_0_layers_own_context(benchmark::State& state) {
  const auto pipeline = stockade::pipeline{};
  stockade::context ctx;
  int x = 0;
  for (auto _ : state) benchmark::DoNotOptimize(x = pipeline(ctx, [&] { return dependency(x); }));
}
BENCHMARK(pipeline_0_layers_own_context);

// With a shared gRPC A6 token budget: a success while the bucket is full costs one load.
void retry_success_path_token_budget(benchmark::State& state) {
  static stockade::token_budget budget{{.max_tokens = 10, .token_ratio = 0.1}};
  const auto pipeline = stockade::pipeline{stockade::retry{{.max_attempts = 4}, std::ref(budget)}};
  int x = 0;
  for (auto _ : state) benchmark::DoNotOptimize(x = pipeline([&] { return dependency(x); }));
}
BENCHMARK(retry_success_path_token_budget);

void retry_failed_then_succeeded_by_exception(benchmark::State& state) {
  const auto pipeline =
      stockade::pipeline{stockade::retry{{.max_attempts = 2, .backoff = stockade::constant{0ms}}}};
  int x = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(x = pipeline([&](stockade::context& ctx) {
                               if (ctx.attempt() == 1) throw std::runtime_error("transient");
                               return dependency(x);
                             }));
  }
}
BENCHMARK(retry_failed_then_succeeded_by_exception);

void retry_failed_then_succeeded_by_value(benchmark::State& state) {
  const auto pipeline =
      stockade::pipeline{stockade::retry{{.max_attempts = 2, .backoff = stockade::constant{0ms}}}}
          .classify_with(stockade::classifier{stockade::on_result([](int value) {
            return value < 0 ? stockade::verdict::transient : stockade::verdict::success;
          })});
  int x = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(x = pipeline([&](stockade::context& ctx) {
                               return ctx.attempt() == 1 ? -1 : dependency(x & 0xffff);
                             }));
  }
}
BENCHMARK(retry_failed_then_succeeded_by_value);

}  // namespace
