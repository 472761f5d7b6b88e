// The same application written with stockade: per instance, one pipeline
//   timeout (the platform's limit) → retry (budget, deadline) → circuit breaker →
//   bulkhead (sized to the connections) → connection pool (stockade::resource per connection:
//   warm-up, health check on that very connection, replaced after a fatal error) →
//   timeout (each attempt) → the insert, with an idempotency key,
// classified by SQLSTATE (pg::classifier). Invariant: an instance never holds more connections
// than its pool size, since the bulkhead admits no more calls than the pool has connections and
// a resource closes a replaced connection before it makes the next.
#pragma once

#include <atomic>
#include <bit>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <stockade/bounds.hpp>
#include <stockade/bulkhead.hpp>
#include <stockade/circuit_breaker.hpp>
#include <stockade/describe.hpp>
#include <stockade/errors.hpp>
#include <stockade/events.hpp>
#include <stockade/pipeline.hpp>
#include <stockade/resource.hpp>
#include <stockade/retry.hpp>
#include <stockade/retry_budget.hpp>
#include <stockade/timeout.hpp>

#include "../postgres/sqlstate.hpp"
#include "driver.hpp"

namespace storm {

using events_observer = stockade::observer_ref<stockade::counters>;

/// A fixed set of connections, each a stockade::resource, lent to one call at a time: a custom
/// policy in a few lines (docs/custom-policy.md). The bulkhead outside it admits at most size()
/// calls, so a call always finds a free connection; taking one is a compare-and-swap on a bit
/// mask, no lock.
template <class Connection>
class connection_pool {
 public:
  using slot_type = stockade::resource<Connection, events_observer>;

  connection_pool(std::size_t size, const stockade::resource_hooks<Connection>& hooks,
                  const stockade::resource_options& options, events_observer events) {
    if (size == 0 || size > 64) throw std::invalid_argument("connection_pool: size must be 1..64");
    for (std::size_t i = 0; i < size; ++i) {
      slots_.push_back(std::make_unique<slot_type>(hooks, options, events));
    }
  }

  template <class Next>
  auto invoke(stockade::context& ctx, Next&& next) {
    const unsigned index = take();
    const give_back on_exit{busy_, index};
    return slots_[index]->invoke(ctx, std::forward<Next>(next));
  }

  std::size_t size() const noexcept { return slots_.size(); }

  // For stockade::describe and worst_case (docs/composition.md): like a resource, a call may
  // wait for a connection to be made and warmed, which only its deadline bounds.
  stockade::stack_bounds worst_case(const stockade::stack_bounds& inner) const {
    return {inner.attempts,
            stockade::bound<stockade::duration>::unbounded(
                "connection_pool: making and warming a connection end only at the deadline")};
  }
  std::string describe() const {
    return "connection_pool: " + std::to_string(size()) + " connections, each " +
           slots_.front()->describe();
  }

 private:
  struct give_back {
    std::atomic<std::uint64_t>& busy;
    unsigned index;
    ~give_back() { busy.fetch_and(~(std::uint64_t{1} << index), std::memory_order_release); }
  };

  unsigned take() {
    const std::uint64_t all =
        slots_.size() == 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << slots_.size()) - 1;
    std::uint64_t busy = busy_.load(std::memory_order_relaxed);
    for (;;) {
      const std::uint64_t free = all & ~busy;
      if (free == 0) {  // only if the bulkhead outside is larger than the pool
        throw stockade::error(
            stockade::errc::bulkhead_full,
            "connection_pool: no free connection (size the bulkhead to the pool)");
      }
      const auto index = static_cast<unsigned>(std::countr_zero(free));
      if (busy_.compare_exchange_weak(busy, busy | (std::uint64_t{1} << index),
                                      std::memory_order_acquire, std::memory_order_relaxed)) {
        return index;
      }
    }
  }

  std::vector<std::unique_ptr<slot_type>> slots_;
  std::atomic<std::uint64_t> busy_{0};
};

