// A managed resource (a database client, a connection): made by a factory on first use, warmed
// and verified through a warm-up gate, health-checked with a shared probe, replaced when too old
// or after a fatal verdict, closed on shutdown. Callers hold it through a lease.
// Invariants: the warm-up, the probe and the calls of one generation all get the same T (an
// instance owns its T, its health check and its age alarm); an instance is closed only when the
// resource has let go of it and its last lease has ended.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "backoff.hpp"
#include "bounds.hpp"
#include "clock.hpp"
#include "context.hpp"
#include "detail/counted_slot.hpp"
#include "detail/duration_text.hpp"
#include "detail/parts.hpp"
#include "detail/reset_on_fatal.hpp"
#include "detail/validate.hpp"
#include "detail/waiter_queue.hpp"
#include "detail/with_context.hpp"
#include "errors.hpp"
#include "events.hpp"
#include "health_check.hpp"
#include "result.hpp"
#include "verdict.hpp"
#include "warmup_gate.hpp"

namespace stockade {

/// Why an instance stopped being the one handed out.
enum class retire_reason : std::uint8_t {
  none,       ///< still current
  age,        ///< older than max_age
  fatal,      ///< a call ended in a fatal verdict
  unhealthy,  ///< the health probe said unhealthy
  shutdown,   ///< the resource was shut down
};

constexpr const char* to_string(retire_reason reason) noexcept {
  switch (reason) {
    case retire_reason::none:
      return "none";
    case retire_reason::age:
      return "age";
    case retire_reason::fatal:
      return "fatal";
    case retire_reason::unhealthy:
      return "unhealthy";
    case retire_reason::shutdown:
      return "shutdown";
  }
  return "unknown";
}

struct resource_options {
  /// An instance older than this (counted from when it was published) is replaced at the next
  /// call. 5 min: the post-mortem's connection age limit (HikariCP's maxLifetime, 30 min, is the
  /// same idea for pools). Must be longer than warmup_timeout; duration::max() means never.
  duration max_age = std::chrono::minutes(5);
  /// The time limit of making, warming and verifying one instance (the gate's warmup_timeout:
  /// shared work, not bounded by the deadline of the caller that runs it). Default 20 s, as
  /// warmup_gate_options.
  duration warmup_timeout = std::chrono::seconds(20);
  /// Health of the current instance, used when hooks.check_health is set.
  health_check_options health = {};
  /// Cool-down after a failed creation or warm-up (see warmup_gate_options).
  backoff_schedule cool_down = exponential{std::chrono::seconds(1), 1.6, std::chrono::seconds(120)};
  jitter cool_down_jitter = jitter::proportional(0.2);
  /// As a policy: a call that ends in a fatal verdict retires the instance it ran on (once per
  /// generation, however many calls fail together).
  bool replace_on_fatal = true;
  /// An unhealthy probe result retires the instance, so the next call builds a new one instead
  /// of being refused until the dependency recovers on the same broken client.
  bool replace_when_unhealthy = true;

  constexpr void validate() const {
    detail::require(warmup_timeout > duration::zero(), "resource", "warmup_timeout",
                    "must be positive", warmup_timeout);
    // An instance that can age out before the callers waiting for it are let in makes the
    // resource build instance after instance without serving a call.
    detail::require(max_age > warmup_timeout, "resource", "max_age",
                    "must be longer than warmup_timeout (an instance must outlive its warm-up)",
                    max_age);
    health.validate();
    cool_down.validate();
    cool_down_jitter.validate();
  }
};

/// A new instance was made, warmed and verified, and is now the one handed out.
struct resource_created {
  static constexpr event_kind kind = event_kind::resource_created;
  std::uint64_t generation;
  duration took;  ///< factory + warm-up + verification
  std::string_view name;
};

/// An instance stopped being handed out; it is closed once its last lease ends.
struct resource_retired {
  static constexpr event_kind kind = event_kind::resource_retired;
  std::uint64_t generation;
  retire_reason reason;
};

namespace detail {

template <class O>
inline constexpr bool is_observer_ref = false;
template <class O>
inline constexpr bool is_observer_ref<observer_ref<O>> = true;

/// The observer a part owned by a resource reports to: a copy of the resource's own if that is
/// empty or already a reference, else a reference to it.
template <class O>
using observer_handle =
    std::conditional_t<std::is_empty_v<O> || is_observer_ref<O>, O, observer_ref<O>>;

template <class O>
observer_handle<O> handle_of(O& observer) {
  if constexpr (std::is_same_v<observer_handle<O>, O>) {
    return observer;
  } else {
    return observer_ref<O>(observer);
  }
}

}  // namespace detail

/// Makes a new T. Accepts a callable taking `context&` or nothing and returning
/// std::unique_ptr<T> or T.
template <class T>
class resource_factory {
 public:
  resource_factory() = default;
  template <class F>
  requires(detail::takes_context_or_not<F&> && !std::is_same_v<std::decay_t<F>, resource_factory>)
      resource_factory(F f)  // NOLINT: implicit, so hooks read `.create = [] { ... }`
      : make_([f = std::move(f)](context& ctx) mutable -> std::unique_ptr<T> {
          using made = std::decay_t<decltype(detail::call_with_context(f, ctx))>;
          if constexpr (std::is_same_v<made, std::unique_ptr<T>>) {
            return detail::call_with_context(f, ctx);
          } else {
            static_assert(std::is_convertible_v<made, T>,
                          "stockade::resource_factory: return std::unique_ptr<T> or T");
            return std::make_unique<T>(detail::call_with_context(f, ctx));
          }
        }) {}

