// Failure paths against the loop a user would write by hand instead, measured in the same run:
// a callee that fails every attempt, through retry (3 attempts, no delay) and a breaker that
// never trips, with the failure thrown, then returned as a value. Also a rejection by an open
// breaker through a timeout and a retry. Read each pair as a ratio (docs/performance.md).
#include <benchmark/benchmark.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <optional>
#include <stdexcept>

#include <stockade/stockade.hpp>

#include "common.hpp"

namespace {

using namespace std::chrono_literals;
using stockade_bench::dependency;

constexpr int attempts = 3;

[[gnu::noinline]] int failing_dependency(int x) {
  if (dependency(x) != 0) throw std::runtime_error("down");
  return x;
}

// An expected-like result: has_value() and error(), like std::expected (C++23).
struct reply {
  std::optional<int> value;
  int code = 0;
  bool has_value() const { return value.has_value(); }
  int error() const { return code; }
};

[[gnu::noinline]] reply failing_reply(int x) { return {std::nullopt, dependency(x)}; }

auto retry_then_breaker(stockade::circuit_breaker<stockade::consecutive_failures>& breaker) {
  return stockade::pipeline{stockade::retry{{.max_attempts = attempts,
                                             .backoff = stockade::constant{0s},
                                             .jitter = stockade::jitter::none()}},
                            std::ref(breaker)};
}

stockade::circuit_breaker<stockade::consecutive_failures>::options_type never_trips() {
  return {.trip = {.threshold = std::size_t{1} << 40}};
}

void failure_thrown_through_retry_and_breaker(benchmark::State& state) {
  stockade::circuit_breaker<stockade::consecutive_failures> breaker{never_trips()};
  const auto pipeline = retry_then_breaker(breaker);
  int x = 0;
  for (auto _ : state) {
    try {
      pipeline([&] { return failing_dependency(x); });
    } catch (const std::runtime_error&) {
      ++x;
    }
  }
  benchmark::DoNotOptimize(x);
}
BENCHMARK(failure_thrown_through_retry_and_breaker);

// What a user writes instead: catch, count the failure for a breaker, try again, rethrow the
// last one.
void failure_thrown_by_hand(benchmark::State& state) {
  std::atomic<std::size_t> failures{0};
  int x = 0;
  const auto call = [&] {
    for (int attempt = 1;; ++attempt) {
      try {
        return failing_dependency(x);
      } catch (const std::runtime_error&) {
        failures.fetch_add(1, std::memory_order_relaxed);
        if (attempt == attempts) throw;
      }
    }
  };
  for (auto _ : state) {
    try {
      call();
    } catch (const std::runtime_error&) {
      ++x;
    }
  }
  benchmark::DoNotOptimize(x);
}
BENCHMARK(failure_thrown_by_hand);

void failure_returned_through_retry_and_breaker(benchmark::State& state) {
  stockade::circuit_breaker<stockade::consecutive_failures> breaker{never_trips()};
  const auto pipeline = retry_then_breaker(breaker);
  int x = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(x += pipeline([&] { return failing_reply(x); }).code);
  }
}
BENCHMARK(failure_returned_through_retry_and_breaker);

// What a user writes instead: a loop over returned codes.
void failure_returned_by_hand(benchmark::State& state) {
  std::atomic<std::size_t> failures{0};
  int x = 0;
  const auto call = [&] {
    for (int attempt = 1;; ++attempt) {
      reply got = failing_reply(x);
      if (got.has_value()) return got;
      failures.fetch_add(1, std::memory_order_relaxed);
      if (attempt == attempts) return got;
    }
  };
  for (auto _ : state) benchmark::DoNotOptimize(x += call().code);
}
BENCHMARK(failure_returned_by_hand);

// An open breaker refuses through an 8 s timeout and a retry: the retry gives up at once (the
// breaker's hint reaches past the deadline), so the cost is that of the refusal itself.
using breaker_type = stockade::circuit_breaker<stockade::consecutive_failures>;

/// A breaker that one failure opens for an hour.
breaker_type::options_type opens_for_an_hour() {
  return {.trip = {.threshold = 1}, .open_for = stockade::constant{std::chrono::hours(1)}};
}
void trip(breaker_type& breaker) {
  (void)stockade::pipeline{std::ref(breaker)}.try_call([] { return failing_dependency(1); });
}

/// Calls through `pipeline` with try_call, counting the refusals.
template <class Pipeline>
void refusals_through_try_call(benchmark::State& state, const Pipeline& pipeline) {
  int x = 0;
  for (auto _ : state) {
    const auto refused = pipeline.try_call([&] { return dependency(x); });
    x += refused.has_value() ? 0 : 1;
  }
  benchmark::DoNotOptimize(x);
}

void rejection_open_breaker_through_timeout_and_retry(benchmark::State& state) {
  breaker_type breaker{opens_for_an_hour()};
  trip(breaker);
  const auto pipeline =
      stockade::pipeline{stockade::timeout{8s}, stockade::retry{}, std::ref(breaker)};
  int x = 0;
  for (auto _ : state) {
    try {
      pipeline([&] { return dependency(x); });
    } catch (const stockade::error&) {
      ++x;
    }
  }
  benchmark::DoNotOptimize(x);
}
BENCHMARK(rejection_open_breaker_through_timeout_and_retry);

// The same refusal through try_call, which throws nothing: the rejection comes back as a value.
void rejection_open_breaker_through_timeout_and_retry_try_call(benchmark::State& state) {
  breaker_type breaker{opens_for_an_hour()};
  trip(breaker);
  refusals_through_try_call(
      state, stockade::pipeline{stockade::timeout{8s}, stockade::retry{}, std::ref(breaker)});
}
BENCHMARK(rejection_open_breaker_through_timeout_and_retry_try_call);

// The refusal alone: an open breaker and nothing else, through try_call.
void rejection_open_breaker_alone_try_call(benchmark::State& state) {
  breaker_type breaker{opens_for_an_hour()};
  trip(breaker);
  refusals_through_try_call(state, stockade::pipeline{std::ref(breaker)});
}
BENCHMARK(rejection_open_breaker_alone_try_call);

}  // namespace
