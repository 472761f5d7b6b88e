// One shared thread that requests stops at deadlines, for contexts whose callee asked for a
// stop token (see context::stop_token). It exists only once the first such token is armed.
// Invariant: request_stop is called without the timer's mutex held, since stop callbacks
// run user code synchronously.
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

  std::uint64_t schedule(time_point when, std::stop_source source) {
    std::lock_guard lock(mutex_);
    const std::uint64_t ticket = ++last_ticket_;
    const bool earliest = due_.empty() || when < due_.begin()->first.first;
    due_.emplace(std::pair{when, ticket}, std::move(source));
    tickets_.emplace(ticket, when);
    if (!worker_.joinable()) worker_ = std::thread([this] { run(); });
    if (earliest) wakeup_.notify_all();
    return ticket;
  }

  void cancel(std::uint64_t ticket) noexcept {
    std::lock_guard lock(mutex_);
    auto found = tickets_.find(ticket);
    if (found == tickets_.end()) return;
    due_.erase(std::pair{found->second, ticket});
    tickets_.erase(found);
  }

 private:
  timer_thread() = default;

  void run() {
    std::unique_lock lock(mutex_);
    while (!stopping_) {
      if (due_.empty()) {
        wakeup_.wait(lock);
        continue;
      }
      const time_point next = due_.begin()->first.first;
      if (std::chrono::steady_clock::now() < next) {
        wakeup_.wait_until(lock, next);
        continue;
      }
      std::vector<std::stop_source> fire;
      const time_point now = std::chrono::steady_clock::now();
      while (!due_.empty() && due_.begin()->first.first <= now) {
        tickets_.erase(due_.begin()->first.second);
        fire.push_back(std::move(due_.begin()->second));
        due_.erase(due_.begin());
      }
      lock.unlock();
      for (auto& source : fire) source.request_stop();
      lock.lock();
    }
  }

  std::mutex mutex_;
  std::condition_variable wakeup_;
  std::map<std::pair<time_point, std::uint64_t>, std::stop_source> due_;
  std::map<std::uint64_t, time_point> tickets_;
  std::uint64_t last_ticket_ = 0;
  bool stopping_ = false;
  std::thread worker_;
};

}  // namespace stockade::detail
