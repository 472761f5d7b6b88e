// The coroutine driver of a wait, for stockade's own task: the task suspends and a timer (or
// the caller's stop) posts it to its scheduler, which resumes it; no thread blocks. It is the
// counterpart of detail/parking.hpp, with the same rules: bounded by the deadline and the
// caller's stop token, and the cached "now" is forgotten after it.
// Invariant: the task is posted once, and only after both the wait has ended (timer or stop,
// whichever came first) and await_suspend has finished with the awaiter, so a scheduler on
// another thread never resumes a task whose awaiter is still being set up.
#pragma once

#include <algorithm>
#include <atomic>
#include <coroutine>
#include <optional>
#include <stdexcept>
#include <stop_token>

#include "../context.hpp"
#include "../task.hpp"
#include "../timer.hpp"

namespace stockade::detail {

/// `co_await task_sleep{ctx, until}`: true only if it slept until `until` (not cut short by
/// the deadline or a stop), as context::sleep_until.
class task_sleep {
 public:
  task_sleep(context& ctx, time_point until) noexcept
      : ctx_(ctx), until_(until), limit_(std::min(until, ctx.deadline())) {}
  task_sleep(const task_sleep&) = delete;
  task_sleep& operator=(const task_sleep&) = delete;
  /// A frame destroyed while it sleeps (its runtime went away) takes its timer and stop link
  /// with it. A task must not be destroyed once its wait has ended and it is queued to resume:
  /// cancel a task through the caller's stop token instead, and let it finish.
  ~task_sleep() {
    if (armed_ && !resumed_) {
      on_stop_.reset();
      (void)ctx_.clock().cancel(alarm_);
    }
  }

  bool await_ready() noexcept {
    if (ctx_.caller_stop_token().stop_requested()) {
      slept_ = false;
      return true;
    }
    if (limit_ <= ctx_.now()) {  // nothing to wait for: no timer at all
      slept_ = limit_ == until_;
      return true;
    }
    return false;
  }

  template <class Promise>
  void await_suspend(std::coroutine_handle<Promise> waiting) {
    where_ = scheduler_of(waiting);
    if (where_ == nullptr) {
      throw std::logic_error(
          "stockade: a coroutine wait needs a runtime to resume it; await the pipeline from a "
          "stockade::task run by a runtime (or use the runtime's own integration)");
    }
    ready_.handle = waiting;
    ctx_.clock().arm(alarm_, limit_);  // if it throws, nothing is armed and nothing posted
    armed_ = true;
    on_stop_.emplace(ctx_.caller_stop_token(), stop_now{this});  // runs now if stopped
    arrive();  // the last touch of this awaiter before the task may be resumed
  }

  bool await_resume() {
    resumed_ = true;
    if (armed_) {
      on_stop_.reset();  // waits for a stop callback running on another thread
      slept_ = !ctx_.clock().cancel(alarm_);
      ctx_.forget_now();
    }
    return slept_ && limit_ == until_;
  }

 private:
  struct stop_now {
    task_sleep* self;
    void operator()() const noexcept { self->end(); }
  };
  static void due(void* self) noexcept { static_cast<task_sleep*>(self)->end(); }

  // The timer and the stop may both come; the first one ends the wait.
  void end() noexcept {
    if (!ended_.exchange(true, std::memory_order_acq_rel)) arrive();
  }
  // Two arrivals post the task: the wait's end and the end of await_suspend.
  void arrive() noexcept {
    if (arrivals_.fetch_add(1, std::memory_order_acq_rel) == 1) where_->post(ready_);
  }

  context& ctx_;
  time_point until_;
  time_point limit_;
  bool slept_ = false;
  bool armed_ = false;
  bool resumed_ = false;
  scheduler* where_ = nullptr;
  scheduler::resumption ready_;
  std::atomic<bool> ended_{false};
  std::atomic<int> arrivals_{0};
  timer alarm_{timer::purpose::sleep, &task_sleep::due, this};
  std::optional<std::stop_callback<stop_now>> on_stop_;
};

}  // namespace stockade::detail
