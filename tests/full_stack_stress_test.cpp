// The whole stack under load: more threads than cores and than bulkhead slots, seeded random
// faults from the fault-injection policy, every policy at once (outer timeout, retry with a
// budget, breaker, bulkhead, warm-up gate, health check, inner timeout), on the manual clock.
// It checks invariants, never timings: each call ends exactly once in a documented way, every
// attempt the retry reports ran once and is accounted for by exactly one layer, counters agree
// with each other, and the bounds (slots, half-open permits, one warm-up per generation, one
// probe per max age) hold throughout.
//
// Why the manual clock: every wait in the stack (backoff, cool-down, open breaker, health max
// age, bulkhead max_wait) then costs no real time, so the run is bounded by the number of calls
// alone, and "once per max age" can be checked exactly against the clock the policies read.
// Sleeps move virtual time forward at once (the retry's, the latency faults'), and a ticker
// thread moves it too, so that blocking waits (a bulkhead queue, a single-flight waiter) end.
// Interleavings still vary from run to run; the faults a given call number gets do not (seeded).
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <map>
#include <mutex>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <stockade/bulkhead.hpp>
#include <stockade/circuit_breaker.hpp>
#include <stockade/classifier.hpp>
#include <stockade/events.hpp>
#include <stockade/fault_injection.hpp>
#include <stockade/health_check.hpp>
#include <stockade/manual_clock.hpp>
#include <stockade/pipeline.hpp>
#include <stockade/random.hpp>
#include <stockade/retry.hpp>
#include <stockade/retry_budget.hpp>
#include <stockade/timeout.hpp>
#include <stockade/warmup_gate.hpp>

namespace {

using namespace std::chrono_literals;
using stockade::context;
using stockade::duration;
using stockade::errc;
using stockade::event_kind;
using stockade::time_point;
using stockade::verdict;
using stockade::testing::manual_clock;

constexpr int threads = 8;  // more than the 2 cores CI has, and 4x the slots
constexpr int calls_per_thread = 1500;
constexpr int total_calls = threads * calls_per_thread;
constexpr std::size_t slots = 2;
constexpr std::size_t queue = threads - slots;
constexpr std::size_t permits = 2;
constexpr duration think_time = 20ms;  // between two calls of one caller
constexpr duration health_max_age = 2s;
constexpr duration unhealthy_max_age = 200ms;

/// The seed of every random choice; STOCKADE_STRESS_SEED=<n> picks another (printed on failure).
std::uint64_t stress_seed() {
  if (const char* chosen = std::getenv("STOCKADE_STRESS_SEED")) {
    return std::strtoull(chosen, nullptr, 10);
  }
  return 20'240'917;
}

struct dependency_error : std::runtime_error {
  dependency_error() : std::runtime_error("dependency failed") {}
};
struct broken_connection : std::runtime_error {
  broken_connection() : std::runtime_error("engine is not yet connected") {}
};

/// A broken connection is fatal (re-warm); a negative value is a failed result.
const auto classify = stockade::classifier{
    stockade::on<broken_connection, verdict::fatal>{}, stockade::on_result([](int value) {
      return value < 0 ? verdict::transient : verdict::success;
    })};

/// Parses the call number from a context name "call <n>"; -1 for any other name.
int call_id(std::string_view name) {
  constexpr std::string_view prefix = "call ";
  if (name.substr(0, prefix.size()) != prefix) return -1;
  int id = -1;
  std::from_chars(name.data() + prefix.size(), name.data() + name.size(), id);
  return id;
}

/// What the retry layer reported about one call, and what the layer under it saw. Each entry is
/// written only by the thread that makes the call (events are reported on the caller's thread).
struct call_record {
  int attempts_seen = 0;  // by the layer right under the retry
  int scheduled = 0;      // retry_scheduled events
  int gave_up = 0;        // retry_gave_up events
  int gave_up_attempts = 0;
  stockade::give_up_reason reason = stockade::give_up_reason::verdict;
  int ends = 0;  // how many times the call returned or threw to its caller
  bool ended_with_own_value = false;
};

/// Which layers the current attempt of this thread got through.
struct attempt_progress {
  bool inside_bulkhead = false;
  bool reached_injector = false;
};
thread_local attempt_progress progress;

/// Everything the test counts: events from every policy, per-call records, per-layer counts.
struct ledger {
  explicit ledger(manual_clock& time) : clock(&time) {}