  explicit operator bool() const noexcept { return static_cast<bool>(make_); }
  std::unique_ptr<T> operator()(context& ctx) const { return make_(ctx); }

 private:
  std::function<std::unique_ptr<T>(context&)> make_;
};

/// One step run on a T: takes `T&` (and optionally `context&`); returns bool (false: failed)
/// or void (failed only by throwing).
template <class T>
class resource_step {
 public:
  resource_step() = default;
  template <class F>
  requires(detail::takes_context_or_not<F&, T&> && !std::is_same_v<std::decay_t<F>, resource_step>)
      resource_step(F f)  // NOLINT: implicit, so hooks read `.warm_up = [](T& t) { ... }`
      : run_([f = std::move(f)](T& object, context& ctx) mutable -> bool {
          if constexpr (std::is_void_v<decltype(detail::call_with_context(f, ctx, object))>) {
            detail::call_with_context(f, ctx, object);
            return true;
          } else {
            return static_cast<bool>(detail::call_with_context(f, ctx, object));
          }
        }) {}

  explicit operator bool() const noexcept { return static_cast<bool>(run_); }
  bool operator()(T& object, context& ctx) const { return run_(object, ctx); }

 private:
  std::function<bool(T&, context&)> run_;
};

/// What a resource does with its T. Every hook receives the T it acts on, never "the current
/// one": so the warm-up, the probe and the calls cannot end up on different clients.
template <class T>
struct resource_hooks {
  resource_factory<T> create = {};     ///< required: makes a new T
  resource_step<T> warm_up = {};       ///< optional: connect, warm caches; throws or returns false
  resource_step<T> check_health = {};  ///< optional: verifies after warm-up, then probes by max age
  std::function<void(T&)> close = {};  ///< optional: runs once no lease holds the T (then it is
                                       ///< destroyed); an exception it throws is swallowed
};

template <class T, class Observer = null_observer>
class resource {
  struct instance;

 public:
  /// Access to one instance's T for as long as it lives; the T is not closed before every lease
  /// on it has ended, even if the instance was replaced meanwhile. Move-only.
  class lease {
   public:
    lease() noexcept = default;
    lease(lease&& other) noexcept : instance_(std::exchange(other.instance_, nullptr)) {}
    lease& operator=(lease&& other) noexcept {
      if (this != &other) {
        release(instance_);
        instance_ = std::exchange(other.instance_, nullptr);
      }
      return *this;
    }
    ~lease() { release(instance_); }

    T& operator*() const noexcept { return *instance_->object; }
    T* operator->() const noexcept { return instance_->object.get(); }
    T* get() const noexcept { return instance_ ? instance_->object.get() : nullptr; }
    explicit operator bool() const noexcept { return instance_ != nullptr; }
    /// The generation of the instance this lease holds (1 for the first instance made).
    std::uint64_t generation() const noexcept { return instance_ ? instance_->generation : 0; }

   private:
    friend class resource;
    explicit lease(instance* held) noexcept : instance_(held) {}
    instance* instance_ = nullptr;
  };

