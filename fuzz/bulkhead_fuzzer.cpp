// Fuzzes the bulkhead against a reference model: slots, a first-in-first-out queue of waiters,
// hand-over of a released slot to the oldest waiter, and waiters leaving at max_wait, at their
// deadline or when their stop token fires. The input picks the sizes and then a sequence of
// steps: a call arrives (with or without a deadline or a stop token) on one of several threads,
// a callee ends (returning or throwing), time passes, a caller cancels, the harness takes or
// gives back a slot of its own. After every step each call must be where the model puts it (in
// its callee, queued, or ended with the model's error) and the metrics must agree.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <vector>

#include <stockade/bulkhead.hpp>
#include <stockade/events.hpp>
#include <stockade/pipeline.hpp>

#include "harness.hpp"

namespace {

using namespace std::chrono_literals;
using stockade::duration;
using stockade::errc;
using stockade::time_point;
using stockade_fuzz::ending;
using stockade_fuzz::expect_equal;
using stockade_fuzz::held_call;
using stockade_fuzz::release;

constexpr std::size_t call_count = 6;

/// The bulkhead, written plainly: a count of slots taken and a list of waiters.
struct bulkhead_model {
  enum class arrival { entered, queued, full, wait_exceeded, cancelled };
  struct waiter {
    std::size_t call;
    time_point until;
  };

  std::size_t max_concurrent = 1;
  std::size_t max_queue = 0;
  duration max_wait{};
  std::size_t taken = 0;
  std::deque<waiter> queue;
  std::uint64_t rejected = 0;
  std::size_t peak = 0;

  arrival arrive(std::size_t call, time_point now, std::optional<time_point> deadline,
                 bool cancelled_already) {
    if (queue.empty() && taken < max_concurrent) {
      take();
      return arrival::entered;
    }
    if (max_queue == 0) return refuse(arrival::full);
    if (deadline && now >= *deadline) return refuse(arrival::wait_exceeded);
    if (queue.size() >= max_queue) return refuse(arrival::full);
    if (cancelled_already) return refuse(arrival::cancelled);  // queues, and leaves at once
    const time_point by_max_wait = stockade::context::saturating_add(now, max_wait);
    queue.push_back({call, deadline ? std::min(by_max_wait, *deadline) : by_max_wait});
    return arrival::queued;
  }

  /// A slot is given back; returns the waiter it was handed to, if any.
  std::optional<std::size_t> give_back() {
    --taken;
    if (queue.empty()) return std::nullopt;
    const std::size_t next = queue.front().call;
    queue.pop_front();
    take();
    return next;
  }

  /// Waiters whose time ran out at `now`, in any order: they leave the queue, refused.
  std::vector<std::size_t> expire(time_point now) {
    std::vector<std::size_t> gone;
    for (auto it = queue.begin(); it != queue.end();) {
      if (it->until <= now) {
        gone.push_back(it->call);
        it = queue.erase(it);
        ++rejected;
      } else {
        ++it;
      }
    }
    return gone;
  }

  bool cancel(std::size_t call) {
    const auto found =
        std::find_if(queue.begin(), queue.end(), [&](const waiter& w) { return w.call == call; });
    if (found == queue.end()) return false;
    queue.erase(found);
    ++rejected;
    return true;
  }

  bool try_take() {
    if (!queue.empty() || taken >= max_concurrent) return false;
    take();
    return true;
  }

