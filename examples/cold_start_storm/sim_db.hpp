// A simulated database that behaves like the post-mortem's: a hard connection limit ("too many
// clients"), a warm-up time before a new client can serve ("Engine is not yet connected"),
// transient failures, replies lost after a commit, and crashes that drop every connection.
// It is also its own driver (connect, await_ready, insert, ping), the interface the naive and the
// stockade applications use, so the same code runs against it and against PostgreSQL.
// Real time, scaled down so that a whole storm takes seconds; every sleep is bounded.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "../postgres/sqlstate.hpp"
#include "driver.hpp"

namespace storm {

struct sim_options {
  int max_connections = 20;
  int reserved_connections = 3;  // kept for superusers, as PostgreSQL's default: the app gets 17
  milliseconds connect_time{10};
  // A new client cannot serve before its engine has started ("not yet connected"): a base time,
  // plus some for every other client starting at the same moment (they contend for the server),
  // so a fixed warm-up delay that works for one cold start fails when many start at once.
  milliseconds warmup_time{30};
  milliseconds warmup_per_concurrent{8};
  milliseconds query_time{3};
  double transient_failure_rate = 0.01;  // 40001, the textbook retry
  double reply_loss_rate = 0.002;        // committed, then the connection drops before the reply
  std::uint32_t seed = 7;
};

class sim_db {
 public:
  /// One client connection. Destroying it closes it.
  class connection {
   public:
    connection(const connection&) = delete;
    connection& operator=(const connection&) = delete;
    ~connection() { server_.disconnect(*this); }

   private:
    friend class sim_db;
    connection(sim_db& server, std::uint64_t epoch, time_point ready_at)
        : server_(server), epoch_(epoch), ready_at_(ready_at) {}
    sim_db& server_;
    std::mutex serving_;         // one statement at a time, like a real session
    const std::uint64_t epoch_;  // the server's life it belongs to; a crash starts a new one
    const time_point ready_at_;
    bool open_ = true;  // guarded by the server's mutex
  };

  explicit sim_db(sim_options options) : options_(options), rng_(options.seed) {}

  // --- the server -------------------------------------------------------------------------
  /// Drops every connection at once and refuses new ones for `down_for`.
  std::string crash(milliseconds down_for) {
    std::lock_guard lock(mutex_);
    const int dropped = open_;
    ++epoch_;
    open_ = 0;
    down_until_ = clock_type::now() + down_for;
    return "database crashed: " + std::to_string(dropped) + " connections dropped, down for " +
           std::to_string(down_for.count()) + " ms";
  }

  // --- the driver ---------------------------------------------------------------------------
  std::unique_ptr<connection> connect(time_point deadline) {
    if (!sleep_until_or(clock_type::now() + options_.connect_time, deadline)) {
      throw pg::error(std::string(pg::query_canceled), "connection attempt timed out");
    }
    std::lock_guard lock(mutex_);
    ++figures_.connect_attempts;
    if (clock_type::now() < down_until_) {
      throw pg::error(std::string(pg::unable_to_connect),
                      "could not connect to server: Connection refused");
    }
    if (open_ >= options_.max_connections - options_.reserved_connections) {
      ++figures_.refused_too_many;
      throw pg::error(std::string(pg::too_many_connections),
                      "remaining connection slots are reserved for superusers");
    }
    ++open_;
    ++figures_.opened;
    figures_.peak_open = std::max<long>(figures_.peak_open, open_);
    const time_point now = clock_type::now();
    std::erase_if(warming_, [&](time_point ready) { return ready <= now; });
    const time_point ready_at = now + options_.warmup_time +
                                options_.warmup_per_concurrent * static_cast<int>(warming_.size());
    warming_.push_back(ready_at);
    return std::unique_ptr<connection>(new connection(*this, epoch_, ready_at));
  }

  /// Another client connects and leaves at once (not counted in figures()): true if the
  /// connection limit refused it.
  bool refuses_another_client() const {
    std::lock_guard lock(mutex_);
    return open_ >= options_.max_connections - options_.reserved_connections;
  }

