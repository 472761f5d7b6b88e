// Fuzzes the circuit breaker against a reference model of its state machine. The input picks
// the options (trip strategy, window, permits, success ratio, failure verdicts, open duration)
// and then a sequence of steps: start a call on one of several threads, let a call's callee
// end with some outcome, move time, isolate / disable / reset. Calls are held in flight on
// threads of their own, so admissions and completions interleave in any order the input says.
// After every step the breaker's answers, state, metrics and reported transitions must equal the
// model's.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <utility>
#include <vector>

#include <stockade/circuit_breaker.hpp>
#include <stockade/classifier.hpp>
#include <stockade/pipeline.hpp>
#include <stockade/trip_strategy.hpp>

#include "breaker_calls.hpp"
#include "harness.hpp"

namespace {

using namespace std::chrono_literals;
using stockade::circuit_state;
using stockade::duration;
using stockade::errc;
using stockade::time_point;
using stockade::verdict;
using stockade_fuzz::ending;
using stockade_fuzz::expect_equal;
using stockade_fuzz::held_call;
using stockade_fuzz::release;

constexpr std::size_t call_count = 5;

/// The transitions a breaker reported, in order.
struct transition_log {
  std::mutex mutex;
  std::vector<std::pair<circuit_state, circuit_state>> seen;
};

struct log_transitions {
  transition_log* log;
  template <stockade::event E>
  void on(const E& e) const {
    if constexpr (std::is_same_v<E, stockade::breaker_state_changed>) {
      std::lock_guard lock(log->mutex);
      log->seen.emplace_back(e.from, e.to);
    }
  }
};

// --- the model -------------------------------------------------------------------------------

enum class tally { succeeded, failed, ignored };

/// What the trip strategy decides, written plainly: the last `size` outcomes, or a streak.
struct window_model {
  bool consecutive = false;
  std::size_t threshold = 0;  // consecutive
  std::size_t size = 0;       // count window
  std::size_t minimum_calls = 0;
  double failure_ratio = 1.0;
  std::deque<bool> outcomes;  // count window: true = failed
  std::size_t streak = 0;     // consecutive

  /// Records a counted call; true if it says "open now".
  bool record(bool failed) {
    if (consecutive) {
      if (!failed) {
        streak = 0;
        return false;
      }
      return ++streak >= threshold;
    }
    outcomes.push_back(failed);
    if (outcomes.size() > size) outcomes.pop_front();
    if (!failed) return false;
    const auto failures =
        static_cast<std::uint64_t>(std::count(outcomes.begin(), outcomes.end(), true));
    return outcomes.size() >= minimum_calls &&
           stockade::detail::ratio_reached(failures, outcomes.size(), failure_ratio);
  }
  void clear() {
    outcomes.clear();
    streak = 0;
  }
  stockade::window_counts counts() const {
    if (consecutive) return {streak, streak, 0};
    const auto failures =
        static_cast<std::uint64_t>(std::count(outcomes.begin(), outcomes.end(), true));
    return {outcomes.size(), failures, 0};
  }
};

struct breaker_model {
  struct admission {
    bool admitted = false;
    bool trial = false;
    std::uint64_t epoch = 0;
    ending refusal{};
  };

  window_model window;
  std::size_t permits = 1;
  std::size_t trials_needed = 1;
  stockade::verdict_set failure_verdicts;
  stockade::backoff_schedule open_for;

  circuit_state state = circuit_state::closed;
  std::uint64_t epoch = 0;
  time_point open_until{};
  std::size_t admitted = 0;
  std::size_t successes = 0;
  std::size_t failures = 0;
  std::size_t in_flight = 0;
  std::size_t failed_half_opens = 0;
  // What a half-open refusal hints (the calls here have no deadline): as long again as the
  // round's trials have run (since admitted last went from 0 to 1; at least 1 ms), at most the
  // open duration that preceded the round, which is all it is while no trial has started.
  duration last_open_for{0};
  time_point round_started{};
  std::uint64_t rejections = 0;
  std::uint64_t times_opened = 0;
  std::vector<std::pair<circuit_state, circuit_state>> transitions;

  circuit_state observed(time_point now) const {
    return state == circuit_state::open && now >= open_until ? circuit_state::half_open : state;
  }

  tally judge(release how) const {
    switch (how) {
      case release::success:
        return tally::succeeded;
      case release::transient:
        return failure_verdicts.contains(verdict::transient) ? tally::failed : tally::ignored;
      case release::fatal:
        return failure_verdicts.contains(verdict::fatal) ? tally::failed : tally::ignored;
      default:
        return tally::ignored;  // permanent, or another policy's rejection
    }
  }

