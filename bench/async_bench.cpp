// The coroutine path's success path: each policy and the 4-layer stack (timeout > retry >
// breaker > bulkhead) awaited from a stockade::task, against a raw co_await of the same task
// from the same driver, in the same run. Nothing waits, so every task runs to its end inside
// the first resume; the driver frame and the callee's frame are in the baseline.
#include <benchmark/benchmark.h>

#include <chrono>
#include <coroutine>
#include <functional>

#include <stockade/bulkhead.hpp>
#include <stockade/circuit_breaker.hpp>
#include <stockade/pipeline.hpp>
#include <stockade/retry.hpp>
#include <stockade/task.hpp>
#include <stockade/timeout.hpp>

#include "common.hpp"

namespace {

using namespace std::chrono_literals;
using stockade::task;
using stockade_bench::dependency;

/// A scheduler nothing is ever posted to: on the success path no policy waits.
struct never_posted final : stockade::scheduler {
  void post(resumption& /*unused*/) noexcept override {}
  stockade::clock& time_source() noexcept override { return stockade::real_clock::instance(); }
};

task<int> dependency_task(int x) { co_return dependency(x); }

/// Runs `driver` to its end (it must not suspend) and returns its value.
int run_inline(task<int> driver) {
  static never_posted nowhere;
  driver.start_on(nowhere).resume();
  return driver.take();
}

void raw_co_await(benchmark::State& state) {
  int x = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(
        x = run_inline([](int& in) -> task<int> { co_return co_await dependency_task(in); }(x)));
  }
}
BENCHMARK(raw_co_await);

template <class Pipeline>
void through(benchmark::State& state, const Pipeline& policy) {
  int x = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(x = run_inline([](const Pipeline& p, int& in) -> task<int> {
                               stockade::context ctx;
                               co_return co_await p.async(ctx, [&] { return dependency_task(in); });
                             }(policy, x)));
  }
}

void async_no_layer(benchmark::State& state) { through(state, stockade::pipeline{}); }
BENCHMARK(async_no_layer);

void async_timeout(benchmark::State& state) {
  through(state, stockade::pipeline{stockade::timeout{1s}});
}
BENCHMARK(async_timeout);

void async_retry(benchmark::State& state) {
  through(state, stockade::pipeline{stockade::retry{{.max_attempts = 3}}});
}
BENCHMARK(async_retry);

void async_breaker(benchmark::State& state) {
  stockade::circuit_breaker<stockade::consecutive_failures> breaker;
  through(state, stockade::pipeline{std::ref(breaker)});
}
BENCHMARK(async_breaker);

void async_bulkhead(benchmark::State& state) {
  stockade::bulkhead<> slots{{.max_concurrent = 64, .max_queue = 64, .max_wait = 2s}};
  through(state, stockade::pipeline{std::ref(slots)});
}
BENCHMARK(async_bulkhead);

void async_four_layers(benchmark::State& state) {
  stockade::circuit_breaker<stockade::consecutive_failures> breaker;
  stockade::bulkhead<> slots{{.max_concurrent = 64, .max_queue = 64, .max_wait = 2s}};
  through(state, stockade::pipeline{stockade::timeout{8s}, stockade::retry{{.max_attempts = 3}},
                                    std::ref(breaker), std::ref(slots)});
}
BENCHMARK(async_four_layers);

}  // namespace
