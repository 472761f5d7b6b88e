// A timeout for callables that cannot be cancelled: the call runs on a thread of its own, the
// caller stops waiting at the deadline, and the abandoned call runs on to its end, its result
// dropped. DANGEROUS by nature (see docs/timeout.md): the abandoned call still holds whatever it
// uses. Invariant: everything the detached thread touches is owned by a shared_ptr'd call state
// (the callable is copied in), never by the caller's frame, which may be gone.
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>

#include "context.hpp"
#include "detail/validate.hpp"
#include "detail/waiter_queue.hpp"
#include "errors.hpp"
#include "events.hpp"
#include "pipeline.hpp"
#include "policy.hpp"
#include "verdict.hpp"

namespace stockade {

struct detached_timeout_options {
  /// Abandoned calls still running beyond which new calls are refused
  /// (errc::detached_limit_reached). Each one holds a thread and whatever it is stuck on; a few
  /// mean the dependency hangs, and more threads would not help it. Polly's pessimistic timeout
  /// has no such bound (its docs warn of the leak); 8 is our choice.
  std::size_t max_abandoned = 8;

  constexpr void validate() const {
    detail::require(max_abandoned >= 1, "detached_timeout", "max_abandoned", "must be at least 1",
                    max_abandoned);
  }
};

/// Reported when the caller stopped waiting and left a detached call running.
struct detached_abandoned {
  static constexpr event_kind kind = event_kind::detached_abandoned;
  std::string_view name;
  duration limit;
  std::size_t abandoned_running;  ///< including this one
};

namespace detail {

/// Counts the abandoned calls still running, shared by every copy of a detached_timeout and by
/// the calls themselves (so it outlives the policy object if they do).
class abandoned_tracker {
 public:
  std::size_t running() const {
    const std::lock_guard lock(mutex_);
    return running_;
  }
  std::size_t add() {
    const std::lock_guard lock(mutex_);
    return ++running_;
  }
  void finished() {
    {
      const std::lock_guard lock(mutex_);
      --running_;
    }
    changed_.notify_all();
  }
  template <class Rep, class Period>
  bool await_at_most(std::size_t count, std::chrono::duration<Rep, Period> patience) const {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, patience, [&] { return running_ <= count; });
  }

 private:
  mutable std::mutex mutex_;
  mutable std::condition_variable changed_;
  std::size_t running_ = 0;
};

/// One detached call: the callable (a copy), its result slot, and the hand-over between the
/// detached thread and the caller, all kept alive by whichever of the two finishes last.
template <class F>
class detached_call {
 public:
  using result_type = callee_result_t<F>;
  using stored_type = stored_result_t<result_type>;

  detached_call(F callable, std::shared_ptr<abandoned_tracker> tracker, stockade::clock& on,
                time_point deadline, std::string_view name)
      : callable_(std::move(callable)),
        tracker_(std::move(tracker)),
        clock_(&on),
        deadline_(deadline),
        name_(name) {}

  /// Runs on the detached thread.
  void run() noexcept {
    {
      // Gone before the call is marked done: its destructor may still use the clock (to cancel
      // a stop timer), and the clock need only outlive the calls, not their clean-up.
      context inner(*clock_);
      inner.set_deadline(deadline_).set_stop_token(abandon_.get_token()).set_name(name_);
      try {
        if constexpr (std::is_void_v<result_type>) {
          call_with_context(callable_, inner);
          value_.emplace();
        } else {
          value_.emplace(call_with_context(callable_, inner));
        }
      } catch (...) {
        failure_ = std::current_exception();
      }
    }
    bool was_abandoned = false;
    {
      const std::lock_guard lock(mutex_);
      done_ = true;
      was_abandoned = abandoned_;
      serve_all(finished_);
    }
    if (was_abandoned) tracker_->finished();
  }

  /// Runs on the caller's thread: waits for the result until `deadline_`, the caller's deadline
  /// or its stop token. Returns false if it gave up (the call is then marked abandoned).
  bool await(context& ctx, std::size_t& abandoned_now) {
    std::unique_lock lock(mutex_);
    if (ctx.wait_until(lock, finished_, deadline_, [this] { return done_; })) return true;
    abandoned_ = true;
    abandoned_now = tracker_->add();
    lock.unlock();
    abandon_.request_stop();  // a callable that can look at its token may still stop early
    return false;
  }

  /// The result, once await() returned true. The exception is moved out, so the caller's
  /// thread holds its last reference and frees it: the detached thread, which may drop the
  /// call state last, never frees an exception the caller is still reading.
  result_type take() {
    if (failure_) std::rethrow_exception(std::exchange(failure_, nullptr));
    if constexpr (std::is_void_v<result_type>) {
      return;
    } else if constexpr (std::is_lvalue_reference_v<result_type>) {
      return value_->get();
    } else {
      return static_cast<result_type>(std::move(*value_));
    }
  }