  /// The hooks, the options, then in any order its clock (by reference; the real clock if none),
  /// which times the max age and the health results' age and must be the clock the callers'
  /// contexts use, and its observer.
  template <class... Parts>
  explicit resource(resource_hooks<T> hooks, resource_options options = {}, Parts&&... parts)
      : hooks_(std::move(hooks)),
        options_((options.validate(), options)),
        clock_(&detail::clock_in<Parts...>(parts...)),
        observer_(detail::take_part<detail::is_observer_part, Observer>(parts...)),
        gate_([this](context& ctx, std::uint64_t generation) { build(ctx, generation); },
              warmup_gate_options{.warmup_timeout = options_.warmup_timeout,
                                  .cool_down = options_.cool_down,
                                  .cool_down_jitter = options_.cool_down_jitter,
                                  .reset_on_fatal = false},
              *clock_, detail::handle_of(observer_)),
        drain_(std::make_shared<drain_state>(hooks_.close)) {
    if (!hooks_.create) {
      throw std::invalid_argument("stockade::resource: hooks.create must be set");
    }
    detail::outlive_me_timer(*clock_);
  }

  resource(const resource&) = delete;
  resource& operator=(const resource&) = delete;
  /// Shuts down; leases still held keep their T until they end.
  ~resource() { shutdown(); }

  /// A lease on the current instance, making, warming or replacing it first if needed. Fast path
  /// (warm, fresh and healthy): no lock, no allocation. Throws stockade::error with
  ///  - errc::resource_closed (permanent): after shutdown();
  ///  - errc::warmup_failed, errc::warmup_cooling_down, errc::warmup_wait_exceeded,
  ///    errc::cancelled: see warmup_gate;
  ///  - errc::unhealthy (transient): the health probe said unhealthy (the instance is retired
  ///    when replace_when_unhealthy, so a retry gets a new one);
  ///  - errc::timeout or errc::cancelled: this caller gave up waiting for another's probe.
  lease acquire(context& ctx) {
    std::optional<call_error> refused;
    lease held = acquire_or_refuse(ctx, refused);
    if (refused) refused->raise();
    return held;
  }

  /// Retires the instance `held` is on, if it is still the current generation; true if this
  /// call retired it. Any number of concurrent calls for one generation retire it once.
  bool retire(const lease& held, retire_reason reason = retire_reason::fatal) noexcept {
    return held.instance_ != nullptr && retire_instance(*held.instance_, reason);
  }

  /// Stops handing out instances: acquire() throws errc::resource_closed from now on, the
  /// current instance is retired and closed once its last lease ends.
  void shutdown() {
    if (closed_.exchange(true)) return;
    gate_.reset();
    detach_current(retire_reason::shutdown);
  }
  /// shutdown(), then waits until every instance is closed (no lease left), bounded by ctx;
  /// true if all were closed in time.
  bool shutdown(context& ctx) {
    shutdown();
    std::unique_lock lock(drain_->mutex);
    return ctx.wait_until(lock, drain_->all_closed, no_deadline, [&] { return drain_->live == 0; });
  }

  /// The current generation (the gate's): bumps on every retirement.
  std::uint64_t generation() const noexcept { return gate_.generation(); }
  bool closed() const noexcept { return closed_.load(); }
  /// Instances made and not yet closed: the current one plus retired ones still leased.
  std::size_t live_instances() const {
    std::lock_guard lock(drain_->mutex);
    return drain_->live;
  }

  /// As a policy: leases the instance for the call and hands its T to the callable through
  /// ctx.resource<T>(); a fatal verdict retires that very instance (replace_on_fatal).
  template <class Next>
  auto invoke(context& ctx, Next&& next) {
    using result_type = std::invoke_result_t<Next&, context&>;
    std::optional<call_error> refused;
    lease held = acquire_or_refuse(ctx, refused);
    if (refused) [[unlikely]] {
      return result_type::raised(std::move(*refused));
    }
    const lend_scope<T> scope(ctx, held.get());
    if (!options_.replace_on_fatal) return std::forward<Next>(next)(ctx);
    return detail::run_resetting_on_fatal(ctx, std::forward<Next>(next), [this, &held]() noexcept {
      retire(held, retire_reason::fatal);
    });
  }

  constexpr const resource_options& options() const noexcept { return options_; }