  manual_clock* clock;
  stockade::counters events;
  std::vector<call_record> calls = std::vector<call_record>(total_calls);

  std::atomic<std::uint64_t> attempt_number_mismatches{0};
  std::atomic<std::uint64_t> refused_by_breaker{0};
  std::atomic<std::uint64_t> refused_by_bulkhead{0};
  std::atomic<std::uint64_t> refused_as_unhealthy{0};
  std::atomic<std::uint64_t> refused_inside_bulkhead{0};  // gate, health, inner timeout
  std::atomic<std::uint64_t> unattributed{0};             // a refusal no layer should make
  std::atomic<std::uint64_t> entered_bulkhead{0};
  std::atomic<std::uint64_t> reached_injector{0};
  std::atomic<std::uint64_t> executions{0};  // the callee itself
  std::atomic<std::size_t> inside_now{0};
  std::atomic<std::size_t> inside_most{0};
  std::atomic<std::size_t> trials_most{0};
  std::atomic<std::uint64_t> opened{0};  // breaker_state_changed to open

  // Warm-up: runs per generation, overlap.
  std::mutex warmup_mutex;
  std::map<std::uint64_t, int> warmup_successes;  // generation -> successful runs
  std::map<std::uint64_t, int> gate_opened;       // generation -> warmup_succeeded events
  int warmups_running = 0;
  int warmups_most = 0;
  int warmups_run = 0;

  // Health: when each probe began, and the last published result's start and age.
  std::mutex probe_mutex;
  int probes_running = 0;
  int probes_most = 0;
  int probes_run = 0;
  int probes_published = 0;
  int probes_too_early = 0;
  time_point probe_started{};
  bool any_published = false;
  time_point published_started{};
  duration published_age{};

  template <stockade::event E>
  void on(const E& e) {
    events.on(e);
    if constexpr (std::is_same_v<E, stockade::retry_scheduled>) {
      if (const int id = call_id(e.name); id >= 0) ++calls[static_cast<std::size_t>(id)].scheduled;
    } else if constexpr (std::is_same_v<E, stockade::retry_gave_up>) {
      if (const int id = call_id(e.name); id >= 0) {
        call_record& call = calls[static_cast<std::size_t>(id)];
        ++call.gave_up;
        call.gave_up_attempts = e.attempts;
        call.reason = e.reason;
      }
    } else if constexpr (std::is_same_v<E, stockade::breaker_state_changed>) {
      if (e.to == stockade::circuit_state::open) opened.fetch_add(1);
    } else if constexpr (std::is_same_v<E, stockade::warmup_succeeded>) {
      std::lock_guard lock(warmup_mutex);
      ++gate_opened[e.generation];
    } else if constexpr (std::is_same_v<E, stockade::health_probed>) {
      std::lock_guard lock(probe_mutex);
      ++probes_published;
      any_published = true;
      published_started = probe_started;
      published_age = e.healthy ? health_max_age : unhealthy_max_age;
    }
  }

  void probe_begins() {
    std::lock_guard lock(probe_mutex);
    ++probes_run;
    probes_most = std::max(probes_most, ++probes_running);
    probe_started = clock->now();
    // A probe runs only once the last published result has aged out.
    if (any_published && probe_started < published_started + published_age) ++probes_too_early;
  }
  void probe_ends() {
    std::lock_guard lock(probe_mutex);
    --probes_running;
  }

  void warmup_begins() {
    std::lock_guard lock(warmup_mutex);
    ++warmups_run;
    warmups_most = std::max(warmups_most, ++warmups_running);
  }
  void warmup_ends(std::uint64_t generation, bool succeeded) {
    std::lock_guard lock(warmup_mutex);
    --warmups_running;
    if (succeeded) ++warmup_successes[generation];
  }

