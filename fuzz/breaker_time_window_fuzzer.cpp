// Fuzzes the circuit breaker with time_window and slow_calls<time_window> against a model that
// keeps a plain list of counted calls, each stamped with the slice of time it ended in. Steps
// start and end calls, move the clock (also onto slice boundaries) and isolate / disable / reset;
// after each step the answers, state, window counts, rejections and transitions must match.
//
// Mistakes planted in the model, to check that the fuzzer finds them (fuzz/check_mistakes.sh
// builds one fuzzer per mistake and expects each to report a mismatch). Built with
// -DSTOCKADE_FUZZ_MISTAKE=N; the default, 0, plants none.
//   1  the window one slice long: only the slice holding `at` counts
//   2  "slow" as at-least: a call exactly at slow_call_duration is slow
//   3  a ratio as strictly-above: count / total > ratio instead of >=
//   4  a call in the wrong slice: one ending on a slice boundary counts in the slice before
//   5  a call counted at its start time, not at the time it ended
//   6  wrong growth of the open time: a failed half-open reopens for as long as the last open
//   7  no epoch check: a call admitted before a transition still counts
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string>
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
using stockade::window_counts;
using stockade_fuzz::ending;
using stockade_fuzz::expect_equal;
using stockade_fuzz::held_call;
using stockade_fuzz::release;

constexpr std::size_t call_count = 5;

#ifndef STOCKADE_FUZZ_MISTAKE
#define STOCKADE_FUZZ_MISTAKE 0
#endif
/// Which mistake (see the table above) the model makes; 0: none.
constexpr int planted_mistake = STOCKADE_FUZZ_MISTAKE;
static_assert(planted_mistake >= 0 && planted_mistake <= 7, "STOCKADE_FUZZ_MISTAKE is 0 to 7");

// --- the observer of transitions ----------------------------------------------------------------

std::string text(const window_counts& window) {
  return std::to_string(window.calls) + " calls, " + std::to_string(window.failures) + " failed, " +
         std::to_string(window.slow_calls) + " slow";
}

/// One reported change of state, with what the event says about the window and the open time.
std::string transition(circuit_state from, circuit_state to, duration open_for,
                       const window_counts& window) {
  return std::string(stockade::to_string(from)) + " -> " + stockade::to_string(to) + " for " +
         std::to_string(open_for.count()) + "ns, window " + text(window);
}

struct transition_log {
  std::mutex mutex;
  std::vector<std::string> seen;
};

struct log_transitions {
  transition_log* log;
  template <stockade::event E>
  void on(const E& e) const {
    if constexpr (std::is_same_v<E, stockade::breaker_state_changed>) {
      std::lock_guard lock(log->mutex);
      log->seen.push_back(transition(e.from, e.to, e.open_for, e.window));
    }
  }
};

// --- the model -------------------------------------------------------------------------------

/// A ratio as an exact fraction, so the model's "reached" is count / total >= num / den.
struct fraction {
  std::uint64_t num = 1;
  std::uint64_t den = 1;
  double value() const { return static_cast<double>(num) / static_cast<double>(den); }
  bool reached(std::uint64_t count, std::uint64_t total) const {
    if constexpr (planted_mistake == 3) {
      return total > 0 && count * den > num * total;  // mistake 3: a ratio as strictly-above
    } else {
      return total > 0 && count * den >= num * total;
    }
  }
};

constexpr std::array<fraction, 5> trip_ratios{{{1, 5}, {1, 3}, {1, 2}, {3, 4}, {1, 1}}};
constexpr std::array<fraction, 4> success_ratios{{{1, 1}, {1, 2}, {1, 3}, {2, 3}}};

/// The window as documented: time is cut into slices of length / buckets (rounded down) since
/// the clock's epoch; a call counts in the slice it ended in, and the window at `at` is the
/// slice holding `at` and the buckets - 1 before it.
struct window_model {
  duration slice{1};
  std::int64_t buckets = 1;
  std::uint64_t minimum_calls = 1;
  fraction failure_ratio;
  bool slow_counted = false;  // slow_calls<time_window>
  duration slow_after{0};     // slower than this (strictly) is slow
  fraction slow_ratio;

