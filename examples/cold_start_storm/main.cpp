// The cold-start storm: many application instances start at once against one database, which
// crashes in the middle of the run. The same load runs twice, through naive hand-written code
// (the post-mortem's) and through a stockade pipeline, and the two are printed side by side.
//
//   cold_start_storm                     simulated database (about 20 s)
//   cold_start_storm --quick             the same, shorter (a few seconds)
//   cold_start_storm --postgres [CONN]   a real PostgreSQL on this machine (CONN: a libpq
//                                        connection string of a superuser; default: PGHOST etc.);
//                                        STOCKADE_PG_RESTART="pg_ctlcluster 15 main restart" also
//                                        restarts it mid-run. See docs/cold-start-storm.md.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>

#include "naive.hpp"
#include "resilient.hpp"
#include "sim_db.hpp"
#include "storm.hpp"

#if STOCKADE_STORM_WITH_POSTGRES
#include "../postgres/pg_storm.hpp"
#endif

namespace {

using namespace storm;
using std::chrono::milliseconds;

struct scenario {
  storm_plan plan;
  sim_options db;
  milliseconds crash_at;
  milliseconds down_for;
  naive_settings naive;
  resilient_settings resilient;
};

using budget_kind = resilient_settings::budget_kind;

scenario simulated(bool quick, budget_kind budget, int instances, int workers) {
  scenario s;
  s.plan.instances = instances;
  s.plan.workers_per_instance = workers;
  s.plan.run_for = quick ? milliseconds(2500) : milliseconds(8000);
  s.plan.request_interval = milliseconds(25);
  s.plan.platform_limit = milliseconds(2000);
  s.crash_at = quick ? milliseconds(1000) : milliseconds(3500);
  s.down_for = quick ? milliseconds(400) : milliseconds(1000);
  s.naive = {};  // the post-mortem's habits, and its client's default pool of 5: see naive.hpp
  s.resilient = {.connections_per_instance = 2,
                 .workers_per_instance = workers,
                 .breaker_open_for = {milliseconds(250), 2.0, milliseconds(1000)},
                 .budget = budget};
  return s;
}

void describe(const scenario& s) {
  const auto seconds = [](milliseconds d) { return static_cast<double>(d.count()) / 1000; };
  std::printf(
      "Cold-start storm: %d workers in %d application instances start at the same moment; each\n"
      "writes one row (one idempotency key) every %lld ms for %.1f s. The simulated database\n"
      "serves %d connections to the application; a new client can serve after %lld ms, plus\n"
      "%lld ms for each other client starting at the same time; %.0f%% of statements fail\n"
      "transiently and %.1f%% of replies are lost after the commit;\n"
      "at %.1f s it crashes and stays down %.1f s. A request not answered within %.1f s is\n"
      "answered \"timeout\" by the platform.\n\n",
      s.plan.workers(), s.plan.instances, static_cast<long long>(s.plan.request_interval.count()),
      seconds(s.plan.run_for), s.db.max_connections - s.db.reserved_connections,
      static_cast<long long>(s.db.warmup_time.count()),
      static_cast<long long>(s.db.warmup_per_concurrent.count()), s.db.transient_failure_rate * 100,
      s.db.reply_loss_rate * 100, seconds(s.crash_at), seconds(s.down_for),
      seconds(s.plan.platform_limit));
  std::printf(
      "  naive:    per instance a client with %d connections; a fixed %lld ms warm-up delay;\n"
      "            3 nested retry layers (up to %.2f s of backoff); health check on its own\n"
      "            connection; reconnect on any connection error, no generation check\n",
      s.naive.connections_per_instance, static_cast<long long>(s.naive.warmup_delay.count()),
      seconds(s.naive.worst_case_backoff()));
  const auto ms = [](stockade::duration d) {
    return static_cast<long long>(std::chrono::duration_cast<milliseconds>(d).count());
  };
  std::printf(
      "  stockade: per instance timeout %lld ms > retry x%d (%s budget) > breaker >\n"
      "            bulkhead %d (+%d queued, %lld ms) > %d pooled resources (warm-up, health\n"
      "            check on the same connection) > timeout %lld ms; inserts ON CONFLICT DO "
      "NOTHING\n\n",
      ms(s.resilient.request_budget), s.resilient.max_attempts,
      s.resilient.budget == budget_kind::tokens ? "token" : "percent",
      s.resilient.connections_per_instance, s.resilient.workers_per_instance,
      ms(s.resilient.queue_wait), s.resilient.connections_per_instance,
      ms(s.resilient.attempt_timeout));
}

int run_simulated(bool quick, budget_kind budget, int instances, int workers) {
  const scenario s = simulated(quick, budget, instances, workers);
  describe(s);
  console out;

  storm_result naive, resilient;
  write_check naive_writes, resilient_writes;
  std::string naive_summary, resilient_summary, resilient_stack;
  redelivery redelivered;
  exactly_once exact;
  {
    sim_db db(s.db);
    naive_app<sim_db> app(db, s.plan.instances, s.naive);
    storm_plan plan = s.plan;
    plan.disruptions = {{s.crash_at, [&] { return db.crash(s.down_for); }}};
    plan.bystander = [&] { return db.refuses_another_client(); };
    naive = run_storm(
        "naive", app, [&] { return db.figures(); }, plan, out);
    naive_writes = check_writes(naive, plan, db.table());
    naive_summary = app.summary();
  }
  {
    sim_db db(s.db);
    resilient_app<sim_db> app(db, s.plan.instances, s.resilient);
    storm_plan plan = s.plan;
    plan.disruptions = {{s.crash_at, [&] { return db.crash(s.down_for); }}};
    plan.bystander = [&] { return db.refuses_another_client(); };
    resilient = run_storm(
        "stockade", app, [&] { return db.figures(); }, plan, out);
    resilient_writes = check_writes(resilient, plan, db.table());
    redelivered = redeliver(app, resilient, plan, 3, std::chrono::seconds(20));
    exact = check_exactly_once(resilient, plan, db.table());
    resilient_summary = app.summary();
    resilient_stack = app.stack_description();
  }

  const long connection_budget =
      static_cast<long>(s.plan.instances) * s.resilient.connections_per_instance;
  print_comparison(naive, resilient, naive_writes, resilient_writes, s.plan,
                   s.db.max_connections - s.db.reserved_connections);
  print_wrapped("  naive:    ", naive_summary);
  print_wrapped("  stockade: ", resilient_summary);
  print_wrapped("  stockade: ",
                format("the %ld failed writes sent again with their keys: %ld acknowledged; the "
                       "table now holds %ld of the %ld keys issued, %ld of them twice.",
                       redelivered.tried, redelivered.acknowledged, exact.issued - exact.missing,
                       exact.issued, exact.duplicated));
  std::printf("\nEach instance's stockade stack, as stockade::describe() writes it:\n%s\n\n",
              resilient_stack.c_str());

  // The example checks what stockade promises (invariants, never timings), so ctest catches a
  // regression: nothing acknowledged lost, nothing written twice, the budget of connections
  // kept, the server's limit never hit, every write in exactly once after the redelivery.
  bool kept = true;
  const auto promise = [&](bool holds, const char* what) {
    if (!holds) std::printf("PROMISE BROKEN: %s\n", what);
    kept = kept && holds;
  };
  promise(resilient_writes.sound(), "stockade: acknowledged = written, once each");
  promise(resilient.connections.peak_open <= connection_budget,
          "stockade: connections within the budget");
  promise(resilient.connections.refused_too_many == 0, "stockade: the connection limit never hit");
  promise(exact.holds(), "stockade: every key in the table exactly once after redelivery");
  return kept ? 0 : 1;
}

void usage() {
  std::puts(
      "usage: cold_start_storm [--quick] [--token-budget] [--instances N] [--workers N]\n"
      "                        [--postgres [CONNINFO]]\n"
      "  --quick      a shorter run (a few seconds)\n"
      "  --instances N, --workers N   application instances (default 6) and workers in each\n"
      "               (default 8) of the simulated storm; stockade gives each instance 2\n"
      "               connections, so more than 8 instances exceed the database's 17\n"
      "  --token-budget  stockade's retries share gRPC A6's token budget instead of a\n"
      "               percentage budget (docs/cold-start-storm.md compares them)\n"
      "  --postgres   against a PostgreSQL server on this machine; CONNINFO is a superuser's\n"
      "               libpq connection string (default: PGHOST, PGPORT, PGUSER... as psql);\n"
      "               set STOCKADE_PG_RESTART to a command that restarts the server, e.g.\n"
      "               \"pg_ctlcluster 15 main restart\", to restart it mid-run");
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);  // a server that closes a socket must not kill the process
  bool quick = false;
  bool postgres = false;
  budget_kind budget = budget_kind::percent;
  int instances = 6;
  int workers = 8;
  std::string conninfo;
  if (const char* from_env = std::getenv("STOCKADE_PG_CONNINFO")) conninfo = from_env;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--quick") {
      quick = true;
    } else if ((arg == "--instances" || arg == "--workers") && i + 1 < argc) {
      const int value = std::atoi(argv[++i]);
      if (value < 1 || value > 64) {
        std::fprintf(stderr, "%s must be between 1 and 64\n", arg.c_str());
        return 2;
      }
      (arg == "--instances" ? instances : workers) = value;
    } else if (arg == "--token-budget") {
      budget = budget_kind::tokens;
    } else if (arg == "--postgres") {
      postgres = true;
      if (i + 1 < argc && std::strncmp(argv[i + 1], "--", 2) != 0) conninfo = argv[++i];
    } else if (arg == "--help" || arg == "-h") {
      usage();
      return 0;
    } else {
      std::fprintf(stderr, "unknown argument: %s\n", arg.c_str());
      usage();
      return 2;
    }
  }
  try {
    if (!postgres) return run_simulated(quick, budget, instances, workers);
#if STOCKADE_STORM_WITH_POSTGRES
    storm::console out;
    storm::pg_storm_options options{
        .conninfo = conninfo, .restart_command = "", .quick = quick, .budget = budget};
    if (const char* restart = std::getenv("STOCKADE_PG_RESTART")) options.restart_command = restart;
    std::printf("Cold-start storm against PostgreSQL (see docs/cold-start-storm.md)\n\n");
    const storm::pg_storm_report report = storm::run_postgres_storm(options, out);
    std::printf("\n%s\n", report.server.c_str());
    storm::print_postgres_report(report);
    return 0;
#else
    std::fputs("this build has no libpq: install libpq-dev (Debian) and configure again\n", stderr);
    return 2;
#endif
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cold_start_storm: %s\n", e.what());
    return 1;
  }
}