  /// An attempt ended in an error a policy raised: which layer refused it?
  void attribute(const stockade::call_error& failure) {
    const std::error_code code = failure.code();
    if (code.category() != stockade::error_category()) {
      unattributed.fetch_add(1);
      return;
    }
    const auto raised = static_cast<errc>(code.value());
    if (!progress.inside_bulkhead) {
      switch (raised) {
        case errc::circuit_open:
        case errc::circuit_isolated:
          refused_by_breaker.fetch_add(1);
          return;
        case errc::bulkhead_full:
        case errc::bulkhead_wait_exceeded:
        case errc::cancelled:
          refused_by_bulkhead.fetch_add(1);
          return;
        default:
          unattributed.fetch_add(1);
          return;
      }
    }
    if (progress.reached_injector) return;  // the dependency (or a fault standing for it)
    switch (raised) {
      case errc::unhealthy:  // the health check refused
        refused_as_unhealthy.fetch_add(1);
        [[fallthrough]];
      case errc::warmup_failed:            // the warm-up it ran or waited for failed
      case errc::warmup_cooling_down:      // the gate refused during a cool-down
      case errc::warmup_wait_exceeded:     // a caller gave up waiting for the warm-up
      case errc::timeout:                  // ... or for another caller's health probe
      case errc::cancelled:                // ... or its stop token fired while it waited
      case errc::deadline_already_passed:  // the inner timeout found no time left
        refused_inside_bulkhead.fetch_add(1);
        return;
      default:
        unattributed.fetch_add(1);
    }
  }
};

/// Lets a policy report to the ledger (policies hold their observer by value).
struct to_ledger {
  ledger* book;
  template <stockade::event E>
  void on(const E& e) const {
    book->on(e);
  }
};

void raise_to(std::atomic<std::size_t>& most, std::size_t value) {
  std::size_t seen = most.load();
  while (value > seen && !most.compare_exchange_weak(seen, value)) {
  }
}

// --- probe layers: policies of their own that count what passes, stacked between the real ones

/// Right under the retry: one execution per attempt the retry makes.
struct count_attempts {
  ledger* book;
  template <class Next>
  auto invoke(context& ctx, Next&& next) const {
    call_record& call = book->calls[static_cast<std::size_t>(call_id(ctx.name()))];
    if (ctx.attempt() != ++call.attempts_seen) book->attempt_number_mismatches.fetch_add(1);
    progress = {};
    auto ended = next(ctx);
    if (!ended.has_value()) {
      if (!ended.error().is_exception()) {
        book->attribute(ended.error());
      } else if (!progress.reached_injector) {
        book->unattributed.fetch_add(1);  // only the dependency (or a fault) throws
      }
    }
    return ended;
  }
};

/// Right inside the bulkhead: how many calls hold a slot at once.
struct count_occupancy {
  ledger* book;
  template <class Next>
  auto invoke(context& ctx, Next&& next) const {
    progress.inside_bulkhead = true;
    book->entered_bulkhead.fetch_add(1);
    raise_to(book->inside_most, book->inside_now.fetch_add(1) + 1);
    struct leave {
      ledger* book;
      ~leave() { book->inside_now.fetch_sub(1); }
    } on_exit{book};
    return next(ctx);
  }
};

/// Right before the fault injector: every call that reaches the (simulated) dependency.
struct count_reaching_injector {
  ledger* book;
  template <class Next>
  auto invoke(context& ctx, Next&& next) const {
    progress.reached_injector = true;
    book->reached_injector.fetch_add(1);
    return next(ctx);
  }
};

/// How each call ended, as its caller saw it.
struct endings {
  std::atomic<std::uint64_t> value{0};               // the callee's own value
  std::atomic<std::uint64_t> failed_value{0};        // an injected error result, returned as is
  std::atomic<std::uint64_t> wrong_value{0};         // a value that belongs to no call: never
  std::atomic<std::uint64_t> callee_error{0};        // the dependency's own exception, unchanged
  std::atomic<std::uint64_t> rejection{0};           // a policy refused (errors.hpp: is_rejection)
  std::atomic<std::uint64_t> documented_failure{0};  // timeout, warm-up failed, unhealthy
  std::atomic<std::uint64_t> other{0};               // anything else: never

