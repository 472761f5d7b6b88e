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
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <string_view>
#include <typeinfo>

#include "classifier.hpp"
#include "clock.hpp"
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

/// A stop source that fires at a deadline and whenever the caller's own token fires.
/// Created disarmed (no allocation); armed only when a callee asks for a stop token.
class deadline_stop {
 public:
  bool armed() const noexcept { return state_ != nullptr; }
  bool stop_requested() const noexcept { return state_ && state_->source.stop_requested(); }

  std::stop_token arm(clock& on, time_point deadline, const std::stop_token& caller) {
    if (!state_) {
      // Kept only once scheduled: if scheduling throws, the next call arms again instead of
      // handing out a token that would never fire at the deadline.
      auto armed = std::make_unique<armed_state>(on);
      armed->link.emplace(caller, forward_stop{&armed->source});
      armed->ticket = on.schedule_stop(deadline, armed->source);
      state_ = std::move(armed);
    }
    return state_->source.get_token();
  }

 private:
  struct forward_stop {
    std::stop_source* target;
    void operator()() const noexcept { target->request_stop(); }
  };
  // Allocated only when armed, so an unarmed context carries one null pointer.
  struct armed_state {
    explicit armed_state(clock& on) : timer_clock(on) {}
    armed_state(const armed_state&) = delete;
    armed_state& operator=(const armed_state&) = delete;
    ~armed_state() {
      if (ticket != 0) timer_clock.cancel_stop(ticket);
    }
    clock& timer_clock;
    std::uint64_t ticket = 0;
    std::stop_source source;
    std::optional<std::stop_callback<forward_stop>> link;  // destroyed before source
  };
  std::unique_ptr<armed_state> state_;
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
  /// fires when the deadline passes; that costs an allocation and a timer entry, paid only by
  /// calls that ask for the token.
  std::stop_token stop_token() {
    if (!has_deadline()) return caller_stop_;
    return stop_->arm(clock(), deadline_, caller_stop_);
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
    const bool slept = clock().sleep_until(limit, caller_stop_);
    forget_now();
    return slept && limit == until;
  }
  bool sleep_for(duration length) { return sleep_until(saturating_add(now(), length)); }

  /// With `lock` held, waits on `cv` until `ready()`, `until`, the deadline or a stop; returns
  /// ready(). Whoever makes ready() true must notify `cv`.
  template <class Ready>
  bool wait_until(std::unique_lock<std::mutex>& lock, std::condition_variable_any& cv,
                  time_point until, Ready&& ready) {
    const bool result = clock().wait_until(lock, cv, std::min(until, deadline_), caller_stop_,
                                           detail::function_ref<bool()>(ready));
    forget_now();
    return result;
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
