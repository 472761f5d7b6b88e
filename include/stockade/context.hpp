// One context per call, passed by reference through every layer of a pipeline: attempt number,
// deadline, stop token, clock and a name for events. What an attempt came to is not here: each
// layer returns it (stockade::result).
// Invariant: every wait a policy makes goes through the context, so it is bounded by the call's
// deadline and stop token, and the cached "now" is re-read after it.
#pragma once

#include <algorithm>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <string_view>
#include <typeinfo>

#include "clock.hpp"
#include "detail/parking.hpp"
#include "detail/waiter_queue.hpp"
#include "timer.hpp"

namespace stockade {

class context;

namespace detail {

/// A stop source that fires at a deadline and whenever the caller's own token fires. Created
/// disarmed (one null pointer); armed only when a callee asks for a stop token. The armed state
/// (the stop source, its timer, its link to the caller's token) lives outside the context, so
/// the context's address never reaches a clock and the compiler can keep an unarmed context in
/// registers; each thread keeps the last armed state it released for the next one, so arming
/// allocates only the std::stop_source's shared state (the one allocation std::stop_token needs).
class deadline_stop {
 public:
  deadline_stop() noexcept = default;
  deadline_stop(const deadline_stop&) = delete;
  deadline_stop& operator=(const deadline_stop&) = delete;
  ~deadline_stop() {
    if (state_ != nullptr) [[unlikely]]
      release(state_);
  }

  bool armed() const noexcept { return state_ != nullptr; }

  /// `now`: the caller's idea of the current time; a deadline already reached stops at once.
  std::stop_token arm(clock& on, time_point now, time_point deadline,
                      const std::stop_token& caller) {
    if (state_ == nullptr) {
      armed_state* fresh = take();
      fresh->source = std::stop_source{};
      fresh->link.emplace(caller, forward_stop{&fresh->source});
      if (deadline <= now) {
        fresh->source.request_stop();
      } else {
        try {
          on.arm(fresh->deadline_timer, deadline);
        } catch (...) {
          // Not kept: the next call arms again instead of handing out a token that would never
          // fire at the deadline.
          release(fresh);
          throw;
        }
        fresh->timer_clock = &on;
      }
      state_ = fresh;
    }
    return state_->source.get_token();
  }

 private:
  struct forward_stop {
    std::stop_source* target;
    void operator()() const noexcept { target->request_stop(); }
  };
  struct armed_state {
    armed_state() = default;
    armed_state(const armed_state&) = delete;
    armed_state& operator=(const armed_state&) = delete;
    ~armed_state() = default;

    static void deadline_reached(void* self) noexcept {
      static_cast<armed_state*>(self)->source.request_stop();
    }
    std::stop_source source{std::nostopstate};
    std::optional<std::stop_callback<forward_stop>> link;  // reset before source
    timer deadline_timer{timer::purpose::alarm, &deadline_reached, this};
    clock* timer_clock = nullptr;  // set while deadline_timer is armed
  };

  static std::unique_ptr<armed_state>& spare() noexcept {
    thread_local std::unique_ptr<armed_state> kept;
    return kept;
  }
  static armed_state* take() {
    if (std::unique_ptr<armed_state>& kept = spare()) return kept.release();
    return new armed_state();
  }
  /// Disarms `state` and keeps it for this thread's next arm (or frees it if one is kept). Out
  /// of line: the context's destructor must stay small enough to inline everywhere, or an
  /// unarmed context could no longer live in registers.
  [[gnu::noinline, gnu::cold]] static void release(armed_state* state) noexcept {
    if (state->timer_clock != nullptr) (void)state->timer_clock->cancel(state->deadline_timer);
    state->timer_clock = nullptr;
    state->link.reset();
    state->source = std::stop_source{std::nostopstate};
    std::unique_ptr<armed_state>& kept = spare();
    if (kept == nullptr) {
      kept.reset(state);
    } else {
      delete state;
    }
  }

