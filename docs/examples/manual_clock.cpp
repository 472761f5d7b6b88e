// docs/architecture.md: time in tests comes from a manual clock; nothing sleeps for real.
#include <chrono>
#include <cstdio>

#include <stockade/stockade.hpp>

using namespace std::chrono_literals;

int main() {
  stockade::testing::manual_clock clock;  // sleeps advance virtual time at once
  stockade::context ctx{clock};
  ctx.set_timeout(10s);

  const auto start = ctx.now();
  const bool slept_fully = ctx.sleep_for(30s);  // cut at the deadline, 10 s of virtual time
  std::printf("slept fully: %s, virtual time passed: %llds, expired: %s\n",
              slept_fully ? "yes" : "no",
              static_cast<long long>(
                  std::chrono::duration_cast<std::chrono::seconds>(ctx.now() - start).count()),
              ctx.expired() ? "yes" : "no");
  return !slept_fully && ctx.now() - start == 10s && ctx.expired() ? 0 : 1;
}
