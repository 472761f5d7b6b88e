// One context per call, passed by reference through every layer of a pipeline: attempt number,
// deadline, stop token, clock and a name for events. What an attempt came to is not here: each
// layer returns it (stockade::result).
// Invariant: every wait a policy makes goes through the context, so it is bounded by the call's
// deadline and stop token, and the cached "now" is re-read after it.
#pragma once

#include <algorithm>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <string_view>
#include <typeinfo>

#include "classifier.hpp"
#include "clock.hpp"
#include "detail/parking.hpp"
#include "detail/waiter_queue.hpp"
#include "timer.hpp"
#include "verdict.hpp"

namespace stockade {

class context;

namespace detail {

/// How one call's classifier classifies: exceptions, and values of the call's result type as
/// policies carry them (detail::stored_result_t), so a policy that returns a value in place of
/// the callee (an injected fault, a fallback) gets it classified like a real result. The pipeline
/// builds one per (classifier, result type) at compile time: binding a call costs two stores.
struct classifier_binding {
  stockade::outcome (*classify_exception)(const void* classifier, const std::exception_ptr&);
  const std::type_info* result_type;  // null: values cannot be classified through the context
  stockade::outcome (*classify_result)(const void* classifier, const void* result);
};

inline stockade::outcome classify_with_defaults(const void* /*unused*/,
                                                const std::exception_ptr& failure) {
  return default_rules::classify_exception(failure);
}
/// What a context uses outside any pipeline: the default rules, for exceptions only.
inline constexpr classifier_binding default_classifier_binding{&classify_with_defaults, nullptr,
                                                               nullptr};

/// A stop source that fires at a deadline and whenever the caller's own token fires. Created
/// disarmed; armed only when a callee asks for a stop token. Its timer and its link to the
/// caller's token live here, in place: arming costs the std::stop_source's shared state (the
/// one allocation std::stop_token needs) and one uncontended lock of a timer shard.
class deadline_stop {
 public:
  deadline_stop() noexcept = default;
  deadline_stop(const deadline_stop&) = delete;
  deadline_stop& operator=(const deadline_stop&) = delete;
  ~deadline_stop() {
    if (timer_clock_ != nullptr) (void)timer_clock_->cancel(timer_);
  }

  bool armed() const noexcept { return source_.stop_possible(); }
  bool stop_requested() const noexcept { return source_.stop_requested(); }

  /// `now`: the caller's idea of the current time; a deadline already reached stops at once.
  std::stop_token arm(clock& on, time_point now, time_point deadline,
                      const std::stop_token& caller) {
    if (!source_.stop_possible()) {
      source_ = std::stop_source{};
      link_.emplace(caller, forward_stop{&source_});
      if (deadline <= now) {
        source_.request_stop();
      } else {
        try {
          on.arm(timer_, deadline);
        } catch (...) {
          // Not kept: the next call arms again instead of handing out a token that would never
          // fire at the deadline.
          link_.reset();
          source_ = std::stop_source{std::nostopstate};
          throw;
        }
        timer_clock_ = &on;
      }
    }
    return source_.get_token();
  }

 private:
  struct forward_stop {
    std::stop_source* target;
    void operator()() const noexcept { target->request_stop(); }
  };
  static void deadline_reached(void* self) noexcept {
    static_cast<deadline_stop*>(self)->source_.request_stop();
  }

  std::stop_source source_{std::nostopstate};
  std::optional<std::stop_callback<forward_stop>> link_;  // destroyed before source_
  timer timer_{timer::purpose::alarm, &deadline_reached, this};
  clock* timer_clock_ = nullptr;  // set once timer_ is armed
};

}  // namespace detail

class context {
 public:
  /// A context on the real clock, with no deadline and no stop token.
  context() noexcept = default;
  /// A context on `time_source` (a manual clock in tests). The clock must outlive the context.
  explicit context(stockade::clock& time_source) noexcept
      : clock_(&time_source == &real_clock::instance() ? nullptr : &time_source) {}

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
  stockade::clock& clock() const noexcept { return clock_ ? *clock_ : real_clock::instance(); }

  /// The time at the start of this step of the call: read once, shared by every layer until
  /// something waits or the callee returns. Policies use this rather than reading the clock.
  time_point now() noexcept {
    if (!now_is_fresh_) refresh_now();
    return now_;
  }
  /// Reads the clock again (e.g. to measure how long the callee took).
  time_point refresh_now() noexcept {
    now_ = clock_ ? clock_->now() : std::chrono::steady_clock::now();
    now_is_fresh_ = true;
    return now_;
  }
  /// Marks the cached time as stale; the next now() reads the clock.
  void forget_now() noexcept { now_is_fresh_ = false; }

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
  /// The token to pass to anything that can be cancelled. With a deadline, the token also
  /// fires when the deadline passes; that costs the stop state's allocation and a timer, paid
  /// only by calls that ask for the token.
  std::stop_token stop_token() {
    if (!has_deadline()) return caller_stop_;
    return stop_->arm(clock(), now(), deadline_, caller_stop_);
  }
  /// The caller's own token, without the deadline.
  const std::stop_token& caller_stop_token() const noexcept { return caller_stop_; }
  bool stop_requested() const noexcept {
    return caller_stop_.stop_requested() || stop_->stop_requested();
  }

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

  /// Used by the pipeline: which classifier decides this call's outcomes, and how.
  void use_classifier(const void* classifier, const detail::classifier_binding& binding) noexcept {
    classifier_ = classifier;
    binding_ = &binding;
  }

  /// Classifies `failure` with this call's classifier, whatever is recorded already. For a
  /// policy that raises an exception in place of the callee (fault injection) and records it.
  stockade::outcome classify_exception(const std::exception_ptr& failure) const {
    return binding_->classify_exception(classifier_, failure);
  }

  /// Classifies a value a policy returns in place of the callee with this call's classifier.
  /// nullopt if R is not the callee's result type as policies see it (or no pipeline set one).
  template <class R>
  std::optional<stockade::outcome> classify_result(const R& result) const {
    if (binding_->result_type == nullptr || *binding_->result_type != typeid(R)) {
      return std::nullopt;
    }
    return binding_->classify_result(classifier_, &result);
  }

  // --- identity and hand-over --------------------------------------------------------------
  std::string_view name() const noexcept { return name_; }

  /// A layer can hand an object to the callable (e.g. a leased connection).
  template <class T>
  void set_resource(T* resource) noexcept {
    resource_ = resource;
    resource_type_ = resource ? &typeid(T) : nullptr;
  }
  template <class T>
  T* find_resource() const noexcept {
    return resource_type_ != nullptr && *resource_type_ == typeid(T) ? static_cast<T*>(resource_)
                                                                     : nullptr;
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

  stockade::clock* clock_ = nullptr;  // null: the real clock, read without a virtual call
  time_point now_{};
  bool now_is_fresh_ = false;
  int attempt_ = 1;
  time_point deadline_ = no_deadline;
  std::stop_token caller_stop_;
  detail::deadline_stop base_stop_;
  detail::deadline_stop* stop_ = &base_stop_;
  const void* classifier_ = nullptr;
  const detail::classifier_binding* binding_ = &detail::default_classifier_binding;
  std::string_view name_;
  void* resource_ = nullptr;
  const std::type_info* resource_type_ = nullptr;
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

}  // namespace stockade