/// The numbers of the stack, per instance. Times scale with the database (see storm.hpp).
struct resilient_settings {
  int connections_per_instance = 2;
  int workers_per_instance = 8;
  stockade::duration request_budget = milliseconds(1800);  // under the platform's limit
  stockade::duration attempt_timeout = milliseconds(300);
  stockade::duration queue_wait = milliseconds(500);  // for a free connection
  int max_attempts = 5;
  stockade::exponential retry_backoff{milliseconds(25), 2.0, milliseconds(400)};
  stockade::duration max_retry_delay = milliseconds(1000);  // caps a breaker's retry-after too
  stockade::exponential breaker_open_for{milliseconds(250), 2.0, milliseconds(2000)};
  stockade::duration health_max_age = milliseconds(500);
  stockade::duration probe_timeout = milliseconds(200);
  stockade::exponential warmup_cool_down{milliseconds(50), 2.0, milliseconds(400)};
  /// Making and verifying one connection, at most. Shared work: the caller that makes it may be
  /// held this long past its own deadline, so it stays well inside the platform's limit.
  stockade::duration warmup_timeout = milliseconds(600);
  /// Which retry budget each instance shares between its calls. `percent` (Finagle's and
  /// tower's, their defaults: 20 % more load, 10 retries a second in reserve, a 10 s window)
  /// bounds what retries add and lets calls wait out an open breaker; `tokens` (gRPC A6's
  /// example) stops retrying as soon as too many attempts fail. docs/cold-start-storm.md
  /// compares the two.
  enum class budget_kind { percent, tokens } budget = budget_kind::percent;
};

/// The stack, outermost first. Each instance has its own breaker, bulkhead, pool and budget
/// (as each serverless instance has its own process); the layers that hold no state are values.
template <class Breaker, class Slots, class Pool>
auto make_stack(const resilient_settings& settings, Breaker& breaker, Slots& slots, Pool& pool,
                stockade::retry_budget& budget, stockade::counters& events) {
  return stockade::pipeline{
      stockade::timeout{settings.request_budget},  // the whole request, retries included
      stockade::retry{{.max_attempts = settings.max_attempts,
                       .backoff = settings.retry_backoff,
                       .max_delay = settings.max_retry_delay},
                      std::ref(budget),  // bounds the load retries add, shared by the instance
                      events_observer{events}},
      std::ref(breaker),  // open: refuse at once, with the time left as retry-after
      std::ref(slots),    // no more calls than connections; the rest wait briefly, in order
      std::ref(pool),     // a warm, verified connection of this instance, or make one
      stockade::timeout{settings.attempt_timeout}}  // each attempt
      .classify_with(pg::classifier());  // SQLSTATE: 53300 transient, 57P01 fatal, 23xxx permanent
}

template <driver Driver>
class resilient_app {
  using connection = typename Driver::connection;

 public:
  resilient_app(Driver& db, int instances, resilient_settings settings)
      : db_(db), settings_(settings) {
    for (int i = 0; i < instances; ++i) {
      instances_.push_back(std::make_unique<instance_state>(*this, i));
    }
  }
  resilient_app(const resilient_app&) = delete;
  resilient_app& operator=(const resilient_app&) = delete;

  /// One request: the insert of `key`, through this instance's pipeline. Throws the last
  /// attempt's error, or a stockade rejection (breaker open, no connection free in time).
  void write(int instance, std::int64_t key) {
    instance_state& in = *instances_[static_cast<std::size_t>(instance)];
    in.policy([&](stockade::context& ctx) {
      db_.insert(ctx.resource<connection>(), key, instance, write_mode::idempotent, ctx.deadline());
    });
  }

  /// Warm-ups run (each: a connection made, awaited until ready, verified on that connection).
  long warmups() const {
    return static_cast<long>(events_.count(stockade::event_kind::warmup_started));
  }
  const stockade::counters& events() const noexcept { return events_; }
  long breaker_openings() const {
    long total = 0;
    for (const auto& in : instances_)
      total += static_cast<long>(in->breaker.metrics().times_opened);
    return total;
  }
  long retries_refused_by_budget() const {
    long total = 0;
    for (const auto& in : instances_) total += static_cast<long>(in->budget.retries_refused());
    return total;
  }
  const resilient_settings& settings() const noexcept { return settings_; }