  struct entry {
    std::int64_t slice;
    bool failed;
    bool slow;
  };
  std::deque<entry> entries;  // in the order they ended, so in time order

  std::int64_t slice_of(time_point at) const { return at.time_since_epoch() / slice; }

  bool is_slow(duration elapsed) const {
    if constexpr (planted_mistake == 2) {
      return slow_counted && elapsed >= slow_after;  // mistake 2: "slow" as at-least
    } else {
      return slow_counted && elapsed > slow_after;
    }
  }

  window_counts counts(time_point at) const {
    std::int64_t span = buckets;
    if constexpr (planted_mistake == 1) span = 1;  // mistake 1: the window one slice long
    const std::int64_t oldest = slice_of(at) - span + 1;
    window_counts sum;
    for (const entry& e : entries) {
      if (e.slice < oldest) continue;
      ++sum.calls;
      sum.failures += e.failed ? 1U : 0U;
      sum.slow_calls += e.slow ? 1U : 0U;
    }
    return sum;
  }

  /// Counts a call that ended at `at`; true if it says "open now" (only a failed or slow call
  /// can, and either ratio is enough once minimum_calls are in the window).
  bool record(time_point at, bool failed, bool slow) {
    std::int64_t stamp = slice_of(at);
    // Mistake 4: a call in the wrong slice (one ending on a boundary goes in the slice before).
    if constexpr (planted_mistake == 4) stamp = slice_of(at - 1ns);
    entries.push_back({stamp, failed, slow});
    while (!entries.empty() && entries.front().slice < slice_of(at) - buckets + 1) {
      entries.pop_front();
    }
    if (!failed && !slow) return false;
    const window_counts now = counts(at);
    return now.calls >= minimum_calls &&
           (failure_ratio.reached(now.failures, now.calls) ||
            (slow_counted && slow_ratio.reached(now.slow_calls, now.calls)));
  }
  void clear() { entries.clear(); }
};

/// How long the breaker stays open after n rounds in a row (n >= 1), as the input chose it.
struct open_schedule {
  int kind = 0;  // 0 constant, 1 linear (+100 ms, at most 700 ms), 2 exponential (x2, <= 1 s)
  duration base{100ms};

  stockade::backoff_schedule options() const {
    if (kind == 0) return stockade::constant{base};
    if (kind == 1) return stockade::linear{base, 100ms, 700ms};
    return stockade::exponential{base, 2.0, 1s};
  }
  duration after(std::size_t n) const {
    if (kind == 0) return base;
    if (kind == 1)
      return std::min<duration>(base + 100ms * static_cast<duration::rep>(n - 1), 700ms);
    duration d = base;
    for (std::size_t i = 1; i < n && d < 1s; ++i) d *= 2;
    return std::min<duration>(d, 1s);
  }
};

enum class tally { succeeded, failed, ignored };

struct breaker_model {
  struct admission {
    bool admitted = false;
    bool trial = false;
    std::uint64_t epoch = 0;
    time_point started{};
    ending refusal{};
  };

  window_model window;
  std::size_t permits = 1;
  std::size_t trials_needed = 1;
  stockade::verdict_set failure_verdicts;
  open_schedule open_for;

  circuit_state state = circuit_state::closed;
  std::uint64_t epoch = 0;  // bumped by every transition; a call counts only in its own
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
  std::vector<std::string> transitions;

  circuit_state observed(time_point now) const {
    return state == circuit_state::open && now >= open_until ? circuit_state::half_open : state;
  }

  tally judge(release how) const {
    if (how == release::success) return tally::succeeded;
    if (how == release::transient && failure_verdicts.contains(verdict::transient)) {
      return tally::failed;
    }
    if (how == release::fatal && failure_verdicts.contains(verdict::fatal)) return tally::failed;
    return tally::ignored;  // permanent, an unlisted verdict, or another policy's rejection
  }