  armed_state* state_ = nullptr;
};

/// A call's clock and the time at the start of its current step, read once and shared by every
/// layer until something waits or the callee returns.
class cached_time {
 public:
  /// `source` null: the real clock, read without a virtual call.
  explicit cached_time(clock* source = nullptr) noexcept : clock_(source) {}

  clock& source() const noexcept { return clock_ ? *clock_ : real_clock::instance(); }
  time_point now() noexcept { return fresh_ ? now_ : refresh(); }
  time_point refresh() noexcept {
    now_ = clock_ ? clock_->now() : std::chrono::steady_clock::now();
    fresh_ = true;
    return now_;
  }
  void forget() noexcept { fresh_ = false; }
  /// The cached time if there is one (it is exact), else a recent reading, not cached.
  time_point recent() const noexcept {
    if (fresh_) return now_;
    return clock_ ? clock_->recent() : coarse_steady_now();
  }
  /// True once the clock has reached `when`; on the real clock an exact reading is paid only
  /// within a tick of it. Updates no cache.
  bool reached(time_point when) const noexcept {
    if (fresh_ && now_ >= when) return true;
    return clock_ ? clock_->now() >= when : steady_clock_reached(when);
  }

 private:
  clock* clock_;
  time_point now_{};
  bool fresh_ = false;
};

/// One object lent to a call's callee, linked to the ones lent further out.
struct lent_object {
  const std::type_info* type;
  void* object;
  const lent_object* outer;
};

}  // namespace detail

class context {
 public:
  /// A context on the real clock, with no deadline and no stop token.
  context() noexcept = default;
  /// A context on `time_source` (a manual clock in tests). The clock must outlive the context.
  explicit context(stockade::clock& time_source) noexcept
      : time_(&time_source == &real_clock::instance() ? nullptr : &time_source) {}

  context(const context&) = delete;
  context& operator=(const context&) = delete;
  ~context() = default;

  // --- setup, before the call --------------------------------------------------------------
  context& set_deadline(time_point deadline) noexcept {
    deadline_ = std::min(deadline_, deadline);
    return *this;
  }
  context& set_timeout(duration budget) noexcept {
    return set_deadline(deadline_after(now(), budget));
  }
  context& set_stop_token(std::stop_token token) noexcept {
    caller_stop_ = std::move(token);
    return *this;
  }
  context& set_name(std::string_view name) noexcept {
    name_ = name;
    return *this;
  }

  // --- time --------------------------------------------------------------------------------
  stockade::clock& clock() const noexcept { return time_.source(); }

  /// The time at the start of this step of the call: read once, shared by every layer until
  /// something waits or the callee returns. Policies use this rather than reading the clock.
  time_point now() noexcept { return time_.now(); }
  /// Reads the clock again (e.g. to measure how long the callee took).
  time_point refresh_now() noexcept { return time_.refresh(); }
  /// Marks the cached time as stale; the next now() reads the clock.
  void forget_now() noexcept { time_.forget(); }
  /// now() if this step has read it, else the clock's recent(): up to one tick old, never
  /// ahead. For refusals that would otherwise pay a clock read to say "not yet".
  time_point recent_now() const noexcept { return time_.recent(); }

  // --- deadline ----------------------------------------------------------------------------
  time_point deadline() const noexcept { return deadline_; }
  bool has_deadline() const noexcept { return deadline_ != no_deadline; }
  /// Time left before the deadline: duration::max() without one, zero once it has passed.
  /// Reads the clock (with a deadline): a callee that loops or makes several requests sees the
  /// time it really has left, not the time left when its attempt began.
  duration remaining() noexcept {
    if (!has_deadline()) return duration::max();
    const time_point at = refresh_now();
    return at >= deadline_ ? duration::zero() : deadline_ - at;
  }
  /// True once the deadline has passed; reads the clock, like remaining().
  bool expired() noexcept { return has_deadline() && refresh_now() >= deadline_; }

