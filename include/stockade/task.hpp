// stockade's own coroutine type, for the coroutine path without an outside runtime: a lazy task
// that starts when awaited and hands control back to its awaiter when it ends (symmetric
// transfer: a chain of tasks ending one after another uses no stack). A task that waits (a
// retry's backoff, a queue) is resumed by its scheduler, inherited from the task that awaits it
// and set at the root by whoever runs it (stockade::testing::manual_runtime in tests).
// Invariant: a task's frame is destroyed only by its owner (the task object), never by the
// coroutine itself, so an awaiter always reads the result from a frame that still exists.
#pragma once

#include <coroutine>
#include <cstddef>
#include <exception>
#include <optional>
#include <type_traits>
#include <utility>

#include "clock.hpp"
#include "detail/frame_pool.hpp"

namespace stockade {

/// Where a suspended task continues: a runtime's queue of work ready to run. A wait posts its
/// task here when it ends (a timer fired, a slot was handed over) instead of resuming it on the
/// thread that ended it, which may be a timer's thread or hold another caller's lock.
class scheduler {
 public:
  /// A task ready to continue, linked through the waiter that posts it (no allocation).
  struct resumption {
    std::coroutine_handle<> handle;
    resumption* next = nullptr;
  };

  /// Queues `ready` to be resumed; may be called from any thread, and must not resume it here.
  virtual void post(resumption& ready) noexcept = 0;
  /// The clock its tasks' waits are timed on; a call made without a context of its own gets
  /// a context on it.
  virtual stockade::clock& time_source() noexcept = 0;

 protected:
  scheduler() = default;
  scheduler(const scheduler&) = default;
  scheduler& operator=(const scheduler&) = default;
  ~scheduler() = default;
};

template <class T = void>
class task;

namespace detail {

class task_promise_base {
 public:
  static void* operator new(std::size_t size) { return frame_pool::allocate(size); }
  static void operator delete(void* frame, std::size_t size) noexcept {
    frame_pool::deallocate(frame, size);
  }

  std::suspend_always initial_suspend() const noexcept { return {}; }

  struct final_awaiter {
    bool await_ready() const noexcept { return false; }
    template <class Promise>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<Promise> self) const noexcept {
      const std::coroutine_handle<> next = self.promise().continuation_;
      return next ? next : std::noop_coroutine();
    }
    void await_resume() const noexcept {}
  };
  final_awaiter final_suspend() const noexcept { return {}; }

  void unhandled_exception() noexcept { failure_ = std::current_exception(); }

  /// The scheduler this task's waits post to; null if it runs outside any runtime.
  scheduler* where() const noexcept { return where_; }

 protected:
  void rethrow_if_failed() const {
    if (failure_) std::rethrow_exception(failure_);
  }

 private:
  template <class>
  friend class stockade::task;

  std::coroutine_handle<> continuation_;
  scheduler* where_ = nullptr;
  std::exception_ptr failure_;
};

template <class T>
class task_promise : public task_promise_base {
 public:
  task<T> get_return_object() noexcept;
  template <class U>
  void return_value(U&& value) {
    value_.emplace(std::forward<U>(value));
  }
  T take() {
    rethrow_if_failed();
    return std::move(*value_);
  }

 private:
  std::optional<T> value_;
};

template <>
class task_promise<void> : public task_promise_base {
 public:
  task<void> get_return_object() noexcept;
  void return_void() const noexcept {}
  void take() const { rethrow_if_failed(); }
};

/// What a coroutine's promise says about where it is resumed: the scheduler of a stockade
/// task, none for any other coroutine.
template <class Promise>
scheduler* scheduler_of(std::coroutine_handle<Promise> awaiting) noexcept {
  if constexpr (requires { awaiting.promise().where(); }) {
    return awaiting.promise().where();
  } else {
    return nullptr;
  }
}

/// `co_await current_scheduler{}` in a stockade task: the scheduler it runs on (null outside
/// any runtime), without suspending.
struct current_scheduler {
  scheduler* found = nullptr;
  bool await_ready() const noexcept { return false; }
  template <class Promise>
  bool await_suspend(std::coroutine_handle<Promise> running) noexcept {
    found = scheduler_of(running);
    return false;  // go on at once
  }
  scheduler* await_resume() const noexcept { return found; }
};

}  // namespace detail

/// A lazy coroutine returning T: `co_await` it (once) to run it and get its value, or its
/// exception rethrown. Move-only; destroying a task that has not finished destroys its frame.
template <class T>
class [[nodiscard]] task {
 public:
  using promise_type = detail::task_promise<T>;
  using value_type = T;

  task(task&& other) noexcept : handle_(std::exchange(other.handle_, {})) {}
  task& operator=(task&& other) noexcept {
    if (this != &other) {
      if (handle_) handle_.destroy();
      handle_ = std::exchange(other.handle_, {});
    }
    return *this;
  }
  task(const task&) = delete;
  task& operator=(const task&) = delete;
  ~task() {
    if (handle_) handle_.destroy();
  }

  /// True once the task has run to its end (its value or exception is ready).
  bool done() const noexcept { return handle_ && handle_.done(); }

  /// Starts the task, which inherits the awaiting coroutine's scheduler, and resumes the
  /// awaiting coroutine with its value when it ends.
  auto operator co_await() && noexcept { return awaiter{handle_}; }

  /// For a runtime that runs this task as a root (no awaiter): the frame to resume first, its
  /// scheduler, and, once done(), its value or exception.
  std::coroutine_handle<> start_on(scheduler& where) noexcept {
    handle_.promise().where_ = &where;
    return handle_;
  }
  T take() { return handle_.promise().take(); }

 private:
  friend promise_type;
  explicit task(std::coroutine_handle<promise_type> handle) noexcept : handle_(handle) {}

  struct awaiter {
    std::coroutine_handle<promise_type> started;
    bool await_ready() const noexcept { return false; }
    template <class Promise>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<Promise> awaiting) noexcept {
      started.promise().continuation_ = awaiting;
      started.promise().where_ = detail::scheduler_of(awaiting);
      return started;
    }
    T await_resume() { return started.promise().take(); }
  };

  std::coroutine_handle<promise_type> handle_;
};

template <class T>
task<T> detail::task_promise<T>::get_return_object() noexcept {
  return task<T>(std::coroutine_handle<task_promise<T>>::from_promise(*this));
}
inline task<void> detail::task_promise<void>::get_return_object() noexcept {
  return task<void>(std::coroutine_handle<task_promise<void>>::from_promise(*this));
}

}  // namespace stockade
