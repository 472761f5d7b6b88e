// A deterministic single-threaded runtime for coroutine tests: tasks run on the thread that
// drives the runtime, in the order they became ready, and time moves only when nothing is ready
// (straight to the manual clock's next timer). Every coroutine test is instant and repeatable.
// Invariant: a posted task is resumed only by run_ready(), never by the thread that posted it,
// so a wait that ends under a policy's lock or inside a timer's action resumes nothing there.
#pragma once

#include <algorithm>
#include <coroutine>
#include <cstddef>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <utility>
#include <vector>

#include "manual_clock.hpp"
#include "task.hpp"

namespace stockade::testing {

class manual_runtime final : public scheduler {
 public:
  /// Puts `clock` in wait_for_advance mode: a sleep waits for the runtime to move time, as
  /// every other wait does, so that many tasks sleep at once.
  explicit manual_runtime(manual_clock& clock) noexcept : clock_(clock) {
    clock_.set_sleep_mode(manual_clock::sleeps::wait_for_advance);
  }
  manual_runtime(const manual_runtime&) = delete;
  manual_runtime& operator=(const manual_runtime&) = delete;
  ~manual_runtime() = default;

  manual_clock& clock() const noexcept { return clock_; }
  stockade::clock& time_source() noexcept override { return clock_; }

  /// From any thread (a blocking caller on another thread may hand a coroutine a slot).
  void post(resumption& ready) noexcept override {
    const std::lock_guard lock(mutex_);
    ready.next = nullptr;
    (tail_ != nullptr ? tail_->next : head_) = &ready;
    tail_ = &ready;
  }

  /// Resumes every task ready to run, and those they make ready, until none is; returns how
  /// many resumptions that took.
  std::size_t run_ready() {
    std::size_t resumed = 0;
    while (resumption* next = pop()) {
      next->handle.resume();
      ++resumed;
    }
    return resumed;
  }

  /// Starts `work` (it runs as far as its first wait at the next run_ready()) and keeps it; the
  /// returned reference stays valid as long as this runtime.
  template <class T>
  task<T>& spawn(task<T> work) {
    auto kept = std::make_unique<root_of<T>>(std::move(work), *this);
    root_of<T>& added = *kept;
    spawned_.push_back(std::move(kept));
    post(added.first);
    return added.work;
  }

  /// Runs ready work; when none is left, moves the clock to its next timer and fires it; until
  /// nothing is ready and no timer is armed. Returns the virtual time that passed.
  duration run_until_idle() {
    const time_point started = clock_.now();
    for (;;) {
      run_ready();
      const time_point next = clock_.next_wake();
      if (next == time_point::max()) return clock_.now() - started;
      clock_.advance_to(std::max(next, clock_.now()));
    }
  }

  /// Runs `work` to its end as run_until_idle() does, and returns its value (or rethrows its
  /// exception). Throws std::logic_error if it can never end: nothing ready and no timer armed.
  template <class T>
  T run(task<T> work) {
    task<T>& running = spawn(std::move(work));
    (void)run_until_idle();
    if (!running.done()) {
      throw std::logic_error(
          "stockade::testing::manual_runtime: the task waits for something no timer and no "
          "other task will bring (a deadlock)");
    }
    return running.take();
  }

 private:
  // A spawned task and its first resumption, kept together for the runtime's lifetime.
  struct root {
    root() = default;
    root(const root&) = delete;
    root& operator=(const root&) = delete;
    virtual ~root() = default;
    resumption first;
  };
  template <class T>
  struct root_of final : root {
    root_of(task<T> started, scheduler& where) : work(std::move(started)) {
      first.handle = work.start_on(where);
    }
    task<T> work;
  };

  resumption* pop() noexcept {
    const std::lock_guard lock(mutex_);
    resumption* first = head_;
    if (first != nullptr) {
      head_ = first->next;
      if (head_ == nullptr) tail_ = nullptr;
    }
    return first;
  }

  manual_clock& clock_;
  std::mutex mutex_;
  resumption* head_ = nullptr;
  resumption* tail_ = nullptr;
  std::vector<std::unique_ptr<root>> spawned_;
};

}  // namespace stockade::testing
