// One shared thread that requests stops at deadlines, for contexts whose callee asked for a
// stop token (see context::stop_token). It exists only once the first such token is armed.
// Invariant: request_stop is called without the timer's mutex held, since stop callbacks
// run user code synchronously; and the worker is woken only when a new deadline is earlier
// than the one it sleeps until (most timers are cancelled long before they are due).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <stop_token>
#include <thread>
#include <utility>
#include <vector>

namespace stockade::detail {

class timer_thread {
 public:
  using time_point = std::chrono::steady_clock::time_point;

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

  /// Requests a stop on `source` at `when`; returns a ticket for cancel(), or 0 if `when` had
  /// already come (the stop is then requested at once, on the caller's thread).
  std::uint64_t schedule(time_point when, std::stop_source source) {
    if (when <= std::chrono::steady_clock::now()) {
      source.request_stop();
      return 0;
    }
    bool wake = false;
    std::uint64_t ticket = 0;
    {
      std::lock_guard lock(mutex_);
      ticket = ++last_ticket_;
      due_.emplace(std::pair{when, ticket}, std::move(source));
      tickets_.emplace(ticket, when);
      if (!worker_.joinable()) worker_ = std::thread([this] { run(); });
      // Only a deadline earlier than the worker's next wake-up needs it to wake now. Waking it
      // for every schedule cost a context switch per call in a loop of short calls.
      wake = when < wakes_at_;
      if (wake) wakes_at_ = when;
    }
    if (wake) wakeup_.notify_one();
    return ticket;
  }

  void cancel(std::uint64_t ticket) noexcept {
    std::stop_source dropped{std::nostopstate};  // released after the lock: may free the state
    std::lock_guard lock(mutex_);
    auto found = tickets_.find(ticket);
    if (found == tickets_.end()) return;
    auto entry = due_.find(std::pair{found->second, ticket});
    dropped = std::move(entry->second);
    due_.erase(entry);
    tickets_.erase(found);
  }

 private:
  timer_thread() = default;

  void run() {
    std::unique_lock lock(mutex_);
    while (!stopping_) {
      const time_point now = std::chrono::steady_clock::now();
      std::vector<std::stop_source> fire;
      while (!due_.empty() && due_.begin()->first.first <= now) {
        tickets_.erase(due_.begin()->first.second);
        fire.push_back(std::move(due_.begin()->second));
        due_.erase(due_.begin());
      }
      if (!fire.empty()) {
        wakes_at_ = time_point::min();  // awake: nobody needs to notify us
        lock.unlock();
        for (auto& source : fire) source.request_stop();
        fire.clear();
        lock.lock();
        continue;
      }
      // A cancelled earliest timer leaves wakes_at_ early: one harmless early wake-up.
      if (due_.empty()) {
        wakes_at_ = time_point::max();
        wakeup_.wait(lock);
      } else {
        wakes_at_ = due_.begin()->first.first;
        wakeup_.wait_until(lock, wakes_at_);
      }
      wakes_at_ = time_point::min();
    }
  }

  std::mutex mutex_;
  std::condition_variable wakeup_;
  std::map<std::pair<time_point, std::uint64_t>, std::stop_source> due_;
  std::map<std::uint64_t, time_point> tickets_;
  std::uint64_t last_ticket_ = 0;
  time_point wakes_at_ = time_point::min();  // when the worker will wake by itself; min: awake
  bool stopping_ = false;
  std::thread worker_;
};

}  // namespace stockade::detail