  // --- cancellation ------------------------------------------------------------------------
  /// True once the callee should stop: the caller's token fired or the deadline has passed.
  /// The way for a callee to poll: it arms nothing and, on the real clock, reads the exact time
  /// only within one kernel tick of the deadline (a coarse reading, never ahead, before that).
  bool stop_requested() const noexcept {
    return caller_stop_.stop_requested() || (has_deadline() && time_.reached(deadline_));
  }
  /// A std::stop_token that fires with stop_requested(), for whatever takes one (a
  /// std::stop_callback, condition_variable_any::wait, a library call that can be cancelled).
  /// With a deadline, it costs the std::stop_source's shared state (one allocation) and a timer,
  /// paid only by calls that ask for it; to poll, stop_requested() is cheaper.
  std::stop_token stop_token() {
    if (!has_deadline()) return caller_stop_;
    return stop_->arm(clock(), now(), deadline_, caller_stop_);
  }
  /// The caller's own token, without the deadline: what a policy reads to tell "cancelled" from
  /// "out of time".
  const std::stop_token& caller_stop_token() const noexcept { return caller_stop_; }

  // --- waiting, always bounded by the deadline and the caller's stop token ---------------
  /// Sleeps until `until`; true only if it slept that long (not cut by the deadline or a stop).
  bool sleep_until(time_point until) {
    const time_point limit = std::min(until, deadline_);
    if (caller_stop_.stop_requested()) return false;
    if (limit <= now()) return limit == until;  // nothing to wait for: no timer at all
    detail::parking_spot spot;
    const bool slept =
        detail::park_until(clock(), limit, timer::purpose::sleep, caller_stop_, spot);
    forget_now();
    return slept && limit == until;
  }
  bool sleep_for(duration length) { return sleep_until(saturating_add(now(), length)); }

  /// Waits for a turn in a policy's queue. Call it with `lock` (the policy's mutex) held and
  /// `self` queued; whoever serves `self` does so under that mutex (waiter::serve). Returns with
  /// `lock` held: true if served; false if `until`, the deadline or a stop came first, and then
  /// the caller takes `self` out of its queue. May throw if the clock cannot take the wait's
  /// timer; `self` is then still queued and `lock` held.
  bool wait_for_turn(std::unique_lock<std::mutex>& lock, detail::waiter& self, time_point until) {
    detail::parking_spot spot;
    self.resume = &detail::parking_spot::wake;
    self.target = &spot;
    lock.unlock();
    try {
      (void)detail::park_until(clock(), std::min(until, deadline_), timer::purpose::wait,
                               caller_stop_, spot);
    } catch (...) {
      lock.lock();  // from here on nobody resumes `self`, so `spot` may go
      self.resume = nullptr;
      throw;
    }
    lock.lock();
    self.resume = nullptr;
    forget_now();
    return self.served;
  }

  /// With `lock` (a policy's mutex) held, waits until `ready()`, `until`, the deadline or a
  /// stop; returns ready(). Whoever makes ready() true serves `queue` under that mutex
  /// (detail::serve_all).
  template <class Ready>
  bool wait_until(std::unique_lock<std::mutex>& lock, detail::waiter_queue<detail::waiter>& queue,
                  time_point until, Ready&& ready) {
    while (!ready()) {
      detail::waiter self;
      queue.push_back(self);
      bool served = false;
      try {
        served = wait_for_turn(lock, self, until);
      } catch (...) {
        queue.erase(self);
        throw;
      }
      if (!served) {
        queue.erase(self);
        return ready();
      }
    }
    return true;
  }

  // --- attempts ----------------------------------------------------------------------------
  /// 1 for the first attempt; a retry layer counts up.
  int attempt() const noexcept { return attempt_; }
  /// Starts an attempt: sets its number and forgets the cached time.
  void begin_attempt(int number) noexcept {
    attempt_ = number;
    forget_now();
  }

