// Events: what policies report (a retry, a state change, a rejection) to an observer, a
// template parameter of each policy. The default, null_observer, compiles to nothing.
// Invariant: an observer is called synchronously on the thread that caused the event, so it
// must be quick and must not call back into the policy that reported it; an exception it
// throws is swallowed (detail::notify) and changes nothing else.
#pragma once

#include <array>
#include <atomic>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <tuple>
#include <utility>

namespace stockade {

/// Every event any stockade policy reports. Each event struct (defined beside its policy, listed
/// in docs/events.md) has `static constexpr event_kind kind`.
enum class event_kind : std::uint8_t {
  retry_scheduled,        // retry.hpp: an attempt failed and another follows after a delay
  retry_gave_up,          // retry.hpp: no further attempt (attempts, elapsed, deadline, budget...)
  breaker_state_changed,  // circuit_breaker.hpp
  breaker_rejected,       // circuit_breaker.hpp: a call refused while open, isolated or half-open
  bulkhead_rejected,      // bulkhead.hpp: full, or the wait for a slot ran out
  timeout_expired,        // timeout.hpp: an attempt failed after its deadline
  deadline_overrun,       // timeout.hpp: a value came back late and was kept
  detached_abandoned,     // detached_timeout.hpp: a call was left running at its deadline
  warmup_started,         // warmup_gate.hpp
  warmup_succeeded,       // warmup_gate.hpp
  warmup_failed,          // warmup_gate.hpp
  gate_reset,             // warmup_gate.hpp: re-armed (a new generation)
  health_probed,          // health_check.hpp: the probe ran (healthy or not)
  health_rejected,        // health_check.hpp: a call refused as unhealthy
  resource_created,       // resource.hpp
  resource_retired,       // resource.hpp: replaced (age, fatal verdict) or closed
  fault_injected,         // fault_injection.hpp
  count_                  // not an event: the number of kinds
};

inline constexpr std::size_t event_kind_count = static_cast<std::size_t>(event_kind::count_);

constexpr const char* to_string(event_kind kind) noexcept {
  constexpr std::array<const char*, event_kind_count> names = {
      "retry_scheduled",   "retry_gave_up",    "breaker_state_changed", "breaker_rejected",
      "bulkhead_rejected", "timeout_expired",  "deadline_overrun",      "detached_abandoned",
      "warmup_started",    "warmup_succeeded", "warmup_failed",         "gate_reset",
      "health_probed",     "health_rejected",  "resource_created",      "resource_retired",
      "fault_injected"};
  const auto index = static_cast<std::size_t>(kind);
  return index < names.size() ? names[index] : "unknown";
}

/// An event is any struct with a `kind`.
template <class E>
concept event = requires {
  { E::kind } -> std::convertible_to<event_kind>;
};

/// What an observer must provide: `on(const E&)` for the events it is given.
template <class O, class E>
concept observer_of = event<E> && requires(O& o, const E& e) {
  o.on(e);
};

namespace detail {

/// How every policy reports an event: an observer that throws loses that one event, and
/// nothing else. The exception is swallowed here, so the call's outcome, the policy's state and
/// the events that follow are exactly as if the observer had returned; a policy may report
/// from code that must not throw (a reset, a destructor, a timer).
template <class O, class E>
void notify(O& observer, const E& e) noexcept {
  if constexpr (noexcept(observer.on(e))) {
    observer.on(e);
  } else {
    try {
      observer.on(e);
    } catch (...) {  // NOLINT(bugprone-empty-catch): the rule above
    }
  }
}

}  // namespace detail

/// Ignores every event; a policy whose observer is this one emits no code for events.
struct null_observer {
  template <event E>
  constexpr void on(const E& /*unused*/) const noexcept {}
};

/// Counts events by kind with relaxed atomics; snapshot() reads them all.
class counters {
 public:
  struct snapshot_type {
    std::array<std::uint64_t, event_kind_count> counts{};
    std::uint64_t operator[](event_kind kind) const noexcept {
      return counts[static_cast<std::size_t>(kind)];
    }
  };

  template <event E>
  void on(const E& /*unused*/) noexcept {
    counts_[static_cast<std::size_t>(E::kind)].fetch_add(1, std::memory_order_relaxed);
  }
  std::uint64_t count(event_kind kind) const noexcept {
    return counts_[static_cast<std::size_t>(kind)].load(std::memory_order_relaxed);
  }
  snapshot_type snapshot() const noexcept {
    snapshot_type result;
    for (std::size_t i = 0; i < event_kind_count; ++i) {
      result.counts[i] = counts_[i].load(std::memory_order_relaxed);
    }
    return result;
  }
  void clear() noexcept {
    for (auto& count : counts_) count.store(0, std::memory_order_relaxed);
  }

 private:
  std::array<std::atomic<std::uint64_t>, event_kind_count> counts_{};
};

/// Forwards every event to a callable, e.g. a generic lambda that logs:
///   callback_observer log{[](const auto& e) { std::clog << to_string(e.kind) << '\n'; }};
template <class F>
class callback_observer {
 public:
  constexpr explicit callback_observer(F forward) : forward_(std::move(forward)) {}
  template <event E>
  void on(const E& e) {
    forward_(e);
  }

 private:
  F forward_;
};

/// Refers to an observer owned elsewhere (shared by several policies), like std::ref.
template <class O>
class observer_ref {
 public:
  constexpr explicit observer_ref(O& target) noexcept : target_(&target) {}
  template <event E>
  void on(const E& e) const {
    target_->on(e);
  }
  O& get() const noexcept { return *target_; }

 private:
  O* target_;
};

/// Gives every event to each of several observers, in order; one that throws does not keep the
/// event from the others (each is called as a policy calls its observer, detail::notify).
template <class... Os>
class fan_out {
 public:
  constexpr explicit fan_out(Os... targets) : targets_(std::move(targets)...) {}
  template <event E>
  void on(const E& e) noexcept {
    std::apply([&](auto&... target) { (detail::notify(target, e), ...); }, targets_);
  }

 private:
  std::tuple<Os...> targets_;
};

}  // namespace stockade
