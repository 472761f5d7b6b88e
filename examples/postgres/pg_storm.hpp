// The cold-start storm against a real PostgreSQL, shared by `cold_start_storm --postgres` and the
// PostgreSQL test: sets up a role and two tables, runs the naive and the stockade application
// with pg_terminate_backend on every backend and a server restart in the middle of each run,
// samples the server's own connection count, then checks each table against what was
// acknowledged and redelivers the stockade run's failed writes (same idempotency keys).
// Invariant: it connects only to this machine (pg::is_local_target), and every wait in it is
// bounded, the restart command included only by that command itself.
#pragma once

#include <chrono>
#include <cstdlib>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "../cold_start_storm/naive.hpp"
#include "../cold_start_storm/resilient.hpp"
#include "../cold_start_storm/storm.hpp"
#include "pg.hpp"
#include "storm_driver.hpp"

namespace storm {

/// No server answered at the address given: the test skips.
struct server_unreachable : std::runtime_error {
  using std::runtime_error::runtime_error;
};

inline constexpr const char* app_role = "stockade_storm";
inline constexpr const char* app_password = "stockade_storm";  // a role in a throwaway cluster
inline constexpr const char* naive_table = "storm_writes_naive";
inline constexpr const char* stockade_table = "storm_writes_stockade";

/// A superuser session for setting up, disrupting and checking; reconnects when it was cut.
class pg_admin {
 public:
  explicit pg_admin(pg::parameters params) : params_(std::move(params)) {}

  /// Runs one statement; if the session is lost or the server is starting, connects again and
  /// retries until `patience` has passed.
  pg::rows exec(const std::string& sql, const std::vector<std::string>& params = {},
                milliseconds patience = std::chrono::seconds(30)) {
    const time_point give_up = clock_type::now() + patience;
    for (;;) {
      try {
        if (!session_.is_open()) {
          session_ = pg::connection::open(params_, clock_type::now() + std::chrono::seconds(5));
        }
        return session_.exec(sql, params, clock_type::now() + std::chrono::seconds(30));
      } catch (const pg::error& e) {
        session_.close();
        if (clock_type::now() >= give_up || pg::verdict_of(e) == stockade::verdict::permanent) {
          throw;
        }
        std::this_thread::sleep_for(milliseconds(100));
      }
    }
  }

  /// Closes the session (so it holds no server slot while the storm runs); exec reconnects.
  void disconnect() noexcept { session_.close(); }

  long number(const std::string& sql, milliseconds patience = std::chrono::seconds(30)) {
    const pg::rows answer = exec(sql, {}, patience);
    return answer.values.empty() ? 0 : std::atol(answer.values[0][0].c_str());
  }

  std::unordered_map<std::int64_t, int> table(const std::string& name) {
    std::unordered_map<std::int64_t, int> rows;
    for (const auto& row :
         exec("SELECT request_key, count(*) FROM " + name + " GROUP BY 1").values) {
      rows[std::atoll(row[0].c_str())] = std::atoi(row[1].c_str());
    }
    return rows;
  }

 private:
  pg::parameters params_;
  pg::connection session_;
};

struct pg_storm_options {
  std::string conninfo;         // a superuser's; "" uses libpq's environment (PGHOST...)
  std::string restart_command;  // e.g. "pg_ctlcluster 15 regress restart"; "" skips the restart
  bool quick = false;
  resilient_settings::budget_kind budget = resilient_settings::budget_kind::percent;
};

struct pg_storm_report {
  std::string server;
  long max_connections = 0;
  long reserved = 0;
  long app_limit = 0;  // what the application's role may open: max_connections - reserved
                       // (less the harness's one monitoring session while a run goes on)
  long budget = 0;     // connections the stockade application may hold: instances x pool
  storm_plan plan;     // without its disruptions
  naive_settings naive_config;
  resilient_settings resilient_config;
  storm_result naive, resilient;
  write_check naive_writes, resilient_writes;
  std::string naive_summary, resilient_summary;
  redelivery redelivered;
  exactly_once exact;
  connection_figures
      resilient_with_redelivery;  // the stockade run's connections, redelivery included
  bool restarted = false;
  double restart_finished_ms = -1;  // in the stockade run
  long acked_after_restart = 0;     // stockade requests acknowledged after the restart finished
};

/// Samples how many sessions the application's role has, every 25 ms, into the driver.
class connection_monitor {
 public:
  connection_monitor(const pg::parameters& admin, pg_driver& driver)
      : thread_([admin, &driver](std::stop_token stop) {
          pg_admin session(admin);
          const std::string sql =
              std::string("SELECT count(*) FROM pg_stat_activity WHERE usename = '") + app_role +
              "'";
          while (!stop.stop_requested()) {
            try {
              driver.observe_server_count(session.number(sql, milliseconds(0)));
            } catch (const pg::error&) {  // cut by the disruptions: connect again next round
              std::this_thread::sleep_for(milliseconds(50));
            }
            std::this_thread::sleep_for(milliseconds(25));
          }
        }) {}