  // --- identity and hand-over --------------------------------------------------------------
  std::string_view name() const noexcept { return name_; }

  /// The object a layer lends this call's callee (a resource's leased connection; see
  /// lend_scope), found by its type: the innermost one of type T, or null.
  template <class T>
  T* find_resource() const noexcept {
    for (const detail::lent_object* link = lent_; link != nullptr; link = link->outer) {
      if (*link->type == typeid(T)) return static_cast<T*>(link->object);
    }
    return nullptr;
  }
  template <class T>
  T& resource() const {
    if (T* found = find_resource<T>()) return *found;
    throw std::logic_error("stockade::context: no resource of the requested type in this call");
  }

  /// at + length, at most no_deadline ("never"): for times that may mean "never", such as an
  /// age limit of duration::max().
  static time_point saturating_add(time_point at, duration length) noexcept {
    return detail::add_up_to(at, length, no_deadline);
  }
  /// The deadline `length` after `at`: like saturating_add, but at most latest_deadline, so a
  /// limit however long stays a deadline and is never read as "no deadline".
  static time_point deadline_after(time_point at, duration length) noexcept {
    return detail::add_up_to(at, length, latest_deadline);
  }

 private:
  friend class deadline_scope;
  template <class T>
  friend class lend_scope;

  detail::cached_time time_;
  int attempt_ = 1;
  time_point deadline_ = no_deadline;
  std::stop_token caller_stop_;
  detail::deadline_stop base_stop_;
  detail::deadline_stop* stop_ = &base_stop_;
  std::string_view name_;
  const detail::lent_object* lent_ = nullptr;  // innermost first, each in its lender's frame
};

/// Narrows a context's deadline for its lifetime (a timeout layer's scope), then restores it.
/// An inner scope can only shorten the deadline, never extend it.
// g++ 12 warns that the context keeps the address of this scope's stop state; the destructor
// puts the previous one back before the scope ends, which the warning cannot see.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdangling-pointer"
#endif
class deadline_scope {
 public:
  deadline_scope(context& ctx, time_point deadline) noexcept
      : ctx_(ctx),
        saved_deadline_(ctx.deadline_),
        saved_stop_(ctx.stop_),
        narrowed_(deadline < ctx.deadline_) {
    if (narrowed_) {
      ctx.deadline_ = deadline;
      ctx.stop_ = &own_stop_;
    }
  }
  deadline_scope(const deadline_scope&) = delete;
  deadline_scope& operator=(const deadline_scope&) = delete;
  ~deadline_scope() {
    ctx_.deadline_ = saved_deadline_;
    ctx_.stop_ = saved_stop_;
  }

  /// True if this scope's deadline is earlier than the one it found.
  bool narrowed() const noexcept { return narrowed_; }

 private:
  context& ctx_;
  time_point saved_deadline_;
  detail::deadline_stop* saved_stop_;
  bool narrowed_;
  detail::deadline_stop own_stop_;
};
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#pragma GCC diagnostic pop
#endif

/// Lends `object` to the callee of this call for the scope's lifetime (ctx.resource<T>() finds
/// it): how a resource layer hands its leased instance down the stack. Scopes nest: an inner
/// object of the same type hides the outer one until its scope ends, and objects of other types
/// stay visible.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdangling-pointer"  // as for deadline_scope: unlinked on exit
#endif
template <class T>
class lend_scope {
 public:
  lend_scope(context& ctx, T* object) noexcept
      : ctx_(ctx), link_{&typeid(T), static_cast<void*>(object), ctx.lent_} {
    ctx.lent_ = &link_;
  }
  lend_scope(const lend_scope&) = delete;
  lend_scope& operator=(const lend_scope&) = delete;
  ~lend_scope() { ctx_.lent_ = link_.outer; }

 private:
  context& ctx_;
  detail::lent_object link_;
};
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#pragma GCC diagnostic pop
#endif

}  // namespace stockade