  /// A caller may wait for another caller to make an instance until its own deadline, and the
  /// caller that makes one may overrun its deadline by up to warmup_timeout: put a timeout
  /// outside the resource for the waiters.
  constexpr stack_bounds worst_case(const stack_bounds& inner) const noexcept {
    return {inner.attempts, bound<duration>::unbounded(
                                "resource: creating and warming up an instance end only at the "
                                "call's deadline")};
  }
  std::string describe() const {
    return "resource: max_age " + detail::duration_text(options_.max_age) + ", probe_timeout " +
           detail::duration_text(options_.health.probe_timeout) +
           (options_.replace_on_fatal ? ", replaced on a fatal verdict" : "");
  }
  Observer& observer() noexcept { return observer_; }

 private:
  using part_observer = detail::observer_handle<Observer>;

  /// Closes the T of every instance once the last one referring to it is gone; shared with the
  /// instances so a lease may outlive the resource.
  struct drain_state {
    explicit drain_state(std::function<void(T&)> closer) : close(std::move(closer)) {}
    std::function<void(T&)> close;
    mutable std::mutex mutex;
    detail::waiter_queue<detail::waiter> all_closed;  // served whenever an instance closes
    std::size_t live = 0;
  };

  struct age_out {
    resource* owner;
    instance* aged;
    void operator()() const noexcept { owner->retire_instance(*aged, retire_reason::age); }
  };

  struct instance {
    instance(std::unique_ptr<T> made, std::uint64_t made_generation,
             std::shared_ptr<drain_state> drain_to)
        : object(std::move(made)), generation(made_generation), drain(std::move(drain_to)) {
      std::lock_guard lock(drain->mutex);
      ++drain->live;
    }
    instance(const instance&) = delete;
    instance& operator=(const instance&) = delete;
    ~instance() {
      age_alarm.disarm();
      health.reset();
      if (drain->close) {
        try {
          drain->close(*object);
        } catch (...) {  // NOLINT: a failed close must not take the caller's thread down
        }
      }
      object.reset();
      std::lock_guard lock(drain->mutex);
      --drain->live;
      detail::serve_all(drain->all_closed);
    }

    std::unique_ptr<T> object;
    const std::uint64_t generation;
    std::atomic<std::int64_t> refs{1};  // the creator's (then the slot's) reference
    std::atomic<retire_reason> reason{retire_reason::none};
    std::optional<health_check<part_observer>> health;
    std::shared_ptr<drain_state> drain;
    detail::clock_alarm<age_out> age_alarm;
  };

