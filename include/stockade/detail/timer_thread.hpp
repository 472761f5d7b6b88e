// The real clock's timers: one shared thread fires them, from a few sharded lists, so arming and
// cancelling a timer takes one uncontended (spin) lock of its shard and allocates nothing (the
// timer is the caller's node). The thread starts with the first timer that needs it. Invariant: a
// timer is never left due without the worker knowing. An arm stores its shard's earliest time and
// then reads when the worker will wake; the worker publishes when it will wake and then reads every
// shard's earliest time (both sequentially consistent), so at least one of them sees the other:
// either the arm wakes the worker, or the worker looks again. Actions run without any lock held,
// since they run user code (stop callbacks).
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <thread>

#include "timer_list.hpp"

namespace stockade::detail {

class timer_thread {
 public:
  static timer_thread& instance() {
    static timer_thread the_thread;
    return the_thread;
  }

  timer_thread(const timer_thread&) = delete;
  timer_thread& operator=(const timer_thread&) = delete;

  ~timer_thread() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wakeup_.notify_all();
    if (worker_.joinable()) worker_.join();
  }

  /// Fires `t` at `when` on the timer thread. Reads no clock: a time already past fires as soon
  /// as the thread sees it. Throws only if the thread cannot be started; `t` is then not armed.
  void arm(timer& t, time_point when) {
    shard& home = shard_of(t);
    {
      std::lock_guard lock(home.mutex);
      home.timers.insert(t, when);
      home.earliest.store(home.timers.earliest(never), std::memory_order_seq_cst);
    }
    // Only a time earlier than the worker's next wake-up needs it woken: most timers (deadlines)
    // are cancelled long before they are due, and waking the worker for each cost a context
    // switch per call.
    if (when < wakes_at_.load(std::memory_order_seq_cst)) wake_for(t, when);
  }

  /// True if `t` will not fire; false if it fired or was firing (then its action has finished).
  bool cancel(timer& t) noexcept {
    shard& home = shard_of(t);
    {
      std::lock_guard lock(home.mutex);
      if (home.timers.remove(t)) return true;  // a stale `earliest` costs one early wake-up
    }
    timer_list::wait_while_firing(t);
    return false;
  }

 private:
  static constexpr time_point never = time_point::max();
  static constexpr time_point awake = time_point::min();  // wakes_at_ while the worker runs
  static constexpr std::size_t shard_count = 8;

  // A shard's list is held for a few pointer moves at a time: a spin lock that yields costs a
  // fraction of a mutex's lock and unlock, which were a third of arming a deadline.
  class spin_lock {
   public:
    void lock() noexcept {
      while (held_.exchange(true, std::memory_order_acquire)) {
        while (held_.load(std::memory_order_relaxed)) std::this_thread::yield();
      }
    }
    void unlock() noexcept { held_.store(false, std::memory_order_release); }

   private:
    std::atomic<bool> held_{false};
  };

  struct alignas(64) shard {
    spin_lock mutex;
    timer_list timers;
    std::atomic<time_point> earliest{never};
  };

  timer_thread() = default;

  // A timer's shard follows from its address, so cancel finds it without storing anything.
  // Fibonacci hashing mixes the high bits in: stacks of different threads differ there.
  shard& shard_of(const timer& t) noexcept {
    const auto address = reinterpret_cast<std::uintptr_t>(&t);
    const std::uint64_t mixed = static_cast<std::uint64_t>(address) * 0x9E37'79B9'7F4A'7C15ULL;
    return shards_[mixed >> 61];  // top 3 bits: shard_count is 8
  }

  void wake_for(timer& t, time_point when) {
    std::lock_guard lock(mutex_);
    if (!worker_.joinable()) {
      try {
        worker_ = std::thread([this] { run(); });
      } catch (...) {
        (void)cancel(t);  // not running: nobody would ever fire it
        throw;
      }
    }
    if (when < wakes_at_.load(std::memory_order_relaxed)) {
      wakes_at_.store(when, std::memory_order_relaxed);
      wakeup_.notify_one();
    }
  }

  void run() {
    for (;;) {
      const time_point now = std::chrono::steady_clock::now();
      time_point next = never;
      for (shard& s : shards_) {
        timer* due = nullptr;
        {
          std::lock_guard lock(s.mutex);
          due = s.timers.take_due(now);
          s.earliest.store(s.timers.earliest(never), std::memory_order_relaxed);
          next = std::min(next, s.timers.earliest(never));
        }
        timer_list::fire_all(due);
      }
      std::unique_lock lock(mutex_);
      if (stopping_) return;
      wakes_at_.store(next, std::memory_order_seq_cst);
      // An arm that read wakes_at_ before the store above did not wake us; it stored its shard's
      // earliest time first, so it shows here.
      time_point again = never;
      for (const shard& s : shards_) {
        again = std::min(again, s.earliest.load(std::memory_order_seq_cst));
      }
      if (again >= next) {
        // A cancelled earliest timer leaves `next` early: one harmless early wake-up.
        if (next == never) {
          wakeup_.wait(lock);
        } else {
          wakeup_.wait_until(lock, next);
        }
      }
      wakes_at_.store(awake, std::memory_order_relaxed);
      if (stopping_) return;
    }
  }

  std::array<shard, shard_count> shards_;
  std::mutex mutex_;  // the worker's sleep; taken by an arm only to wake it
  std::condition_variable wakeup_;
  // When the worker will wake by itself: `never` before it starts, `awake` while it runs.
  std::atomic<time_point> wakes_at_{never};
  bool stopping_ = false;
  std::thread worker_;
};

}  // namespace stockade::detail