  admission admit(time_point now) {
    for (;;) {
      switch (state) {
        case circuit_state::closed:
        case circuit_state::disabled:
          return {true, false, epoch};
        case circuit_state::isolated:
          return refuse(errc::circuit_isolated, duration::zero());
        case circuit_state::open:
          if (now < open_until) return refuse(errc::circuit_open, open_until - now);
          move(circuit_state::half_open, now, duration::zero());
          break;
        case circuit_state::half_open:
          if (admitted < permits && in_flight < permits) {
            if (admitted++ == 0) round_started = now;
            ++in_flight;
            return {true, true, epoch};
          }
          return refuse(errc::circuit_open, half_open_hint(now));
      }
    }
  }

  void finish(const admission& call, release how, time_point now) {
    const tally result = judge(how);
    if (call.trial) {
      --in_flight;
      if (call.epoch != epoch) return;
      if (result == tally::ignored) --admitted;
      if (result == tally::succeeded) ++successes;
      if (result == tally::failed) ++failures;
      if (failures > permits - trials_needed) {
        ++failed_half_opens;
        move(circuit_state::open, now, next_open_duration());
      } else if (successes >= trials_needed) {
        close(now);
      }
      return;
    }
    if (result == tally::ignored || call.epoch != epoch) return;
    if (window.record(result == tally::failed) && state == circuit_state::closed) {
      failed_half_opens = 0;
      move(circuit_state::open, now, next_open_duration());
    }
  }

  void isolate(time_point now) {
    if (state != circuit_state::isolated) move(circuit_state::isolated, now, duration::zero());
  }
  void disable(time_point now) {
    if (state != circuit_state::disabled) move(circuit_state::disabled, now, duration::zero());
  }
  void close(time_point now) {
    last_open_for = duration::zero();
    window.clear();
    failed_half_opens = 0;
    if (state != circuit_state::closed) move(circuit_state::closed, now, duration::zero());
  }

 private:
  duration half_open_hint(time_point now) const {
    duration wait = std::max(now > round_started ? now - round_started : duration::zero(),
                             duration{std::chrono::milliseconds(1)});
    if (last_open_for > duration::zero()) wait = std::min(wait, last_open_for);
    return wait;
  }

  admission refuse(errc code, duration retry_after) {
    ++rejections;
    return {false, false, epoch, {ending::kind::stockade_error, code, retry_after}};
  }

  duration next_open_duration() const {
    const int number = static_cast<int>(failed_half_opens) + 1;
    return std::clamp(open_for.delay(number), duration::zero(), open_for.max_delay());
  }