  static void release(instance* held) noexcept {
    if (held != nullptr && held->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete held;
  }

  static bool usable(const instance& held) noexcept {
    return !held.health || held.health->fresh_and_healthy();
  }

  bool retire_instance(instance& held, retire_reason reason) noexcept {
    retire_reason none = retire_reason::none;
    held.reason.compare_exchange_strong(none, reason);  // the first reason is the one reported
    return gate_.reset(held.generation);
  }

  /// acquire() without throwing: a lease, or an empty one with the error in `refused`.
  lease acquire_or_refuse(context& ctx, std::optional<call_error>& refused) {
    if (gate_.ready()) [[likely]] {
      lease held(slot_.acquire());
      if (held && usable(*held.instance_)) [[likely]] {
        return held;
      }
    }
    return acquire_slowly(ctx, refused);
  }

  lease acquire_slowly(context& ctx, std::optional<call_error>& refused) {
    for (;;) {
      if (closed_.load()) {
        refused.emplace(errc::resource_closed);
        return {};
      }
      const std::uint64_t generation = gate_.wait_ready_or_refuse(ctx, refused);
      if (refused) {
        if (closed_.load()) refused.emplace(errc::resource_closed);
        return {};
      }
      lease held(slot_.acquire());
      // Replaced between the gate opening and this lease: look again (the gate waits).
      if (!held || held.generation() != generation) continue;
      if (usable(*held.instance_)) return held;
      try {
        if (held.instance_->health->check(ctx)) return held;  // probes this very T
      } catch (const error& gave_up) {  // the wait for another caller's probe was cut short
        refused.emplace(gave_up);
        return {};
      }
      const bool replaced = options_.replace_when_unhealthy;  // on_unhealthy retired it
      const duration retry_after =
          replaced ? duration::zero() : until_next_probe(*held.instance_->health, ctx);
      detail::notify(observer_, health_rejected{retry_after, ctx.name()});
      refused.emplace(errc::unhealthy, retry_after);
      return {};
    }
  }

  static duration until_next_probe(const health_check<part_observer>& health, context& ctx) {
    const health_status status = health.status();
    const time_point due =
        context::saturating_add(status.checked_at, health.options().unhealthy_max_age);
    const time_point now = ctx.refresh_now();
    return due > now ? due - now : duration::zero();
  }

  /// The gate's warm-up action: lets go of the retired instance, then makes, warms and verifies
  /// a new one and publishes it. Runs on one caller's thread at a time (the gate's leader).
  void build(context& ctx, std::uint64_t generation) {
    detach_current(retire_reason::none);
    if (closed_.load()) throw error(errc::resource_closed);
    const time_point started = ctx.refresh_now();

    std::unique_ptr<T> object = hooks_.create(ctx);
    if (!object) throw std::runtime_error("stockade::resource: the factory returned null");
    // From here on the instance owns the T, so any failure below closes it.
    std::unique_ptr<instance, releaser> made(new instance(std::move(object), generation, drain_));
    T& fresh = *made->object;
    if (hooks_.warm_up && !hooks_.warm_up(fresh, ctx)) {
      throw std::runtime_error("stockade::resource: warm_up returned false");
    }
    if (hooks_.check_health) {
      made->health.emplace([&fresh, step = hooks_.check_health](
                               context& probe_ctx) { return step(fresh, probe_ctx); },
                           options_.health, *clock_, detail::handle_of(observer_));
      if (!made->health->check(ctx)) {
        throw error(errc::unhealthy, "stockade::resource: a new instance failed verification");
      }
      // Only once verified: a failed verification must fail this warm-up (and cool down),
      // not retire a generation no call has used.
      if (options_.replace_when_unhealthy) {
        made->health->on_unhealthy(
            [this, held = made.get()] { retire_instance(*held, retire_reason::unhealthy); });
      }
    }
    publish(std::move(made), ctx.refresh_now() - started, ctx.name());
  }

  struct releaser {
    void operator()(instance* held) const noexcept { release(held); }
  };

  void publish(std::unique_ptr<instance, releaser> made, duration took, std::string_view name) {
    const std::uint64_t generation = made->generation;
    instance* previous = nullptr;
    {
      std::lock_guard lock(install_mutex_);
      if (closed_.load()) throw error(errc::resource_closed);  // `made` closes on the way out
      instance& held = *made;
      held.age_alarm.arm(*clock_, context::saturating_add(clock_->now(), options_.max_age),
                         age_out{this, &held});
      // Null in practice: build() emptied the slot, and only the gate's leader publishes.
      previous = slot_.exchange(made.release());
      if (previous != nullptr) previous->age_alarm.disarm();
    }
    detail::notify(observer_, resource_created{generation, took, name});
    if (previous != nullptr) {
      report_retired(*previous, retire_reason::none);
      release(previous);
    }
  }

  /// Takes the current instance out of the slot, reports it retired and drops the slot's
  /// reference (closing it if no lease holds it).
  void detach_current(retire_reason fallback) {
    instance* old = nullptr;
    {
      std::lock_guard lock(install_mutex_);
      old = slot_.exchange(nullptr);
      if (old != nullptr) old->age_alarm.disarm();  // no age_out can touch this resource later
    }
    if (old == nullptr) return;
    report_retired(*old, fallback);
    release(old);
  }

  /// Reports the reason recorded when the instance was retired, else `fallback`.
  void report_retired(instance& old, retire_reason fallback) {
    retire_reason reason = retire_reason::none;
    old.reason.compare_exchange_strong(reason, fallback);  // on failure: the recorded reason
    detail::notify(observer_, resource_retired{old.generation,
                                               reason == retire_reason::none ? fallback : reason});
  }

  resource_hooks<T> hooks_;
  resource_options options_;
  clock* clock_;
  [[no_unique_address]] Observer observer_;
  warmup_gate<part_observer> gate_;
  std::shared_ptr<drain_state> drain_;
  std::atomic<bool> closed_{false};
  std::mutex install_mutex_;  // serialises writers of slot_
  detail::counted_slot<instance> slot_;
};

/// resource{hooks, options, parts...}: the observer from the parts (none: null_observer).
template <class T, class... Parts>
resource(resource_hooks<T>, resource_options, Parts&&...)
    -> resource<T, detail::part_of_t<detail::is_observer_part, null_observer, Parts...>>;

}  // namespace stockade