  std::uint64_t total() const {
    return value + failed_value + wrong_value + callee_error + rejection + documented_failure +
           other;
  }
};

TEST(FullStackStress, EveryCallEndsOnceAndEveryLayerKeepsItsBounds) {
  const std::uint64_t seed = stress_seed();
  SCOPED_TRACE("STOCKADE_STRESS_SEED=" + std::to_string(seed));
  manual_clock clock{manual_clock::sleeps::wait_for_advance};
  ledger book{clock};
  const to_ledger report{&book};

  stockade::token_budget budget{{.max_tokens = 20, .token_ratio = 0.3}};
  stockade::circuit_breaker<stockade::count_window, to_ledger> breaker{
      {.trip = {.size = 20, .failure_ratio = 0.4, .minimum_calls = 10},
       .open_for = stockade::constant{500ms},
       .half_open_permits = permits,
       .name = "dependency"},
      clock,
      report};
  stockade::bulkhead<to_ledger> bulkhead{
      {.max_concurrent = slots, .max_queue = queue, .max_wait = 50ms}, report};
  stockade::seeded_random warmup_dice{seed + 1};
  stockade::warmup_gate<to_ledger> gate{
      [&](context&, std::uint64_t generation) {
        book.warmup_begins();
        const bool fails = stockade::uniform_unit(warmup_dice) < 0.2;
        book.warmup_ends(generation, !fails);
        if (fails) throw std::runtime_error("connect failed");
      },
      {.cool_down = stockade::constant{100ms}, .cool_down_jitter = stockade::jitter::none()},
      clock,
      report};
  stockade::seeded_random probe_dice{seed + 2};
  stockade::health_check<to_ledger> health{
      [&] {
        book.probe_begins();
        const bool healthy = stockade::uniform_unit(probe_dice) < 0.9;
        book.probe_ends();
        return healthy;
      },
      {.max_age = health_max_age, .unhealthy_max_age = unhealthy_max_age, .probe_timeout = 1s},
      clock,
      report};
  health.on_unhealthy([&] { gate.reset(); });  // as the post-mortem's app did: reconnect
  const time_point outage_from = clock.now() + 2s;
  stockade::fault_injector chaos{
      {.seed = seed},
      report,
      stockade::inject_latency{{.probability = 0.05}, 50ms},
      stockade::inject_latency{{.probability = 0.02}, 1s},  // beyond the inner timeout
      stockade::inject_exception{{.probability = 0.1}, [] { return dependency_error(); }},
      stockade::inject_exception{{.probability = 0.02}, [] { return broken_connection(); }},
      stockade::inject_result{{.probability = 0.05}, [] { return -1; }},
      // An outage early on: every call that reaches the dependency finds it broken.
      stockade::inject_exception{{.from = outage_from, .until = outage_from + 500ms},
                                 [] { return broken_connection(); }}};

  const auto policy =
      stockade::pipeline{stockade::timeout{5s},
                         stockade::retry{{.max_attempts = 4,
                                          .backoff = stockade::exponential{10ms, 2.0, 200ms},
                                          .max_delay = 1s},
                                         std::ref(budget),
                                         report,
                                         stockade::seeded_random{seed + 3}},
                         count_attempts{&book},
                         std::ref(breaker),
                         std::ref(bulkhead),
                         count_occupancy{&book},
                         std::ref(gate),
                         std::ref(health),
                         stockade::timeout{200ms},
                         count_reaching_injector{&book},
                         std::ref(chaos)}
          .classify_with(classify);

  // Some calls carry a stop token; the ticker fires them one by one as time goes.
  std::array<std::stop_source, 64> cancellers;
  endings ended;
  std::atomic<int> finished{0};
  // The ticker moves time once every running caller waits on the clock (sleeping, queued in
  // the bulkhead, waiting for a warm-up or a probe), and then straight to the earliest time one
  // of them (or a timer) is due: a discrete-event simulation, so time passes alike for all.
  const time_point start = clock.now();
  std::thread ticker([&] {
    std::size_t cancelled = 0;
    for (;;) {
      const auto running = static_cast<std::size_t>(threads - finished.load());
      if (running == 0) break;
      raise_to(book.trials_most, breaker.metrics().trials_in_flight);
      const time_point next = clock.next_wake();
      if (clock.waiting() < running || next <= clock.now()) {
        std::this_thread::yield();  // someone is still running, or due and not yet awake
        continue;
      }
      clock.advance_to(next == time_point::max() ? clock.now() + 1ms : next);
      while (cancelled < cancellers.size() && clock.now() >= start + cancelled * 200ms) {
        cancellers[cancelled++].request_stop();
      }
    }
  });
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      for (int i = 0; i < calls_per_thread; ++i) {
        // Callers arrive over (virtual) time, as requests do, not all in the same instant.
        {
          context pause{clock};
          pause.sleep_for(think_time);
        }
        const int id = t * calls_per_thread + i;
        const std::string name = "call " + std::to_string(id);
        context ctx{clock};
        ctx.set_name(name);
        if (id % 7 == 0)
          ctx.set_stop_token(cancellers[static_cast<std::size_t>(id) % 64].get_token());
        try {
          const int got = policy(ctx, [&]() -> int {
            book.executions.fetch_add(1);
            if (i % 3 == 0) std::this_thread::yield();  // widen the overlap in the bulkhead
            return id;
          });
          (got == id ? ended.value : got == -1 ? ended.failed_value : ended.wrong_value)++;
          book.calls[static_cast<std::size_t>(id)].ended_with_own_value = got == id;
        } catch (const dependency_error&) {
          ++ended.callee_error;
        } catch (const broken_connection&) {
          ++ended.callee_error;
        } catch (const stockade::error& e) {
          switch (e.code()) {
            case errc::timeout:
            case errc::warmup_failed:
            case errc::warmup_wait_exceeded:
            case errc::unhealthy:
              ++ended.documented_failure;
              break;
            default:
              (e.is_rejection() ? ended.rejection : ended.other)++;
          }
        } catch (...) {
          ++ended.other;
        }
        ++book.calls[static_cast<std::size_t>(id)].ends;
      }
      finished.fetch_add(1);
    });
  }
  for (auto& worker : workers) worker.join();
  ticker.join();

  // Every call ended exactly once, in one of the documented ways.
  EXPECT_EQ(ended.total(), static_cast<std::uint64_t>(total_calls));
  EXPECT_EQ(ended.wrong_value.load(), 0U);
  EXPECT_EQ(ended.other.load(), 0U);
  std::uint64_t attempts = 0;
  std::uint64_t scheduled = 0;
  std::uint64_t gave_up = 0;
  std::uint64_t refused_by_budget = 0;
  for (std::size_t id = 0; id < book.calls.size(); ++id) {
    const call_record& call = book.calls[id];
    ASSERT_EQ(call.ends, 1) << "call " << id;
    // The retry's reports match the attempts the layer under it saw.
    ASSERT_GE(call.attempts_seen, 1) << "call " << id;
    ASSERT_LE(call.gave_up, 1) << "call " << id;
    if (call.gave_up == 0) {
      // No give-up: the last attempt succeeded, and the call returned the callee's own value.
      ASSERT_EQ(call.attempts_seen, call.scheduled + 1) << "call " << id;
      ASSERT_TRUE(call.ended_with_own_value) << "call " << id;
    } else {
      ASSERT_EQ(call.attempts_seen, call.gave_up_attempts) << "call " << id;
      const bool wait_cut_short = call.reason == stockade::give_up_reason::cancelled &&
                                  call.scheduled == call.attempts_seen;
      ASSERT_TRUE(call.scheduled == call.attempts_seen - 1 || wait_cut_short) << "call " << id;
      if (call.reason == stockade::give_up_reason::budget) ++refused_by_budget;
    }
    ASSERT_LE(call.attempts_seen, 4) << "call " << id;
    attempts += static_cast<std::uint64_t>(call.attempts_seen);
    scheduled += static_cast<std::uint64_t>(call.scheduled);
    gave_up += static_cast<std::uint64_t>(call.gave_up);
  }
  EXPECT_EQ(book.attempt_number_mismatches.load(), 0U);
  EXPECT_EQ(book.events.count(event_kind::retry_scheduled), scheduled);
  EXPECT_EQ(book.events.count(event_kind::retry_gave_up), gave_up);
  EXPECT_EQ(budget.retries_granted(), scheduled);
  EXPECT_EQ(budget.retries_refused(), refused_by_budget);

  // Every attempt is accounted for by exactly one layer, and each layer's own count agrees.
  EXPECT_EQ(book.unattributed.load(), 0U);
  EXPECT_EQ(attempts, book.refused_by_breaker + book.refused_by_bulkhead + book.entered_bulkhead);
  EXPECT_EQ(book.refused_by_breaker.load(), breaker.metrics().rejections);
  EXPECT_EQ(book.refused_by_breaker.load(), book.events.count(event_kind::breaker_rejected));
  EXPECT_EQ(book.refused_by_bulkhead.load(), bulkhead.metrics().rejected);
  EXPECT_EQ(book.refused_by_bulkhead.load(), book.events.count(event_kind::bulkhead_rejected));
  EXPECT_EQ(book.entered_bulkhead.load(), book.refused_inside_bulkhead + book.reached_injector);
  EXPECT_EQ(book.refused_as_unhealthy.load(), book.events.count(event_kind::health_rejected));
  EXPECT_EQ(book.reached_injector.load(), chaos.calls_seen());
  // The injector ends a call with an exception or a result, or lets it through to the callee;
  // a latency fault either waits and lets it through, or runs out of time and ends it.
  const std::uint64_t cut_by_latency = chaos.calls_seen() - book.executions -
                                       chaos.injected(stockade::fault_kind::exception) -
                                       chaos.injected(stockade::fault_kind::result);
  EXPECT_LE(book.executions + chaos.injected(stockade::fault_kind::exception) +
                chaos.injected(stockade::fault_kind::result),
            chaos.calls_seen());
  EXPECT_LE(cut_by_latency, chaos.injected(stockade::fault_kind::latency));
  EXPECT_EQ(book.events.count(event_kind::fault_injected), chaos.injected());

  // Bulkhead: never more calls inside than slots; nothing left held or queued.
  EXPECT_LE(book.inside_most.load(), slots);
  EXPECT_EQ(bulkhead.metrics().in_flight, 0U);
  EXPECT_EQ(bulkhead.metrics().queued, 0U);
  EXPECT_LE(bulkhead.metrics().peak_in_flight, slots);

  // Breaker: half-open trials never beyond their permits, every permit given back.
  EXPECT_LE(book.trials_most.load(), permits);
  EXPECT_EQ(breaker.metrics().trials_in_flight, 0U);
  EXPECT_EQ(breaker.metrics().times_opened, book.opened.load());

  // Warm-up: never two at once, at most one success per generation, the gate opened at most
  // once per generation, and each re-arm made exactly one new generation.
  {
    std::lock_guard lock(book.warmup_mutex);
    EXPECT_EQ(book.warmups_most, 1);
    for (const auto& [generation, successes] : book.warmup_successes) {
      EXPECT_EQ(successes, 1) << "generation " << generation;
    }
    for (const auto& [generation, opened] : book.gate_opened) {
      EXPECT_EQ(opened, 1) << "generation " << generation;
      EXPECT_EQ(book.warmup_successes.count(generation), 1U) << "generation " << generation;
    }
    EXPECT_EQ(gate.generation(), book.events.count(event_kind::gate_reset) + 1);
    EXPECT_EQ(static_cast<std::uint64_t>(book.warmups_run),
              book.events.count(event_kind::warmup_started));
  }

  // Health: never two probes at once, none before the last result aged out.
  {
    std::lock_guard lock(book.probe_mutex);
    EXPECT_EQ(book.probes_most, 1);
    EXPECT_EQ(book.probes_too_early, 0);
    EXPECT_EQ(static_cast<std::uint64_t>(book.probes_published),
              book.events.count(event_kind::health_probed));
    EXPECT_LE(book.probes_published, book.probes_run);
  }

  // The run went through the paths it is meant to stress (a seed that did not would prove less).
  EXPECT_GT(ended.value.load(), 0U);
  EXPECT_GT(scheduled, 0U);
  EXPECT_GT(book.refused_by_bulkhead.load(), 0U);
  EXPECT_GT(breaker.metrics().times_opened, 0U);
  EXPECT_GT(book.events.count(event_kind::gate_reset), 0U);
  EXPECT_GT(book.probes_published, 1);

  // After the storm every half-open permit is back: from a fresh trip, `permits` trials run.
  breaker.reset();
  const auto breaker_only = stockade::pipeline{std::ref(breaker)};
  for (int i = 0; i < 20 && breaker.state() == stockade::circuit_state::closed; ++i) {
    context ctx{clock};
    EXPECT_THROW(breaker_only(ctx, []() -> int { throw dependency_error(); }), dependency_error);
  }
  ASSERT_EQ(breaker.state(), stockade::circuit_state::open);
  clock.advance(breaker.metrics().open_remaining);
  for (std::size_t i = 0; i < permits; ++i) {
    context ctx{clock};
    EXPECT_EQ(breaker_only(ctx, [] { return 1; }), 1);
  }
  EXPECT_EQ(breaker.state(), stockade::circuit_state::closed);
}

}  // namespace