 private:
  std::jthread thread_;
};

inline pg::parameters with(pg::parameters params, const std::string& keyword, std::string value) {
  params.emplace_back(keyword, std::move(value));
  return params;
}

inline pg_storm_report run_postgres_storm(const pg_storm_options& options, console& out) {
  pg::parameters admin_params;
  if (!options.conninfo.empty()) admin_params.emplace_back("dbname", options.conninfo);
  admin_params.emplace_back("application_name", "stockade-storm-admin");
  if (!pg::is_local_target(admin_params)) {
    throw std::invalid_argument(
        "refusing to connect: the storm runs only against a server on this machine "
        "(a Unix socket, localhost, 127.0.0.0/8 or ::1)");
  }
  pg_admin admin(admin_params);
  pg_storm_report report;
  try {
    report.server = admin.exec("SELECT version()", {}, milliseconds(0)).values.at(0).at(0);
  } catch (const pg::error& e) {
    throw server_unreachable(e.what());
  }
  report.max_connections = admin.number("SHOW max_connections");
  report.reserved = admin.number("SHOW superuser_reserved_connections");
  report.app_limit = report.max_connections - report.reserved;

  // The application's own role, so its sessions can be counted and the superuser's reserved
  // slots stay free for this harness; one table per run, the stockade one keyed by request.
  admin.exec(std::string("DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '") +
             app_role + "') THEN CREATE ROLE " + app_role + " LOGIN PASSWORD '" + app_password +
             "'; END IF; END$$");
  admin.exec(std::string("DROP TABLE IF EXISTS ") + naive_table + ", " + stockade_table);
  admin.exec(std::string("CREATE TABLE ") + naive_table +
             " (request_key bigint NOT NULL, instance integer NOT NULL,"
             " written_at timestamptz NOT NULL DEFAULT clock_timestamp())");
  admin.exec(std::string("CREATE TABLE ") + stockade_table +
             " (request_key bigint PRIMARY KEY, instance integer NOT NULL,"
             " written_at timestamptz NOT NULL DEFAULT clock_timestamp())");
  admin.exec(std::string("GRANT SELECT, INSERT ON ") + naive_table + ", " + stockade_table +
             " TO " + app_role);
  pg::parameters app_params = admin_params;
  app_params.back() = {"application_name", "stockade-storm"};
  app_params = with(with(app_params, "user", app_role), "password", app_password);

  storm_plan plan;
  plan.instances = 6;
  plan.workers_per_instance = 8;
  plan.run_for = options.quick ? milliseconds(8000) : milliseconds(12000);
  plan.request_interval = milliseconds(50);
  plan.platform_limit = milliseconds(5000);
  report.plan = plan;
  report.naive_config = {.connections_per_instance = 5,
                         .handler_backoff = milliseconds(200),
                         .data_backoff = milliseconds(100),
                         .query_backoff = milliseconds(50),
                         .warmup_delay = milliseconds(50),
                         .health_check_every = 20,
                         .pool_wait = milliseconds(2000),
                         .io_timeout = milliseconds(5000)};
  report.resilient_config = {.connections_per_instance = 2,
                             .workers_per_instance = plan.workers_per_instance,
                             .request_budget = milliseconds(4500),
                             .attempt_timeout = milliseconds(1000),
                             .queue_wait = milliseconds(1000),
                             .max_attempts = 6,
                             .retry_backoff = {milliseconds(100), 2.0, milliseconds(1000)},
                             .max_retry_delay = milliseconds(2000),
                             .breaker_open_for = {milliseconds(500), 2.0, milliseconds(2000)},
                             .health_max_age = milliseconds(2000),
                             .probe_timeout = milliseconds(500),
                             .warmup_cool_down = {milliseconds(200), 2.0, milliseconds(1000)},
                             .warmup_timeout = milliseconds(2000),
                             .budget = options.budget};
  report.budget =
      static_cast<long>(plan.instances) * report.resilient_config.connections_per_instance;
  if (report.budget >= report.app_limit) {
    throw std::invalid_argument("the server allows the application " +
                                std::to_string(report.app_limit) + " connections; the storm's " +
                                "stockade budget is " + std::to_string(report.budget) +
                                ": start it with max_connections=20 or more");
  }

  // The same disruptions in both runs: every backend terminated at 30 % of the run, the server
  // restarted at 55 % (or terminated once more if no restart command was given).
  pg_admin controller(admin_params);
  const auto terminate_all = [&controller] {
    const long killed = controller.number(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
        " WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()");
    controller.disconnect();
    return "pg_terminate_backend: " + std::to_string(killed) + " backends terminated";
  };
  const auto restart = [&] {
    if (options.restart_command.empty()) {
      return terminate_all() + " (no restart command: set STOCKADE_PG_RESTART to restart)";
    }
    const int status = std::system(options.restart_command.c_str());  // NOLINT: a test harness
    report.restarted = status == 0;
    return status == 0 ? "server restarted (" + options.restart_command + ")"
                       : "restart command failed with status " + std::to_string(status);
  };
  const auto disruptions = [&] {
    return std::vector<disruption>{{plan.run_for * 3 / 10, terminate_all},
                                   {plan.run_for * 55 / 100, restart}};
  };
  // Another client of the database, as the application's role: can it still get in?
  const pg::parameters bystander_params = [&] {
    pg::parameters params = app_params;
    for (auto& [keyword, value] : params) {
      if (keyword == "application_name") value = "stockade-storm-bystander";
    }
    return params;
  }();
  const auto bystander = [bystander_params] {
    try {
      pg::connection::open(bystander_params, clock_type::now() + std::chrono::seconds(2));
      return false;
    } catch (const pg::error& e) {
      return e.sqlstate() == pg::too_many_connections;
    }
  };
  const auto wait_for_quiet = [&] {  // the last run's sessions gone, so runs do not overlap
    for (int round = 0; round < 100; ++round) {
      if (admin.number(std::string("SELECT count(*) FROM pg_stat_activity WHERE usename = '") +
                       app_role + "'") == 0) {
        return;
      }
      std::this_thread::sleep_for(milliseconds(100));
    }
  };

  admin.disconnect();  // the harness holds one session during a run: the monitor's
  {
    pg_driver db(app_params, naive_table);
    naive_app<pg_driver> app(db, plan.instances, report.naive_config);
    storm_plan run = plan;
    run.disruptions = disruptions();
    run.bystander = bystander;
    connection_monitor monitor(admin_params, db);
    report.naive = run_storm(
        "naive", app, [&] { return db.figures(); }, run, out);
    report.naive_summary = app.summary();
  }
  report.naive_writes = check_writes(report.naive, plan, admin.table(naive_table));
  wait_for_quiet();

  admin.disconnect();
  {
    pg_driver db(app_params, stockade_table);
    resilient_app<pg_driver> app(db, plan.instances, report.resilient_config);
    storm_plan run = plan;
    run.disruptions = disruptions();
    run.bystander = bystander;
    report.restarted = false;
    {
      connection_monitor monitor(admin_params, db);
      report.resilient = run_storm(
          "stockade", app, [&] { return db.figures(); }, run, out);
    }
    report.resilient_writes = check_writes(report.resilient, plan, admin.table(stockade_table));
    if (report.resilient.disruptions.size() == 2) {
      report.restart_finished_ms = report.resilient.disruptions[1].finished_ms;
      for (double at : report.resilient.acked_at_ms) {
        if (at > report.restart_finished_ms) ++report.acked_after_restart;
      }
    }
    report.redelivered = redeliver(app, report.resilient, plan, 3, std::chrono::seconds(30));
    report.exact = check_exactly_once(report.resilient, plan, admin.table(stockade_table));
    report.resilient_with_redelivery = db.figures();
    report.resilient_summary = app.summary();
  }
  wait_for_quiet();
  return report;
}

inline void print_postgres_report(const pg_storm_report& report) {
  print_comparison(report.naive, report.resilient, report.naive_writes, report.resilient_writes,
                   report.plan, report.app_limit);
  print_wrapped("  naive:    ", report.naive_summary);
  print_wrapped("  stockade: ", report.resilient_summary);
  print_wrapped(
      "  stockade: ",
      format("%ld writes acknowledged after the restart finished; the %ld failed writes sent "
             "again with their keys: %ld acknowledged, %ld still failing; the table now holds "
             "%ld of the %ld keys issued, %ld of them twice, %ld unknown.",
             report.acked_after_restart, report.redelivered.tried, report.redelivered.acknowledged,
             report.redelivered.still_failed, report.exact.issued - report.exact.missing,
             report.exact.issued, report.exact.duplicated, report.exact.unknown));
  std::printf("\n");
}

}  // namespace storm