 private:
  F callable_;
  std::shared_ptr<abandoned_tracker> tracker_;
  stockade::clock* clock_;
  time_point deadline_;
  std::string name_;  // a copy: the caller's name may not outlive an abandoned call
  std::stop_source abandon_;
  std::optional<stored_type> value_;
  std::exception_ptr failure_;
  std::mutex mutex_;
  waiter_queue<waiter> finished_;  // served when the call is done
  bool done_ = false;
  bool abandoned_ = false;
};

}  // namespace detail

/// Runs a callable on a new thread and waits for it at most `limit` (and never past the call's
/// deadline). Use it as the innermost step of a pipeline through bind():
///   stockade::detached_timeout legacy{2s};
///   policy(ctx, legacy.bind([conn] { return conn->blocking_query(); }));  // copies the lambda
/// It is not a pipeline layer on purpose: the layers inside a pipeline and the callee belong to
/// the caller's frame, which an abandoned call would outlive.
/// The clock the call's context uses must outlive every abandoned call.
template <class Observer = null_observer>
class detached_timeout {
 public:
  explicit detached_timeout(duration limit, detached_timeout_options options = {},
                            Observer observer = Observer{})
      : limit_((detail::require(limit > duration::zero(), "detached_timeout", "limit",
                                "must be positive", limit),
                limit)),
        options_((options.validate(), options)),
        observer_(std::move(observer)),
        tracker_(std::make_shared<detail::abandoned_tracker>()) {}

  /// Runs `f` (copied; it may take stockade::context& or nothing) on a new thread. Returns its
  /// value or rethrows its exception if it finishes in time; otherwise throws errc::timeout
  /// (errc::cancelled if the caller's stop token fired) and leaves it running. Refuses at once
  /// with errc::deadline_already_passed or errc::detached_limit_reached, without running f.
  template <class F>
  requires callee<std::decay_t<F>>
  auto run(context& ctx, F&& f) {
    using call = detail::detached_call<std::decay_t<F>>;
    static_assert(detail::does_its_work_before_returning<typename call::result_type>());
    const time_point start = ctx.now();
    // A callee's refusal is its exception; the classifier knows these codes for rejections.
    if (ctx.deadline() <= start) throw error(errc::deadline_already_passed);
    if (tracker_->running() >= options_.max_abandoned) throw error(errc::detached_limit_reached);
    const time_point deadline = std::min(ctx.deadline(), context::deadline_after(start, limit_));

    auto state =
        std::make_shared<call>(std::forward<F>(f), tracker_, ctx.clock(), deadline, ctx.name());
    std::thread([state] { state->run(); }).detach();

    std::size_t abandoned_now = 0;
    if (state->await(ctx, abandoned_now)) return state->take();
    detail::notify(observer_, detached_abandoned{ctx.name(), limit_, abandoned_now});
    throw error(ctx.caller_stop_token().stop_requested() ? errc::cancelled : errc::timeout);
  }

  /// A callee for a pipeline that runs `f` (copied) through run(); it shares this policy's count
  /// of abandoned calls.
  template <class F>
  requires callee<std::decay_t<F>>
  auto bind(F&& f) const {
    return [self = *this, f = std::decay_t<F>(std::forward<F>(f))](context& ctx) mutable {
      return self.run(ctx, f);
    };
  }

  /// Abandoned calls still running (they count against max_abandoned).
  std::size_t abandoned_running() const { return tracker_->running(); }

  /// Blocks (in real time, at most `patience`) until at most `count` abandoned calls still run;
  /// false if they did not finish in time. For orderly shutdown and for tests.
  template <class Rep, class Period>
  bool await_abandoned_at_most(std::size_t count,
                               std::chrono::duration<Rep, Period> patience) const {
    return tracker_->await_at_most(count, patience);
  }

  duration limit() const noexcept { return limit_; }
  const detached_timeout_options& options() const noexcept { return options_; }

 private:
  duration limit_;
  detached_timeout_options options_;
  [[no_unique_address]] Observer observer_;
  std::shared_ptr<detail::abandoned_tracker> tracker_;
};

template <class Rep, class Period>
detached_timeout(std::chrono::duration<Rep, Period>) -> detached_timeout<null_observer>;
template <class Rep, class Period>
detached_timeout(std::chrono::duration<Rep, Period>, detached_timeout_options)
    -> detached_timeout<null_observer>;

}  // namespace stockade