 private:
  void take() { peak = std::max(peak, ++taken); }
  arrival refuse(arrival why) {
    ++rejected;
    return why;
  }
};

struct count_rejections {
  std::atomic<std::uint64_t>* count;  // waiters that time out together report at once
  template <stockade::event E>
  void on(const E& /*unused*/) const {
    if constexpr (std::is_same_v<E, stockade::bulkhead_rejected>) count->fetch_add(1);
  }
};

std::vector<held_call>& threads() {
  static std::vector<held_call> calls(call_count);
  return calls;
}

void run(FuzzedDataProvider& in) {
  stockade::bulkhead_options options;
  options.max_concurrent = in.ConsumeIntegralInRange<std::size_t>(1, 3);
  options.max_queue = in.ConsumeIntegralInRange<std::size_t>(0, 3);
  if (options.max_queue > 0) {
    options.max_wait = in.ConsumeBool() ? duration::max() : 10ms * in.ConsumeIntegralInRange(1, 30);
  }

  stockade::testing::manual_clock clock;
  std::atomic<std::uint64_t> rejection_events{0};
  stockade::bulkhead<count_rejections> bulkhead{options, count_rejections{&rejection_events}};
  const auto policy = stockade::pipeline{std::ref(bulkhead)};

  stockade_fuzz::trace("bulkhead", options.max_concurrent, options.max_queue,
                       options.max_wait.count());
  bulkhead_model model;
  model.max_concurrent = options.max_concurrent;
  model.max_queue = options.max_queue;
  model.max_wait = options.max_wait;

  std::vector<held_call>& calls = threads();
  std::vector<held_call::phase> expected(call_count, held_call::phase::idle);
  std::array<ending, call_count> expected_endings{};
  std::array<std::stop_source, call_count> cancellers;
  std::array<bool, call_count> carries_token{};
  std::vector<stockade::bulkhead<count_rejections>::slot> held_by_harness;

  const auto refusal = [](bulkhead_model::arrival why) -> ending {
    switch (why) {
      case bulkhead_model::arrival::full:
        return {ending::kind::stockade_error, errc::bulkhead_full};
      case bulkhead_model::arrival::wait_exceeded:
        return {ending::kind::stockade_error, errc::bulkhead_wait_exceeded};
      default:
        return {ending::kind::stockade_error, errc::cancelled};
    }
  };
  const auto enter = [&](std::size_t call) { expected[call] = held_call::phase::in_callee; };
  const auto hand_over = [&](std::optional<std::size_t> next) {
    if (next) enter(*next);
  };

  const auto start = [&](std::size_t call, std::optional<duration> timeout, bool stoppable,
                         bool cancelled_already) {
    cancellers[call] = std::stop_source{};
    carries_token[call] = stoppable || cancelled_already;
    if (cancelled_already) cancellers[call].request_stop();
    const time_point now = clock.now();
    const std::optional<time_point> deadline =
        timeout ? std::optional<time_point>(now + *timeout) : std::nullopt;
    const auto why = model.arrive(call, now, deadline, cancelled_already);
    stockade_fuzz::trace("arrive", call, "timeout", timeout ? timeout->count() : -1, "stoppable",
                         stoppable, "cancelled", cancelled_already, "->", why);
    switch (why) {
      case bulkhead_model::arrival::entered:
        enter(call);
        break;
      case bulkhead_model::arrival::queued:
        expected[call] = held_call::phase::running;
        break;
      default:
        expected[call] = held_call::phase::done;
        expected_endings[call] = refusal(why);
    }
    const std::stop_token token =
        stoppable || cancelled_already ? cancellers[call].get_token() : std::stop_token{};
    calls[call].start([&policy, &clock, timeout, token](held_call& self) {
      stockade::context ctx{clock};
      if (timeout) ctx.set_timeout(*timeout);
      ctx.set_stop_token(token);
      return stockade_fuzz::ending_of([&] {
        policy(ctx, [&self] {
          if (self.wait_in_callee() != release::success) throw std::runtime_error("failed");
        });
      });
    });
  };

  const auto compare = [&](int step) {
    stockade_fuzz::settle(calls, expected, clock, model.queue.size(), step);
    for (std::size_t call = 0; call < call_count; ++call) {
      if (expected[call] != held_call::phase::done) continue;
      const ending got = calls[call].collect();
      if (!(got == expected_endings[call])) {
        stockade_fuzz::fail(
            "call " + std::to_string(call) + " ended " + stockade_fuzz::describe(got) + ", model " +
            stockade_fuzz::describe(expected_endings[call]) + " at step " + std::to_string(step));
      }
      expected[call] = held_call::phase::idle;
    }
    const auto metrics = bulkhead.metrics();
    expect_equal(metrics.in_flight, model.taken, "in flight", step);
    expect_equal(metrics.queued, model.queue.size(), "queued", step);
    expect_equal(metrics.rejected, model.rejected, "rejected", step);
    expect_equal(metrics.peak_in_flight, model.peak, "peak in flight", step);
    expect_equal(rejection_events.load(), model.rejected, "rejection events", step);
  };

  for (int step = 0; step < 300 && in.remaining_bytes() > 0; ++step) {
    const std::size_t call = in.ConsumeIntegralInRange<std::size_t>(0, call_count - 1);
    switch (in.ConsumeIntegralInRange(0, 9)) {
      case 0:
      case 1:
      case 2: {  // a call arrives
        if (calls[call].current() != held_call::phase::idle) break;
        std::optional<duration> timeout;
        if (in.ConsumeBool()) timeout = 10ms * in.ConsumeIntegralInRange(0, 40);
        const bool stoppable = in.ConsumeBool();
        start(call, timeout, stoppable, stoppable && in.ConsumeIntegralInRange(0, 7) == 0);
        break;
      }
      case 3:
      case 4: {  // a callee ends, returning or throwing: either way its slot comes back
        if (calls[call].current() != held_call::phase::in_callee) break;
        const release how = in.ConsumeBool() ? release::success : release::transient;
        stockade_fuzz::trace("finish", call, how);
        expected[call] = held_call::phase::done;
        expected_endings[call] = how == release::success ? ending{ending::kind::value}
                                                         : ending{ending::kind::callee_exception};
        hand_over(model.give_back());
        calls[call].let_go(how);
        break;
      }
      case 5: {  // time passes
        clock.advance(10ms * in.ConsumeIntegralInRange(0, 30));
        stockade_fuzz::trace("advance to", (clock.now() - stockade::time_point{}).count());
        for (const std::size_t gone : model.expire(clock.now())) {
          expected[gone] = held_call::phase::done;
          expected_endings[gone] = {ending::kind::stockade_error, errc::bulkhead_wait_exceeded};
        }
        break;
      }
      case 6:  // a caller cancels
        if (calls[call].current() == held_call::phase::idle) break;
        stockade_fuzz::trace("cancel", call);
        if (carries_token[call] && model.cancel(call)) {
          expected[call] = held_call::phase::done;
          expected_endings[call] = {ending::kind::stockade_error, errc::cancelled};
        }
        cancellers[call].request_stop();
        break;
      case 7: {  // the harness takes a slot of its own, if one is free and nobody waits
        const bool model_takes = model.try_take();
        auto taken = bulkhead.try_acquire();
        expect_equal(taken.has_value(), model_takes, "try_acquire", step);
        if (taken) held_by_harness.push_back(std::move(*taken));
        break;
      }
      case 8:  // ... and gives one back
        if (held_by_harness.empty()) break;
        hand_over(model.give_back());
        held_by_harness.pop_back();
        break;
      default:
        break;  // just look
    }
    compare(step);
  }

  // Drain: give back every slot, let every callee end; queued calls get slots as they free up.
  while (!held_by_harness.empty()) {
    hand_over(model.give_back());
    held_by_harness.pop_back();
    compare(-1);
  }
  for (bool any = true; any;) {
    any = false;
    for (std::size_t call = 0; call < call_count; ++call) {
      if (expected[call] != held_call::phase::in_callee) continue;
      any = true;
      expected[call] = held_call::phase::done;
      expected_endings[call] = {ending::kind::value};
      hand_over(model.give_back());
      calls[call].let_go(release::success);
      compare(-1);
    }
  }
  expect_equal(bulkhead.metrics().in_flight, std::size_t{0}, "slots left taken", -1);
  expect_equal(bulkhead.metrics().queued, std::size_t{0}, "callers left queued", -1);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  run(in);
  return 0;
}
