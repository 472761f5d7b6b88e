// What a bulkhead costs when a slot is free (read against raw_call and pipeline_0_layers from
// pipeline_bench.cpp in the same run), and how that path behaves when two threads share it.
// bulkhead_floor_two_atomic_rmw is the least any shared slot counter can cost: one atomic
// read-modify-write to take a slot and one to give it back (each a lock-prefixed instruction,
// a full barrier, on x86); read the bulkhead's figures against it too.
#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdint>
#include <functional>

#include <stockade/bulkhead.hpp>
#include <stockade/pipeline.hpp>

#include "common.hpp"

namespace {

using stockade_bench::dependency;

void bulkhead_floor_two_atomic_rmw(benchmark::State& state) {
  static std::atomic<std::uint64_t> taken{0};
  int x = 0;
  for (auto _ : state) {
    taken.fetch_add(1, std::memory_order_acquire);
    benchmark::DoNotOptimize(x = dependency(x));
    taken.fetch_sub(1, std::memory_order_release);
  }
}
BENCHMARK(bulkhead_floor_two_atomic_rmw);

// The success path through a pipeline: one CAS to take the slot, one atomic decrement to give
// it back. The queue and its mutex are never touched.
void bulkhead_free_slot(benchmark::State& state) {
  static stockade::bulkhead slots{{.max_concurrent = 25}};
  const auto pipeline = stockade::pipeline{std::ref(slots)};
  int x = 0;
  for (auto _ : state) benchmark::DoNotOptimize(x = pipeline([&] { return dependency(x); }));
}
BENCHMARK(bulkhead_free_slot);
// Several threads on one bulkhead (never full): the slot word's cache line moves between cores.
BENCHMARK(bulkhead_free_slot)->Threads(2)->UseRealTime();

// The slot guard alone, without a pipeline or a context.
void bulkhead_try_acquire(benchmark::State& state) {
  static stockade::bulkhead slots{{.max_concurrent = 25}};
  int x = 0;
  for (auto _ : state) {
    const auto held = slots.try_acquire();
    benchmark::DoNotOptimize(x = dependency(x));
  }
}
BENCHMARK(bulkhead_try_acquire);

// A full bulkhead without a queue: the cost of a rejection (an exception thrown and caught).
void bulkhead_rejected_full(benchmark::State& state) {
  static stockade::bulkhead slots{{.max_concurrent = 1}};
  const auto held = slots.try_acquire();
  const auto pipeline = stockade::pipeline{std::ref(slots)};
  int x = 0;
  for (auto _ : state) {
    try {
      benchmark::DoNotOptimize(x = pipeline([&] { return dependency(x); }));
    } catch (const stockade::error&) {
      benchmark::ClobberMemory();
    }
  }
}
BENCHMARK(bulkhead_rejected_full);

}  // namespace