  admission admit(time_point now) {
    for (;;) {
      switch (state) {
        case circuit_state::closed:
        case circuit_state::disabled:
          return {true, false, epoch, now};
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
            return {true, true, epoch, now};
          }
          return refuse(errc::circuit_open, half_open_hint(now));
      }
    }
  }

  void finish(const admission& call, release how, time_point now) {
    tally result = judge(how);
    const bool slow = window.is_slow(now - call.started);
    if (call.trial) {
      --in_flight;
      if (stale(call)) return;
      // A slow success is a failed trial: a breaker opened for slowness must not close on it.
      if (result == tally::succeeded && slow) result = tally::failed;
      if (result == tally::ignored) --admitted;  // the permit goes back
      if (result == tally::succeeded) ++successes;
      if (result == tally::failed) ++failures;
      if (failures > permits - trials_needed) {
        ++failed_half_opens;
        std::size_t rounds = failed_half_opens + 1;
        // Mistake 6: wrong growth of the open time (one round late).
        if constexpr (planted_mistake == 6) rounds = failed_half_opens;
        move(circuit_state::open, now, open_for.after(rounds));
      } else if (successes >= trials_needed) {
        close(now);
      }
      return;
    }
    if (result == tally::ignored || stale(call)) return;
    time_point counted_at = now;
    if constexpr (planted_mistake == 5) counted_at = call.started;  // mistake 5: at its start
    if (window.record(counted_at, result == tally::failed, slow) &&
        state == circuit_state::closed) {
      failed_half_opens = 0;
      move(circuit_state::open, now, open_for.after(1));
    }
  }

  /// isolate() and disable(): a move unless already there; the window is kept.
  void force(circuit_state to, time_point now) {
    if (state != to) move(to, now, duration::zero());
  }
  /// Closing empties the window (before the event reports it); a closed breaker stays in its
  /// epoch, so its calls in flight still count in the fresh window.
  void close(time_point now) {
    last_open_for = duration::zero();
    window.clear();
    failed_half_opens = 0;
    if (state != circuit_state::closed) move(circuit_state::closed, now, duration::zero());
  }

 private:
  /// A call admitted in an epoch that is over: it counts nowhere.
  bool stale(const admission& call) const {
    if constexpr (planted_mistake == 7) {
      return false;  // mistake 7: no epoch check
    } else {
      return call.epoch != epoch;
    }
  }

  duration half_open_hint(time_point now) const {
    duration wait = std::max(now > round_started ? now - round_started : duration::zero(),
                             duration{std::chrono::milliseconds(1)});
    if (last_open_for > duration::zero()) wait = std::min(wait, last_open_for);
    return wait;
  }

  admission refuse(errc code, duration retry_after) {
    ++rejections;
    return {false, false, epoch, {}, {ending::kind::stockade_error, code, retry_after}};
  }

  void move(circuit_state to, time_point now, duration open_duration) {
    transitions.push_back(transition(state, to, open_duration, window.counts(now)));
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
void run(FuzzedDataProvider& in, const typename Trip::options& trip, const window_model& window) {
  breaker_model model;
  model.window = window;
  model.permits = in.ConsumeIntegralInRange<std::size_t>(1, 3);
  const fraction success = success_ratios[in.ConsumeIntegralInRange<std::size_t>(0, 3)];
  // The fewest successes that reach the ratio, at least one.
  model.trials_needed =
      std::max<std::size_t>(1, (model.permits * success.num + success.den - 1) / success.den);
  const std::array<stockade::verdict_set, 3> failure_verdicts{
      {{verdict::transient, verdict::fatal}, {verdict::transient}, {verdict::fatal}}};
  model.failure_verdicts = failure_verdicts[in.ConsumeIntegralInRange<std::size_t>(0, 2)];
  model.open_for.kind = in.ConsumeIntegralInRange(0, 2);
  model.open_for.base = 100ms * in.ConsumeIntegralInRange(1, 5);

  stockade::circuit_breaker_options<Trip> options{.trip = trip};
  options.half_open_permits = model.permits;
  options.half_open_success_ratio = success.value();
  options.failure_verdicts = model.failure_verdicts;
  options.open_for = model.open_for.options();

  stockade::testing::manual_clock clock;
  transition_log log;
  stockade::circuit_breaker<Trip, log_transitions> breaker{options, clock, log_transitions{&log}};
  const auto policy =
      stockade::pipeline{std::ref(breaker)}.classify_with(stockade_fuzz::breaker_classifier());

  stockade_fuzz::held_breaker_calls calls(threads(), model, policy, clock);

  const auto compare = [&](int step) {
    calls.check_endings(step);
    const time_point now = clock.now();
    expect_equal(breaker.state(), model.observed(now), "state", step);
    const auto metrics = breaker.metrics();
    expect_equal(metrics.state, model.observed(now), "metrics.state", step);
    expect_equal(text(metrics.window), text(model.window.counts(now)), "window", step);
    expect_equal(metrics.rejections, model.rejections, "rejections", step);
    expect_equal(metrics.times_opened, model.times_opened, "times opened", step);
    expect_equal(metrics.trials_in_flight, model.in_flight, "trials in flight", step);
    expect_equal(metrics.failed_half_opens, model.failed_half_opens, "failed half-opens", step);
    const duration remaining = model.state == circuit_state::open && now < model.open_until
                                   ? model.open_until - now
                                   : duration::zero();
    expect_equal(metrics.open_remaining, remaining, "open remaining", step);
    std::lock_guard lock(log.mutex);
    expect_equal(log.seen.size(), model.transitions.size(), "transitions reported", step);
    for (std::size_t i = 0; i < log.seen.size(); ++i) {
      expect_equal(log.seen[i], model.transitions[i], "transition", step);
    }
  };

  for (int step = 0; step < 300 && in.remaining_bytes() > 0; ++step) {
    const std::size_t slot = in.ConsumeIntegralInRange<std::size_t>(0, call_count - 1);
    switch (in.ConsumeIntegralInRange(0, 8)) {
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
      case 5:  // time passes (in steps of 10 ms: slow-call thresholds are met exactly too)
        clock.advance(10ms * in.ConsumeIntegralInRange(0, 40));
        stockade_fuzz::trace("advance to", clock.now().time_since_epoch());
        break;
      case 6: {  // time reaches the next slice boundary, or 1 ns before or after it
        const duration into = clock.now().time_since_epoch() % window.slice;
        const duration to_boundary = window.slice - into;
        const std::array choices{to_boundary, to_boundary - 1ns, to_boundary + 1ns, duration{1}};
        clock.advance(choices[in.ConsumeIntegralInRange<std::size_t>(0, 3)]);
        stockade_fuzz::trace("advance to", clock.now().time_since_epoch());
        break;
      }
      case 7:  // the operator steps in
        switch (in.ConsumeIntegralInRange(0, 3)) {
          case 0:
            stockade_fuzz::trace("isolate");
            breaker.isolate();
            model.force(circuit_state::isolated, clock.now());
            break;
          case 1:
            stockade_fuzz::trace("disable");
            breaker.disable();
            model.force(circuit_state::disabled, clock.now());
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
  // Every call still in flight ends, one at a time; then no trial may still hold a permit.
  calls.finish_all(compare);
  expect_equal(breaker.metrics().trials_in_flight, std::size_t{0}, "permits left held", -1);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  window_model window;
  // Lengths that are not a multiple of the bucket count too: the slice is rounded down.
  const duration length =
      50ms * in.ConsumeIntegralInRange(1, 20) + 1ns * in.ConsumeIntegralInRange(0, 999);
  window.buckets = in.ConsumeIntegralInRange<std::int64_t>(1, 6);
  window.slice = length / window.buckets;
  window.minimum_calls = in.ConsumeIntegralInRange<std::uint64_t>(1, 6);
  window.failure_ratio = trip_ratios[in.ConsumeIntegralInRange<std::size_t>(0, 4)];
  const stockade::time_window::options trip{length, static_cast<std::size_t>(window.buckets),
                                            window.failure_ratio.value(), window.minimum_calls};
  if (in.ConsumeBool()) {
    run<stockade::time_window>(in, trip, window);
  } else {
    window.slow_counted = true;
    window.slow_after = 10ms * in.ConsumeIntegralInRange(1, 30);
    window.slow_ratio = trip_ratios[in.ConsumeIntegralInRange<std::size_t>(0, 4)];
    run<stockade::slow_calls<stockade::time_window>>(
        in,
        {trip.length, trip.buckets, trip.failure_ratio, trip.minimum_calls, window.slow_after,
         window.slow_ratio.value()},
        window);
  }
  return 0;
}
