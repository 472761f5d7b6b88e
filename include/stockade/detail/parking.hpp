// The blocking driver of a wait: the waiting thread blocks on a parking spot of its own until a
// timer fires, its stop token is triggered, or whoever serves it (a waiter queue) wakes it. It is
// one driver of the clock's timers; a coroutine driver resumes a frame instead of a thread.
// Invariant: whoever wakes a spot does so under the spot's mutex, and the spot's owner returns only
// after reacquiring that mutex, so a wake never touches a spot that is gone.
#pragma once

#include <condition_variable>
#include <mutex>
#include <stop_token>

#include "../clock.hpp"
#include "../timer.hpp"

namespace stockade::detail {

class parking_spot {
 public:
  parking_spot() = default;
  parking_spot(const parking_spot&) = delete;
  parking_spot& operator=(const parking_spot&) = delete;
  ~parking_spot() = default;

  /// Wakes the thread parked on `spot` (a parking_spot*); the shape of a timer's action and of a
  /// waiter's resume.
  static void wake(void* spot) noexcept {
    auto& self = *static_cast<parking_spot*>(spot);
    const std::lock_guard lock(self.mutex_);
    self.woken_ = true;
    self.woken_cv_.notify_one();
  }

  // noexcept: a timer may be armed on this spot's behalf, and must be cancelled before it dies.
  void wait() noexcept {
    std::unique_lock lock(mutex_);
    woken_cv_.wait(lock, [this] { return woken_; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable woken_cv_;
  bool woken_ = false;
};

/// Blocks this thread until `on` reaches `until`, `stop` is triggered, or someone wakes `spot`.
/// True if the time came. May throw if the clock cannot take the timer; nothing is left armed.
inline bool park_until(clock& on, time_point until, timer::purpose why, const std::stop_token& stop,
                       parking_spot& spot) {
  struct wake_on_stop {
    parking_spot* spot;
    void operator()() const noexcept { parking_spot::wake(spot); }
  };
  timer alarm{why, &parking_spot::wake, &spot};
  const std::stop_callback<wake_on_stop> on_stop(stop, wake_on_stop{&spot});  // runs now if stopped
  on.arm(alarm, until);
  spot.wait();
  return !on.cancel(alarm);
}

}  // namespace stockade::detail
