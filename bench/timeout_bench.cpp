// What a timeout costs on the real clock: without the stop token (one clock read, a deadline
// scope), with a callee that polls ctx.stop_requested() (nothing armed), with a std::stop_token
// taken by the callee (an allocation and a timer entry on the shared timer thread, cancelled
// when the call returns), nested, and observed. Read against raw_call and
// steady_clock_now from the same run.
#include <benchmark/benchmark.h>

#include <chrono>
#include <stop_token>

#include <stockade/pipeline.hpp>
#include <stockade/timeout.hpp>

#include "common.hpp"

namespace {

using namespace std::chrono_literals;
using stockade_bench::dependency;

// The one clock read a timeout's success path makes.
void steady_clock_now(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(std::chrono::steady_clock::now());
}
BENCHMARK(steady_clock_now);

void timeout_without_stop_token(benchmark::State& state) {
  const auto pipeline = stockade::pipeline{stockade::timeout{1s}};
  int x = 0;
  for (auto _ : state) benchmark::DoNotOptimize(x = pipeline([&] { return dependency(x); }));
}
BENCHMARK(timeout_without_stop_token);

// Two nested timeouts still read the clock once: the inner one uses the cached time.
void timeout_nested_without_stop_token(benchmark::State& state) {
  const auto pipeline = stockade::pipeline{stockade::timeout{8s}, stockade::timeout{2s}};
  int x = 0;
  for (auto _ : state) benchmark::DoNotOptimize(x = pipeline([&] { return dependency(x); }));
}
BENCHMARK(timeout_nested_without_stop_token);

// The callee asks whether to stop (ctx.stop_requested()): nothing is armed; the poll reads the
// coarse clock, and the exact one only within two ticks of the deadline.
void timeout_callee_polls_stop_requested(benchmark::State& state) {
  const auto pipeline = stockade::pipeline{stockade::timeout{1s}};
  int x = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(x = pipeline([&](stockade::context& ctx) {
                               return ctx.stop_requested() ? x : dependency(x);
                             }));
  }
}
BENCHMARK(timeout_callee_polls_stop_requested);

// The callee takes a std::stop_token: the context arms a std::stop_source (its shared state is
// one allocation) and a timer entry.
void timeout_with_stop_token_armed(benchmark::State& state) {
  const auto pipeline = stockade::pipeline{stockade::timeout{1s}};
  int x = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(x = pipeline([&](stockade::context& ctx) {
                               const std::stop_token token = ctx.stop_token();
                               return token.stop_requested() ? x : dependency(x);
                             }));
  }
}
BENCHMARK(timeout_with_stop_token_armed);

// With an observer the success path reads the clock a second time, to report late values.
void timeout_observed_without_stop_token(benchmark::State& state) {
  static stockade::counters counted;
  const auto pipeline = stockade::pipeline{stockade::timeout{1s, stockade::observer_ref{counted}}};
  int x = 0;
  for (auto _ : state) benchmark::DoNotOptimize(x = pipeline([&] { return dependency(x); }));
}
BENCHMARK(timeout_observed_without_stop_token);

}  // namespace
