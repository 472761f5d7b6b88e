// docs/timeout.md's example: an outer timeout for the whole call, an inner one per attempt, a
// callee that stops when its token fires, a late failure reported as a timeout, and a detached
// timeout for a call that cannot be stopped. On the manual clock, so it runs at once.
#include <condition_variable>
#include <cstdio>
#include <latch>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <stop_token>
#include <thread>

#include <stockade/detached_timeout.hpp>
#include <stockade/manual_clock.hpp>
#include <stockade/pipeline.hpp>
#include <stockade/timeout.hpp>

using namespace std::chrono_literals;

#define CHECK(condition)                                             \
  do {                                                               \
    if (!(condition)) throw std::logic_error("failed: " #condition); \
  } while (false)

int main() {
  stockade::testing::manual_clock clock;
  const stockade::time_point start = clock.now();

  // 1. Nested timeouts: the inner one can only shorten the outer deadline.
  const auto policy = stockade::pipeline{stockade::timeout{8s}, stockade::timeout{2s}};
  {
    stockade::context ctx{clock};
    policy(ctx, [&](stockade::context& inner) { CHECK(inner.deadline() == start + 2s); });
  }

  // 2. Cooperative cancellation: a callee that waits on ctx.stop_token() wakes at the deadline.
  {
    std::latch waiting{1};
    std::jthread caller([&] {
      stockade::context ctx{clock};
      try {
        policy(ctx, [&](stockade::context& inner) {
          std::mutex mutex;
          std::condition_variable_any reply_arrived;
          std::unique_lock lock(mutex);
          const std::stop_token token = inner.stop_token();  // armed only because we asked
          waiting.count_down();
          if (!reply_arrived.wait(lock, token, [] { return false; })) {
            throw std::runtime_error("gave up waiting for the reply");
          }
        });
      } catch (const stockade::error& e) {
        // The callee failed at its deadline: the caller sees a transient errc::timeout.
        CHECK(e.code() == stockade::errc::timeout);
        std::puts("cooperative callee stopped at its deadline: timeout");
      }
    });
    waiting.wait();
    clock.advance(2s);  // the deadline: the token fires, the callee stops
  }

  // 3. A deadline already passed fails at once, without running the callee.
  {
    stockade::context ctx{clock};
    ctx.set_deadline(clock.now());
    try {
      policy(ctx, [] { CHECK(false); });
    } catch (const stockade::error& e) {
      CHECK(e.code() == stockade::errc::deadline_already_passed && e.is_rejection());
    }
  }

  // 4. A call that cannot be stopped: run it detached. The caller gets errc::timeout at the
  //    deadline; the call runs on, and the bulkhead-like bound refuses new calls while too many
  //    such calls are still stuck.
  {
    stockade::detached_timeout legacy{1s, {.max_abandoned = 1}};
    auto release = std::make_shared<std::latch>(1);  // owned by the callable: it may outlive us
    stockade::context ctx{clock};
    std::jthread advancer([&] {
      if (clock.await_waiting(1)) clock.advance(1s);
    });
    try {
      stockade::pipeline{stockade::timeout{5s}}(ctx, legacy.bind([release] {
        release->wait();  // a blocking call with no way to cancel it
        return 0;
      }));
    } catch (const stockade::error& e) {
      CHECK(e.code() == stockade::errc::timeout);
      std::printf("detached call abandoned; still running: %zu\n", legacy.abandoned_running());
    }
    release->count_down();  // the stuck call ends on its own; its result is dropped
    CHECK(legacy.await_abandoned_at_most(0, 30s));
  }
  return 0;
}
