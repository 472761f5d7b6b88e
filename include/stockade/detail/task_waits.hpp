// The coroutine driver of a wait, for stockade's own task: the task suspends and a timer, the
// caller's stop, or whoever serves it (a waiter queue) posts it to its scheduler, which resumes
// it; no thread blocks. It is the counterpart of detail/parking.hpp and of the context's
// blocking waits, with the same rules: bounded by the deadline and the caller's stop token, and
// the cached "now" is forgotten after it.
// Invariant: the task is posted once, and only after both the wait has ended (timer, stop or
// serve, whichever came first) and await_suspend has finished with the awaiter, so a scheduler
// on another thread never resumes a task whose awaiter is still being set up.
#pragma once

#include <algorithm>
#include <atomic>
#include <coroutine>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <stop_token>

#include "../context.hpp"
#include "../task.hpp"
#include "../timer.hpp"
#include "waiter_queue.hpp"

namespace stockade::detail {

/// What every coroutine wait shares: a timer at the wait's limit, a link to the caller's stop
/// token, and the rule that the first of them (or a serve) posts the task, once.
class task_wait {
 public:
  task_wait(const task_wait&) = delete;
  task_wait& operator=(const task_wait&) = delete;

 protected:
  task_wait(context& ctx, timer::purpose why) noexcept
      : ctx_(ctx), alarm_(why, &task_wait::due, this) {}
  /// A frame destroyed while it waits (its runtime went away) takes its timer and stop link
  /// with it. A task must not be destroyed once its wait has ended and it is queued to resume:
  /// cancel a task through the caller's stop token instead, and let it finish.
  ~task_wait() {
    if (armed_ && !finished_) {
      on_stop_.reset();
      (void)ctx_.clock().cancel(alarm_);
    }
  }

  /// True from begin() until finish(): the task is suspended in this wait.
  bool pending() const noexcept { return armed_ && !finished_; }

  /// In await_suspend: arms the timer at `limit` and links the stop, for `waiting`, whose
  /// scheduler will resume it. Throws (nothing armed, nothing posted) without a scheduler, or
  /// if the clock cannot take the timer. The caller ends await_suspend with arrive().
  template <class Promise>
  void begin(std::coroutine_handle<Promise> waiting, time_point limit) {
    where_ = scheduler_of(waiting);
    if (where_ == nullptr) {
      throw std::logic_error(
          "stockade: a coroutine wait needs a runtime to resume it; await the pipeline from a "
          "stockade::task run by a runtime (or use the runtime's own integration)");
    }
    ready_.handle = waiting;
    ctx_.clock().arm(alarm_, limit);
    armed_ = true;
    on_stop_.emplace(ctx_.caller_stop_token(), stop_now{this});  // runs now if stopped
  }

  /// In await_resume: unlinks the stop and the timer; true if the timer fired.
  bool finish() noexcept {
    finished_ = true;
    if (!armed_) return false;
    on_stop_.reset();  // waits for a stop callback running on another thread
    const bool fired = !ctx_.clock().cancel(alarm_);
    ctx_.forget_now();
    return fired;
  }

  /// The wait is over (timer, stop, or a serve); the first call counts.
  void end() noexcept {
    if (!ended_.exchange(true, std::memory_order_acq_rel)) arrive();
  }
  /// Two arrivals post the task: the wait's end and the end of await_suspend.
  void arrive() noexcept {
    if (arrivals_.fetch_add(1, std::memory_order_acq_rel) == 1) where_->post(ready_);
  }

  context& ctx_;

 private:
  struct stop_now {
    task_wait* self;
    void operator()() const noexcept { self->end(); }
  };
  static void due(void* self) noexcept { static_cast<task_wait*>(self)->end(); }

  bool armed_ = false;
  bool finished_ = false;
  scheduler* where_ = nullptr;
  scheduler::resumption ready_;
  std::atomic<bool> ended_{false};
  std::atomic<int> arrivals_{0};
  timer alarm_;
  std::optional<std::stop_callback<stop_now>> on_stop_;
};

/// `co_await task_sleep{ctx, until}`: true only if it slept until `until` (not cut short by
/// the deadline or a stop), as context::sleep_until.
class task_sleep : task_wait {
 public:
  task_sleep(context& ctx, time_point until) noexcept
      : task_wait(ctx, timer::purpose::sleep),
        until_(until),
        limit_(std::min(until, ctx.deadline())) {}

  bool await_ready() noexcept {
    if (ctx_.caller_stop_token().stop_requested()) return true;  // slept_ stays false
    if (limit_ <= ctx_.now()) {  // nothing to wait for: no timer at all
      slept_ = limit_ == until_;
      return true;
    }
    return false;
  }
  template <class Promise>
  void await_suspend(std::coroutine_handle<Promise> waiting) {
    begin(waiting, limit_);
    arrive();  // the last touch of this awaiter before the task may be resumed
  }
  bool await_resume() noexcept {
    if (!finish()) return slept_;
    return limit_ == until_;
  }

 private:
  time_point until_;
  time_point limit_;
  bool slept_ = false;
};

/// `co_await task_turn{ctx, lock, self, until}`: waits for a turn in a policy's queue, as
/// context::wait_for_turn: called with `lock` (the policy's mutex) held and `self` queued,
/// returns with `lock` held, true if served; false if `until`, the deadline or a stop came
/// first (the caller then takes `self` out of its queue). If it throws, `self` is still queued
/// and `lock` held.
class task_turn : task_wait {
 public:
  task_turn(context& ctx, std::unique_lock<std::mutex>& lock, waiter& self,
            time_point until) noexcept
      : task_wait(ctx, timer::purpose::wait),
        lock_(lock),
        self_(self),
        limit_(std::min(until, ctx.deadline())) {}

  task_turn(const task_turn&) = delete;
  task_turn& operator=(const task_turn&) = delete;
  /// A frame destroyed while queued: `self` is made unservable under the lock (which is then
  /// held, for the policy to take `self` out of its queue) before this awaiter goes.
  ~task_turn() {
    if (pending()) {
      if (!lock_.owns_lock()) lock_.lock();
      self_.resume = nullptr;
    }
  }

  bool await_ready() const noexcept { return false; }
  template <class Promise>
  void await_suspend(std::coroutine_handle<Promise> waiting) {
    begin(waiting, limit_);
    self_.resume = &task_turn::served;
    self_.target = this;
    lock_.unlock();  // from here a releaser may serve `self` (posting; it resumes nothing)
    arrive();
  }
  bool await_resume() {
    (void)finish();
    lock_.lock();
    self_.resume = nullptr;
    return self_.served;
  }

 private:
  static void served(void* self) noexcept { static_cast<task_turn*>(self)->end(); }

  std::unique_lock<std::mutex>& lock_;
  waiter& self_;
  time_point limit_;
};

}  // namespace stockade::detail
