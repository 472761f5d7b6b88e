// The success path of the whole stack allocates nothing: every operator new in this program is
// counted, and a thousand calls through a warm stack must not add one.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <new>
#include <string>

#include <stockade/manual_runtime.hpp>
#include <stockade/stockade.hpp>
#include <stockade/task.hpp>

namespace {
std::atomic<long> allocations{0};
}  // namespace

// The replaced operators pair malloc with free; g++ cannot see that through inlining.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

void* operator new(std::size_t size) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t size) { return ::operator new(size); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

namespace {

using namespace std::chrono_literals;

struct guards {
  stockade::circuit_breaker<stockade::count_window> breaker{
      {.trip = {.size = 100, .failure_ratio = 0.5, .minimum_calls = 20}}};
  stockade::bulkhead<> slots{{.max_concurrent = 8, .max_queue = 8, .max_wait = 2s}};
  stockade::warmup_gate<> gate{[] {}};
  stockade::health_check<> health{[] { return true; }, {.max_age = 1h}};
};

auto full_stack(guards& g) {
  return stockade::pipeline{
      stockade::timeout{8s},
      stockade::retry{{.max_attempts = 4, .backoff = stockade::exponential{200ms, 2.0, 2s}}},
      std::ref(g.breaker),
      std::ref(g.slots),
      std::ref(g.gate),
      std::ref(g.health),
      stockade::timeout{2s}};
}

long allocations_during(const auto& work) {
  const long before = allocations.load();
  work();
  return allocations.load() - before;
}

TEST(Allocation, CountingWorks) {
  EXPECT_GE(allocations_during([] { delete new std::string(100, 'x'); }), 1);
}

TEST(Allocation, FullStackSuccessPathAllocatesNothing) {
  guards g;
  const auto policy = full_stack(g);
  int sum = 0;
  sum += policy([] { return 1; });  // the first call warms the gate and runs the health probe
  const long during = allocations_during([&] {
    for (int i = 0; i < 1000; ++i) sum += policy([i] { return i; });
  });
  EXPECT_EQ(during, 0);
  EXPECT_EQ(sum, 1 + 999 * 1000 / 2);
}

TEST(Allocation, SuccessPathWithTheCallersContextAllocatesNothing) {
  guards g;
  const auto policy = full_stack(g);
  stockade::context ctx;
  policy(ctx, [](stockade::context&) { return 0; });
  EXPECT_EQ(allocations_during([&] {
              for (int i = 0; i < 1000; ++i) {
                policy(ctx, [](stockade::context& c) { return c.attempt(); });
              }
            }),
            0);
}

TEST(Allocation, AMoveOnlyResultPassesWithoutAllocatingInTheStack) {
  guards g;
  const auto policy = full_stack(g);
  policy([] { return std::unique_ptr<int>(); });
  EXPECT_EQ(allocations_during([&] {
              for (int i = 0; i < 100; ++i) policy([] { return std::unique_ptr<int>(); });
            }),
            0);
}

TEST(Allocation, CoroutineStackAllocatesNothingOnceItsFramesAreRecycled) {
  // Every layer's coroutine frame comes from the thread's frame pool: after a first call has
  // put frames of each size there, a thousand calls through timeout > retry > breaker >
  // bulkhead allocate nothing.
  stockade::testing::manual_clock clock;
  stockade::testing::manual_runtime runtime{clock};
  guards g;
  const auto policy =
      stockade::pipeline{stockade::timeout{8s}, stockade::retry{{.max_attempts = 4}},
                         std::ref(g.breaker), std::ref(g.slots)};
  auto callee = []() -> stockade::task<int> { co_return 1; };
  auto calls = [&](int count) -> stockade::task<int> {
    int sum = 0;
    for (int i = 0; i < count; ++i) sum += co_await policy.async(callee);
    co_return sum;
  };
  // The driver's own frame is made first, so that it takes no block the layers' frames need.
  stockade::task<int> thousand = calls(1000);
  EXPECT_EQ(runtime.run(calls(2)), 2);
  EXPECT_EQ(allocations_during([&] {
              thousand.start_on(runtime).resume();  // nothing waits: it runs to its end here
            }),
            0);
  EXPECT_EQ(thousand.take(), 1000);
}

}  // namespace