  void move(circuit_state to, time_point now, duration open_duration) {
    transitions.emplace_back(state, to);
    if (to == circuit_state::open) {
      open_until = now + open_duration;
      last_open_for = open_duration;
      ++times_opened;
    }
    admitted = successes = failures = 0;
    round_started = time_point{};
    ++epoch;
    state = to;
  }
};

// --- the harness -----------------------------------------------------------------------------

std::vector<held_call>& threads() {
  static std::vector<held_call> calls(call_count);
  return calls;
}

template <class Trip>
void run(FuzzedDataProvider& in, typename Trip::options trip, window_model window) {
  stockade::circuit_breaker_options<Trip> options{.trip = trip};
  options.half_open_permits = in.ConsumeIntegralInRange<std::size_t>(1, 3);
  constexpr std::array ratios{1.0, 0.5, 0.34, 0.67};
  options.half_open_success_ratio = ratios[in.ConsumeIntegralInRange<std::size_t>(0, 3)];
  switch (in.ConsumeIntegralInRange(0, 2)) {
    case 0:
      options.failure_verdicts = {verdict::transient, verdict::fatal};
      break;
    case 1:
      options.failure_verdicts = {verdict::transient};
      break;
    default:
      options.failure_verdicts = {verdict::fatal};
  }
  const duration base = 100ms * in.ConsumeIntegralInRange(1, 5);
  switch (in.ConsumeIntegralInRange(0, 2)) {
    case 0:
      options.open_for = stockade::constant{base};
      break;
    case 1:
      options.open_for = stockade::linear{base, 100ms, 700ms};
      break;
    default:
      options.open_for = stockade::exponential{base, 2.0, 1s};
  }

  stockade::testing::manual_clock clock;
  transition_log log;
  stockade::circuit_breaker<Trip, log_transitions> breaker{options, clock, log_transitions{&log}};
  const auto policy =
      stockade::pipeline{std::ref(breaker)}.classify_with(stockade_fuzz::breaker_classifier());

  breaker_model model;
  model.window = window;
  model.permits = options.half_open_permits;
  model.trials_needed = static_cast<std::size_t>(stockade::detail::count_for_ratio(
      options.half_open_permits, options.half_open_success_ratio));
  model.failure_verdicts = options.failure_verdicts;
  model.open_for = options.open_for;

  stockade_fuzz::held_breaker_calls calls(threads(), model, policy, clock);

  const auto compare = [&](int step) {
    calls.check_endings(step);
    const time_point now = clock.now();
    expect_equal(breaker.state(), model.observed(now), "state", step);
    const auto metrics = breaker.metrics();
    expect_equal(metrics.state, model.observed(now), "metrics.state", step);
    expect_equal(metrics.window.calls, model.window.counts().calls, "window calls", step);
    expect_equal(metrics.window.failures, model.window.counts().failures, "window failures", step);
    expect_equal(metrics.rejections, model.rejections, "rejections", step);
    expect_equal(metrics.times_opened, model.times_opened, "times opened", step);
    expect_equal(metrics.trials_in_flight, model.in_flight, "trials in flight", step);
    expect_equal(metrics.failed_half_opens, model.failed_half_opens, "failed half-opens", step);
    const duration remaining =
        model.state == stockade::circuit_state::open && now < model.open_until
            ? model.open_until - now
            : duration::zero();
    expect_equal(metrics.open_remaining, remaining, "open remaining", step);
    std::lock_guard lock(log.mutex);
    expect_equal(log.seen.size(), model.transitions.size(), "transitions reported", step);
    for (std::size_t i = 0; i < log.seen.size(); ++i) {
      expect_equal(log.seen[i].first, model.transitions[i].first, "transition from", step);
      expect_equal(log.seen[i].second, model.transitions[i].second, "transition to", step);
    }
  };

  for (int step = 0; step < 300 && in.remaining_bytes() > 0; ++step) {
    const std::size_t slot = in.ConsumeIntegralInRange<std::size_t>(0, call_count - 1);
    switch (in.ConsumeIntegralInRange(0, 7)) {
      case 0:
      case 1:
      case 2:  // a call arrives (or, if this thread is busy, its callee ends)
        if (calls.current(slot) == held_call::phase::idle) {
          calls.start(slot);
          break;
        }
        [[fallthrough]];
      case 3:
      case 4:  // a callee ends
        if (calls.current(slot) == held_call::phase::in_callee) {
          calls.finish(slot, static_cast<release>(in.ConsumeIntegralInRange(0, 4)));
        }
        break;
      case 5:  // time passes
        clock.advance(50ms * in.ConsumeIntegralInRange(0, 20));
        stockade_fuzz::trace("advance to", (clock.now() - time_point{}).count());
        break;
      case 6:  // the operator steps in
        switch (in.ConsumeIntegralInRange(0, 3)) {
          case 0:
            stockade_fuzz::trace("isolate");
            breaker.isolate();
            model.isolate(clock.now());
            break;
          case 1:
            stockade_fuzz::trace("disable");
            breaker.disable();
            model.disable(clock.now());
            break;
          default:
            stockade_fuzz::trace("reset");
            breaker.reset();
            model.close(clock.now());
        }
        break;
      default:
        break;  // just look
    }
    compare(step);
  }
  // Every call still in flight ends, one at a time (the count window is exact only for calls
  // that do not finish at the same instant); then no trial may still hold a permit.
  calls.finish_all(compare);
  expect_equal(breaker.metrics().trials_in_flight, std::size_t{0}, "permits left held", -1);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  window_model window;
  if (in.ConsumeBool()) {
    window.consecutive = true;
    window.threshold = in.ConsumeIntegralInRange<std::size_t>(1, 4);
    run<stockade::consecutive_failures>(in, {.threshold = window.threshold}, window);
  } else {
    constexpr std::array ratios{0.2, 0.5, 0.75, 1.0};
    window.size = in.ConsumeIntegralInRange<std::size_t>(1, 8);
    window.minimum_calls = in.ConsumeIntegralInRange<std::size_t>(1, window.size);
    window.failure_ratio = ratios[in.ConsumeIntegralInRange<std::size_t>(0, 3)];
    run<stockade::count_window>(in,
                                {.size = window.size,
                                 .failure_ratio = window.failure_ratio,
                                 .minimum_calls = window.minimum_calls},
                                window);
  }
  return 0;
}