  /// One instance's stack as stockade::describe() writes it, worst case included.
  std::string stack_description() const { return stockade::describe(instances_.front()->policy); }

  std::string summary() const {
    const auto count = [&](stockade::event_kind kind) {
      return std::to_string(events_.count(kind));
    };
    using stockade::event_kind;
    return count(event_kind::retry_scheduled) + " retries (" +
           std::to_string(retries_refused_by_budget()) + " refused by the retry budget), " +
           "breakers opened " + std::to_string(breaker_openings()) + " times and refused " +
           count(event_kind::breaker_rejected) + " calls, bulkheads refused " +
           count(event_kind::bulkhead_rejected) + ", " + count(event_kind::warmup_started) +
           " warm-ups, " + count(event_kind::resource_retired) + " connections replaced, " +
           count(event_kind::health_probed) + " health probes on the connections themselves";
  }

 private:
  using breaker_type = stockade::circuit_breaker<stockade::count_window, events_observer>;

  struct instance_state {
    instance_state(resilient_app& app, int index)
        : name("db@instance-" + std::to_string(index)),
          breaker({.trip = {.size = 20, .failure_ratio = 0.5, .minimum_calls = 10},
                   .open_for = app.settings_.breaker_open_for,
                   .open_jitter = stockade::jitter::equal(),
                   .name = name},
                  events_observer{app.events_}),
          slots({.max_concurrent = static_cast<std::size_t>(app.settings_.connections_per_instance),
                 .max_queue = static_cast<std::size_t>(app.settings_.workers_per_instance),
                 .max_wait = app.settings_.queue_wait},
                events_observer{app.events_}),
          pool(static_cast<std::size_t>(app.settings_.connections_per_instance), app.hooks(),
               app.resource_options(), events_observer{app.events_}),
          budget_owner(make_budget(app.settings_.budget)),
          budget(*budget_owner),
          policy(make_stack(app.settings_, breaker, slots, pool, budget, app.events_)) {}

    std::string name;
    breaker_type breaker;
    stockade::bulkhead<events_observer> slots;
    connection_pool<connection> pool;
    std::unique_ptr<stockade::retry_budget> budget_owner;
    stockade::retry_budget& budget;
    decltype(make_stack(std::declval<const resilient_settings&>(), breaker, slots, pool,
                        std::declval<stockade::retry_budget&>(),
                        std::declval<stockade::counters&>())) policy;
  };

  static std::unique_ptr<stockade::retry_budget> make_budget(resilient_settings::budget_kind kind) {
    if (kind == resilient_settings::budget_kind::tokens) {
      return std::make_unique<stockade::token_budget>(
          stockade::token_budget_options{.max_tokens = 10, .token_ratio = 0.1});
    }
    return std::make_unique<stockade::percent_budget>(stockade::percent_budget_options{});
  }

  // Every hook receives the connection it acts on: the health check cannot probe another one.
  stockade::resource_hooks<connection> hooks() {
    return {.create = [this](stockade::context& ctx) { return db_.connect(ctx.deadline()); },
            .warm_up = [this](connection& c,
                              stockade::context& ctx) { db_.await_ready(c, ctx.deadline()); },
            .check_health = [this](connection& c,
                                   stockade::context& ctx) { return db_.ping(c, ctx.deadline()); }};
  }

  stockade::resource_options resource_options() const {
    return {.warmup_timeout = settings_.warmup_timeout,
            .health = {.max_age = settings_.health_max_age,
                       .unhealthy_max_age = settings_.health_max_age / 5,
                       .probe_timeout = settings_.probe_timeout},
            .cool_down = settings_.warmup_cool_down};
  }

  Driver& db_;
  const resilient_settings settings_;
  stockade::counters events_;
  std::vector<std::unique_ptr<instance_state>> instances_;
};

}  // namespace storm
