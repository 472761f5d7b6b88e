// The cold-start storm's driver interface (../cold_start_storm/driver.hpp) on a real PostgreSQL:
// each connection is one libpq session; the insert writes one row per request key into the
// run's table, plain or ON CONFLICT DO NOTHING. Counts connections on the client side; the
// server's own count is sampled by the scenario (pg_storm.hpp) and reported through here.
// Invariant: a connection object is counted open from the moment its session was made until it
// is destroyed, whatever state the session is in, so the client-side peak bounds the server's.
#pragma once

#include <algorithm>
#include <atomic>
#include <memory>
#include <string>
#include <utility>

#include "../cold_start_storm/driver.hpp"
#include "pg.hpp"

namespace storm {

class pg_driver {
 public:
  class connection {
   public:
    connection(const connection&) = delete;
    connection& operator=(const connection&) = delete;
    ~connection() { owner_.open_.fetch_sub(1); }

   private:
    friend class pg_driver;
    connection(pg_driver& owner, pg::connection session)
        : owner_(owner), session_(std::move(session)) {
      const long now = owner_.open_.fetch_add(1) + 1;
      long peak = owner_.peak_.load();
      while (now > peak && !owner_.peak_.compare_exchange_weak(peak, now)) {
      }
    }
    pg_driver& owner_;
    pg::connection session_;
  };

  /// `params`: how the application connects (its own role); `table`: where this run writes.
  pg_driver(pg::parameters params, const std::string& table)
      : params_(std::move(params)),
        insert_plain_("INSERT INTO " + table + " (request_key, instance) VALUES ($1, $2)"),
        insert_idempotent_(insert_plain_ + " ON CONFLICT (request_key) DO NOTHING") {}
  pg_driver(const pg_driver&) = delete;
  pg_driver& operator=(const pg_driver&) = delete;

  std::unique_ptr<connection> connect(time_point deadline) {
    connect_attempts_.fetch_add(1);
    try {
      pg::connection session = pg::connection::open(params_, deadline);
      opened_.fetch_add(1);
      return std::unique_ptr<connection>(new connection(*this, std::move(session)));
    } catch (const pg::error& e) {
      if (e.sqlstate() == pg::too_many_connections) refused_too_many_.fetch_add(1);
      throw;
    }
  }

  /// The session answers: a verification query before first use.
  void await_ready(connection& c, time_point deadline) { run(c, "SELECT 1", {}, deadline); }

  void insert(connection& c, std::int64_t key, int instance, write_mode mode, time_point deadline) {
    run(c, mode == write_mode::idempotent ? insert_idempotent_ : insert_plain_,
        {std::to_string(key), std::to_string(instance)}, deadline);
  }

  bool ping(connection& c, time_point deadline) {
    try {
      run(c, "SELECT 1", {}, deadline);
      return true;
    } catch (const pg::error&) {
      return false;
    }
  }

  connection_figures figures() const {
    connection_figures now;
    now.open_now = open_.load();
    now.peak_open = peak_.load();
    now.server_peak = server_peak_.load();
    now.connect_attempts = connect_attempts_.load();
    now.opened = opened_.load();
    now.refused_too_many = refused_too_many_.load();
    now.statements = statements_.load();
    return now;
  }

  /// The scenario's monitor reports how many sessions the server shows for the application.
  void observe_server_count(long sessions) {
    long peak = server_peak_.load();
    while (sessions > peak && !server_peak_.compare_exchange_weak(peak, sessions)) {
    }
  }

 private:
  void run(connection& c, const std::string& sql, const std::vector<std::string>& params,
           time_point deadline) {
    statements_.fetch_add(1);
    c.session_.exec(sql, params, deadline);
  }

  const pg::parameters params_;
  const std::string insert_plain_;
  const std::string insert_idempotent_;
  std::atomic<long> open_{0}, peak_{0}, server_peak_{0}, connect_attempts_{0}, opened_{0},
      refused_too_many_{0}, statements_{0};
};

}  // namespace storm
