// The timers a clock holds, earliest first, linked through the timers themselves (no allocation),
// and the protocol by which a clock fires or cancels one. Both clocks use it: the real clock's
// timer thread (one list per shard) and the manual clock.
// Invariant: list operations run under the owner's mutex. A timer taken for firing is unlinked
// and marked `firing` under that mutex; its action then runs outside the mutex, and the last
// thing the firing thread does with the timer is to mark it idle, so a cancel that finds it
// firing waits for that mark and the owner may destroy the timer as soon as cancel returns.
#pragma once

#include <cstddef>
#include <thread>
#include <utility>

#include "../timer.hpp"

namespace stockade::detail {

class timer_list {
 public:
  timer_list() noexcept = default;
  timer_list(const timer_list&) = delete;
  timer_list& operator=(const timer_list&) = delete;
  ~timer_list() = default;

  bool empty() const noexcept { return head_ == nullptr; }
  /// The earliest due time; `none` if the list is empty.
  time_point earliest(time_point none) const noexcept { return head_ ? head_->due_ : none; }
  /// Linked timers whose purpose is a sleep or a wait (threads or tasks blocked on them).
  std::size_t waiters() const noexcept { return waiters_; }

  /// Links `t` (not armed) to fire at `due`, after every timer due at the same time. Searches
  /// from the end: timers of one length armed one after the other arrive in order.
  void insert(timer& t, time_point due) noexcept {
    t.due_ = due;
    t.state_.store(timer::armed_now, std::memory_order_relaxed);
    timer* after = tail_;
    while (after != nullptr && after->due_ > due) after = after->prev_;
    t.prev_ = after;
    t.next_ = after ? after->next_ : head_;
    (t.next_ ? t.next_->prev_ : tail_) = &t;
    (after ? after->next_ : head_) = &t;
    if (t.purpose_ != timer::purpose::alarm) ++waiters_;
  }

  /// Unlinks `t` if it is linked here and marks it idle; false if it was not (fired, firing,
  /// or never armed).
  bool remove(timer& t) noexcept {
    if (t.state_.load(std::memory_order_relaxed) != timer::armed_now) return false;
    unlink(t);
    t.state_.store(timer::idle, std::memory_order_release);
    return true;
  }

  /// Unlinks every timer due at `now`, marks each firing, and returns them earliest first as a
  /// chain for fire_all (linked through the timers); null if none is due.
  timer* take_due(time_point now) noexcept {
    timer* first = head_;
    timer* last = nullptr;
    while (head_ != nullptr && head_->due_ <= now) {
      last = head_;
      head_->state_.store(timer::firing, std::memory_order_relaxed);
      if (head_->purpose_ != timer::purpose::alarm) --waiters_;
      head_ = head_->next_;
    }
    if (last == nullptr) return nullptr;
    last->next_ = nullptr;  // ends the chain
    if (head_ != nullptr) {
      head_->prev_ = nullptr;
    } else {
      tail_ = nullptr;
    }
    return first;
  }

  /// Runs the actions of a chain take_due returned, in order; call it without the owner's mutex.
  static void fire_all(timer* chain) noexcept {
    while (chain != nullptr) {
      timer& t = *chain;
      chain = t.next_;  // read before the action: once marked idle, t may die
      t.prev_ = t.next_ = nullptr;
      const timer::action act = t.action_;
      void* const target = t.target_;
      const timer* const outer = std::exchange(firing_here(), &t);
      act(target);
      firing_here() = outer;
      t.state_.store(timer::idle, std::memory_order_release);  // the last touch
    }
  }

  /// After remove() failed: returns once `t` is not firing any more, or at once if this very
  /// thread is running its action (an action that cancels its own timer).
  static void wait_while_firing(const timer& t) noexcept {
    if (firing_here() == &t) return;
    while (t.state_.load(std::memory_order_acquire) == timer::firing) std::this_thread::yield();
  }

 private:
  void unlink(timer& t) noexcept {
    (t.prev_ ? t.prev_->next_ : head_) = t.next_;
    (t.next_ ? t.next_->prev_ : tail_) = t.prev_;
    t.prev_ = t.next_ = nullptr;
    if (t.purpose_ != timer::purpose::alarm) --waiters_;
  }

  // The timer whose action this thread is running, if any.
  static const timer*& firing_here() noexcept {
    thread_local const timer* running = nullptr;
    return running;
  }

  timer* head_ = nullptr;
  timer* tail_ = nullptr;
  std::size_t waiters_ = 0;
};

}  // namespace stockade::detail