  /// Waits until the new client's engine is connected (what the post-mortem's fixed delay
  /// guessed at). Throws 08003 if the deadline comes first.
  void await_ready(connection& c, time_point deadline) {
    if (!sleep_until_or(c.ready_at_, deadline)) {
      throw pg::error(std::string(pg::connection_does_not_exist),
                      "Engine is not yet connected (gave up waiting)");
    }
    std::lock_guard lock(mutex_);
    check_session_locked(c);
  }

  /// INSERT of one request's row; `mode` says whether a second insert of the key is a no-op
  /// (ON CONFLICT DO NOTHING on a unique key) or another row.
  void insert(connection& c, std::int64_t key, int /*instance*/, write_mode mode,
              time_point deadline) {
    std::lock_guard serving(c.serving_);
    {
      std::lock_guard lock(mutex_);
      ++figures_.statements;
      check_session_locked(c);
      if (clock_type::now() < c.ready_at_) {
        throw pg::error(std::string(pg::connection_does_not_exist), "Engine is not yet connected");
      }
      if (chance_locked() < options_.transient_failure_rate) {
        throw pg::error(std::string(pg::serialization_failure), "could not serialize access");
      }
    }
    if (!sleep_until_or(clock_type::now() + options_.query_time, deadline)) {
      throw pg::error(std::string(pg::query_canceled), "statement timed out", true);
    }
    std::lock_guard lock(mutex_);
    check_session_locked(c);  // a crash while the statement ran: not committed
    int& rows = table_[key];
    if (rows == 0 || mode == write_mode::plain) ++rows;
    if (chance_locked() < options_.reply_loss_rate) {  // committed, but the reply never comes
      drop_locked(c);
      throw pg::error(std::string(pg::connection_failure),
                      "server closed the connection unexpectedly", true);
    }
  }

  /// SELECT 1 on this very connection.
  bool ping(connection& c, time_point deadline) {
    std::lock_guard serving(c.serving_);
    {
      std::lock_guard lock(mutex_);
      ++figures_.statements;
      if (!session_ok_locked(c) || clock_type::now() < c.ready_at_) return false;
    }
    return sleep_until_or(clock_type::now() + options_.query_time / 2, deadline);
  }

  connection_figures figures() const {
    std::lock_guard lock(mutex_);
    connection_figures now = figures_;
    now.open_now = open_;
    now.server_peak = figures_.peak_open;
    return now;
  }

  /// How many rows each key has in the table.
  std::unordered_map<std::int64_t, int> table() const {
    std::lock_guard lock(mutex_);
    return table_;
  }

  const sim_options& options() const noexcept { return options_; }
  int app_connection_limit() const noexcept {
    return options_.max_connections - options_.reserved_connections;
  }

 private:
  static bool sleep_until_or(time_point until, time_point deadline) {
    std::this_thread::sleep_until(std::min(until, deadline));
    return until <= deadline;
  }

  bool session_ok_locked(const connection& c) const {
    return c.open_ && c.epoch_ == epoch_ && clock_type::now() >= down_until_;
  }
  void check_session_locked(connection& c) {
    if (!session_ok_locked(c)) {
      throw pg::error(std::string(pg::admin_shutdown),
                      "terminating connection due to administrator command", true);
    }
  }
  void drop_locked(connection& c) {
    if (c.open_ && c.epoch_ == epoch_) --open_;
    c.open_ = false;
  }
  void disconnect(connection& c) {
    std::lock_guard lock(mutex_);
    drop_locked(c);
  }
  double chance_locked() { return std::uniform_real_distribution<double>(0, 1)(rng_); }

  const sim_options options_;
  mutable std::mutex mutex_;
  std::mt19937 rng_;
  std::uint64_t epoch_ = 1;
  int open_ = 0;
  time_point down_until_{};
  std::vector<time_point> warming_;  // when the clients still starting will be ready
  connection_figures figures_{};
  std::unordered_map<std::int64_t, int> table_;
};

}  // namespace storm
