// The storm itself: N workers, spread over a few application instances, start at the same moment
// and each writes one row every `request_interval` (one idempotency key per request) until the
// run ends, while disruptions (a crash, pg_terminate_backend, a restart) happen on schedule. It
// records every request's outcome and latency, prints a progress line, and afterwards checks the
// table against what was acknowledged and prints the side-by-side comparison.
// Invariant: every loop here is bounded in count and time; a run ends by run_for plus the
// longest request, and a request cannot outlive the platform's limit by more than its driver's
// own deadline.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include <stockade/errors.hpp>

#include "../postgres/sqlstate.hpp"
#include "driver.hpp"
#include "naive.hpp"

namespace storm {

// --- what a request came to ---------------------------------------------------------------------

enum class failure_kind {
  too_many_clients,  // 53300
  not_ready,         // 08003 "Engine is not yet connected", 57P03 "starting up"
  connection_lost,   // 57P01, 57P02, 08006...: the session died under the request
  server_down,       // 08001: no connection could be made
  serialization,     // 40001, 40P01
  timed_out,         // a deadline, the pool's wait, or the platform's limit
  warmup_failed,     // stockade: making or verifying a connection failed
  unhealthy,         // stockade: the health check said no
  rejected_early,    // stockade: refused without a database call (breaker, bulkhead, cool-down)
  other,
  count_
};
inline constexpr std::size_t failure_kinds = static_cast<std::size_t>(failure_kind::count_);

constexpr const char* describe(failure_kind kind) {
  constexpr std::array<const char*, failure_kinds> names = {
      "failed: too many clients (53300)",
      "failed: not yet connected (08003, 57P03)",
      "failed: connection lost (57P01, 08006)",
      "failed: cannot connect (08001)",
      "failed: serialization (40001)",
      "failed: timed out",
      "failed: warm-up failed",
      "failed: unhealthy",
      "rejected early (no database call)",
      "failed: other"};
  return names[static_cast<std::size_t>(kind)];
}

inline failure_kind kind_of_sqlstate(std::string_view code) {
  if (code == pg::too_many_connections) return failure_kind::too_many_clients;
  if (code == pg::connection_does_not_exist || code == pg::cannot_connect_now) {
    return failure_kind::not_ready;
  }
  if (code == pg::unable_to_connect || code == "08004") return failure_kind::server_down;
  if (code.starts_with("08") || code == pg::admin_shutdown || code == pg::crash_shutdown) {
    return failure_kind::connection_lost;
  }
  if (code == pg::serialization_failure || code == pg::deadlock_detected) {
    return failure_kind::serialization;
  }
  if (code == pg::query_canceled) return failure_kind::timed_out;
  return failure_kind::other;
}

inline failure_kind kind_of(const std::exception_ptr& failure) {
  try {
    std::rethrow_exception(failure);
  } catch (const pg::error& e) {
    return kind_of_sqlstate(e.sqlstate());
  } catch (const stockade::error& e) {
    if (e.is_rejection()) return failure_kind::rejected_early;
    switch (e.code()) {
      case stockade::errc::timeout:
      case stockade::errc::warmup_wait_exceeded:
        return failure_kind::timed_out;
      case stockade::errc::warmup_failed:
        return failure_kind::warmup_failed;
      case stockade::errc::unhealthy:
        return failure_kind::unhealthy;
      default:
        return failure_kind::other;
    }
  } catch (const pool_timeout&) {
    return failure_kind::timed_out;
  } catch (...) {
    return failure_kind::other;
  }
}

// --- the plan -----------------------------------------------------------------------------------

/// Something done to the database during the run; returns what it did, for the log.
struct disruption {
  milliseconds at;
  std::function<std::string()> act;
};

struct storm_plan {
  int instances = 6;
  int workers_per_instance = 8;
  milliseconds run_for{8000};
  milliseconds request_interval{25};  // each worker's pace: one request per interval at most
  milliseconds platform_limit{2000};  // a request still running then was answered "timeout"
  std::int64_t key_base = 0;
  int max_requests_per_worker = 100'000;
  std::vector<disruption> disruptions;
  /// Another client of the same database (a cron job, a migration, psql) that connects and
  /// disconnects every bystander_every during the run; returns true if it was refused because
  /// the server's connection limit was reached (53300). Empty: none.
  std::function<bool()> bystander;
  milliseconds bystander_every{200};

  int workers() const { return instances * workers_per_instance; }
  static constexpr std::int64_t keys_per_worker = 1'000'000;
  std::int64_t key_of(int worker, long request) const {
    return key_base + worker * keys_per_worker + request;
  }
};

/// One disruption as it happened.
struct disruption_record {
  double started_ms;
  double finished_ms;
  std::string what;
};

struct storm_result {
  std::string label;
  long attempted = 0;
  long succeeded = 0;
  long over_limit = 0;  // answered after the platform's limit (counted as timed out)
  std::array<long, failure_kinds> failed{};
  double p50_ms = 0, p99_ms = 0, max_ms = 0;
  connection_figures connections;
  long warmups = 0;
  double seconds = 0;
  std::vector<disruption_record> disruptions;
  std::vector<std::int64_t> acked;      // keys whose request succeeded in time
  std::vector<double> acked_at_ms;      // when, since the start (parallel to acked)
  std::vector<std::int64_t> unacked;    // keys whose request failed (the write may have happened)
  std::vector<long> issued_per_worker;  // requests issued by each worker (keys 0..n-1)
  long bystander_tries = 0;
  long bystander_refused = 0;  // the other client locked out by the connection limit

  long failed_total() const {
    long total = 0;
    for (long count : failed) total += count;
    return total;
  }
  long count(failure_kind kind) const { return failed[static_cast<std::size_t>(kind)]; }
};

// --- output -------------------------------------------------------------------------------------

/// Serialises output; on a terminal the progress line is redrawn in place, elsewhere (ctest's log)
/// it is printed as a line about once a second.
class console {
 public:
  console() : tty_(::isatty(::fileno(stdout)) != 0) {}
  void say(const std::string& line) {
    std::lock_guard lock(mutex_);
    if (tty_) std::fputs("\r\033[K", stdout);
    std::fputs(line.c_str(), stdout);
    std::fputc('\n', stdout);
    std::fflush(stdout);
  }
  void progress(const std::string& line, bool final_line) {
    std::lock_guard lock(mutex_);
    if (tty_) {
      std::fputs("\r\033[K", stdout);
      std::fputs(line.c_str(), stdout);
      if (final_line) std::fputc('\n', stdout);
    } else {
      const auto now = clock_type::now();
      if (!final_line && now - last_line_ < std::chrono::seconds(1)) return;
      last_line_ = now;
      std::fputs(line.c_str(), stdout);
      std::fputc('\n', stdout);
    }
    std::fflush(stdout);
  }

 private:
  bool tty_;
  std::mutex mutex_;
  time_point last_line_{};
};

inline std::string format(const char* pattern, auto... values) {
  char line[512];
  std::snprintf(line, sizeof line, pattern, values...);
  return line;
}

/// Holds every worker (and the disruption thread) until the run starts, so all of them begin at
/// the same moment. A gate, not a std::latch: it needs no count of who will arrive, so adding a
/// helper thread cannot leave the count wrong (a latch counted one arrival too many never opens
/// for the waiters that see it go below zero).
class start_gate {
 public:
  void wait() {
    std::unique_lock lock(mutex_);
    opened_.wait(lock, [&] { return open_; });
  }
  void open() {
    {
      std::lock_guard lock(mutex_);
      open_ = true;
    }
    opened_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable opened_;
  bool open_ = false;
};

inline double ms_between(time_point from, time_point to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

// --- the run ------------------------------------------------------------------------------------

/// Runs `plan` against `app` (anything with `void write(int instance, std::int64_t key)` and
/// `long warmups()`); `figures()` reports the connections as the driver sees them.
template <class App, class Figures>
storm_result run_storm(std::string label, App& app, Figures&& figures, const storm_plan& plan,
                       console& out) {
  struct worker_log {
    long issued = 0;
    long over_limit = 0;
    std::array<long, failure_kinds> failed{};
    std::vector<float> latency_ms;
    std::vector<std::int64_t> acked;
    std::vector<double> acked_at_ms;
    std::vector<std::int64_t> unacked;
  };
  const int workers = plan.workers();
  std::vector<worker_log> logs(static_cast<std::size_t>(workers));
  std::atomic<long> calls{0}, succeeded{0}, failures{0};
  std::atomic<int> running{workers};
  start_gate ready;
  time_point start{};  // written before the gate opens, read after it

  std::vector<std::thread> threads;
  threads.reserve(static_cast<std::size_t>(workers) + 1);
  for (int worker = 0; worker < workers; ++worker) {
    threads.emplace_back([&, worker] {
      worker_log& log = logs[static_cast<std::size_t>(worker)];
      const int instance = worker % plan.instances;
      ready.wait();
      const time_point end = start + plan.run_for;
      time_point next = start;
      for (long request = 0; request < plan.max_requests_per_worker; ++request) {
        const time_point began = clock_type::now();
        if (began >= end) break;
        const std::int64_t key = plan.key_of(worker, request);
        ++log.issued;
        calls.fetch_add(1, std::memory_order_relaxed);
        bool ok = false;
        failure_kind kind = failure_kind::other;
        try {
          app.write(instance, key);
          ok = true;
        } catch (...) {
          kind = kind_of(std::current_exception());
        }
        const time_point done = clock_type::now();
        if (ok && done - began > plan.platform_limit) {  // the platform answered 504 already
          ok = false;
          kind = failure_kind::timed_out;
          ++log.over_limit;
        }
        log.latency_ms.push_back(static_cast<float>(ms_between(began, done)));
        if (ok) {
          log.acked.push_back(key);
          log.acked_at_ms.push_back(ms_between(start, done));
          succeeded.fetch_add(1, std::memory_order_relaxed);
        } else {
          log.unacked.push_back(key);
          ++log.failed[static_cast<std::size_t>(kind)];
          failures.fetch_add(1, std::memory_order_relaxed);
        }
        next = std::max(next + plan.request_interval, done);
        if (next >= end) break;
        std::this_thread::sleep_until(next);
      }
      running.fetch_sub(1);
    });
  }

  std::vector<disruption_record> happened;
  std::mutex happened_mutex;
  std::atomic<bool> finished{false};
  threads.emplace_back([&] {  // the disruptions, on schedule
    ready.wait();
    for (const disruption& step : plan.disruptions) {
      const time_point due = start + step.at;
      while (clock_type::now() < due && !finished.load()) {
        std::this_thread::sleep_for(
            std::min<clock_type::duration>(due - clock_type::now(), milliseconds(20)));
      }
      if (finished.load()) break;
      const double began = ms_between(start, clock_type::now());
      std::string what;
      try {
        what = step.act();
      } catch (const std::exception& e) {
        what = std::string("disruption failed: ") + e.what();
      }
      const double ended = ms_between(start, clock_type::now());
      if (ended - began >= 100) what += format(" (took %.1f s)", (ended - began) / 1000);
      out.say(format("  [%5.2f s] %s", began / 1000, what.c_str()));
      std::lock_guard lock(happened_mutex);
      happened.push_back({began, ended, what});
    }
  });

  std::atomic<long> bystander_tries{0}, bystander_refused{0};
  if (plan.bystander) {
    threads.emplace_back([&] {
      ready.wait();
      const time_point end = start + plan.run_for;
      for (time_point next = start + plan.bystander_every / 2; next < end;
           next += plan.bystander_every) {
        std::this_thread::sleep_until(next);
        bystander_tries.fetch_add(1);
        if (plan.bystander()) bystander_refused.fetch_add(1);
      }
    });
  }

  start = clock_type::now() + milliseconds(10);
  ready.open();
  std::this_thread::sleep_until(start);
  const auto show = [&](bool final_line) {
    const connection_figures now = figures();
    const double run_ms = static_cast<double>(plan.run_for.count());
    const double elapsed = std::min(ms_between(start, clock_type::now()), run_ms);
    const int still = running.load();
    const std::string finishing =
        elapsed >= run_ms && still > 0 ? format("   (finishing %d)", still) : std::string();
    out.progress(
        format("  %-9s %5.1f s / %.1f s   requests %6ld   ok %6ld   failed %6ld   "
               "connections %3ld (peak %ld)%s",
               label.c_str(), elapsed / 1000, run_ms / 1000, calls.load(), succeeded.load(),
               failures.load(), now.open_now, now.peak_open, finishing.c_str()),
        final_line);
  };
  while (running.load() > 0) {
    show(false);
    std::this_thread::sleep_for(milliseconds(100));
  }
  show(true);
  const double seconds = ms_between(start, clock_type::now()) / 1000;
  finished.store(true);
  for (auto& thread : threads) thread.join();

  storm_result result;
  result.label = std::move(label);
  result.seconds = seconds;
  result.disruptions = std::move(happened);
  result.connections = figures();
  result.warmups = app.warmups();
  result.bystander_tries = bystander_tries.load();
  result.bystander_refused = bystander_refused.load();
  std::vector<float> latencies;
  for (worker_log& log : logs) {
    result.attempted += log.issued;
    result.over_limit += log.over_limit;
    for (std::size_t k = 0; k < failure_kinds; ++k) result.failed[k] += log.failed[k];
    result.succeeded += static_cast<long>(log.acked.size());
    latencies.insert(latencies.end(), log.latency_ms.begin(), log.latency_ms.end());
    result.acked.insert(result.acked.end(), log.acked.begin(), log.acked.end());
    result.acked_at_ms.insert(result.acked_at_ms.end(), log.acked_at_ms.begin(),
                              log.acked_at_ms.end());
    result.unacked.insert(result.unacked.end(), log.unacked.begin(), log.unacked.end());
    result.issued_per_worker.push_back(log.issued);
  }
  if (!latencies.empty()) {
    std::sort(latencies.begin(), latencies.end());
    const auto at = [&](double share) {
      const auto index =
          static_cast<std::size_t>(share * static_cast<double>(latencies.size() - 1));
      return static_cast<double>(latencies[index]);
    };
    result.p50_ms = at(0.50);
    result.p99_ms = at(0.99);
    result.max_ms = static_cast<double>(latencies.back());
  }
  return result;
}

// --- the writes, checked against the table ------------------------------------------------------

struct write_check {
  long acked = 0;            // requests acknowledged
  long rows = 0;             // rows in the table
  long keys = 0;             // distinct keys in the table
  long duplicate_rows = 0;   // rows beyond the first for a key
  long acked_missing = 0;    // acknowledged, yet not in the table: a lost write
  long unacked_written = 0;  // in the table, but the request failed (its reply was lost)
  long never_issued = 0;     // in the table, but no request had that key

  /// What stockade promises: nothing acknowledged is lost, nothing is written twice, nothing
  /// appears that was not asked for.
  bool sound() const { return acked_missing == 0 && duplicate_rows == 0 && never_issued == 0; }
};

inline bool was_issued(const storm_plan& plan, const std::vector<long>& issued, std::int64_t key) {
  const std::int64_t offset = key - plan.key_base;
  if (offset < 0) return false;
  const std::int64_t worker = offset / storm_plan::keys_per_worker;
  const std::int64_t request = offset % storm_plan::keys_per_worker;
  return worker < static_cast<std::int64_t>(issued.size()) &&
         request < issued[static_cast<std::size_t>(worker)];
}

inline write_check check_writes(const storm_result& run, const storm_plan& plan,
                                const std::unordered_map<std::int64_t, int>& table) {
  write_check check;
  check.acked = static_cast<long>(run.acked.size());
  for (const auto& [key, rows] : table) {
    check.rows += rows;
    ++check.keys;
    check.duplicate_rows += rows - 1;
    if (!was_issued(plan, run.issued_per_worker, key)) ++check.never_issued;
  }
  for (std::int64_t key : run.acked) {
    if (!table.contains(key)) ++check.acked_missing;
  }
  for (std::int64_t key : run.unacked) {
    if (table.contains(key)) ++check.unacked_written;
  }
  return check;
}

/// The failed requests sent again, as a queue would redeliver them: safe only because each has an
/// idempotency key. `passes` rounds at most, bounded by `limit` in all.
struct redelivery {
  long tried = 0;
  long acknowledged = 0;
  long still_failed = 0;
  std::vector<std::int64_t> acked;
};

template <class App>
redelivery redeliver(App& app, const storm_result& run, const storm_plan& plan, int passes,
                     milliseconds limit) {
  const int workers = plan.workers();
  std::vector<std::vector<std::int64_t>> pending(static_cast<std::size_t>(workers));
  for (std::int64_t key : run.unacked) {
    const auto worker =
        static_cast<std::size_t>((key - plan.key_base) / storm_plan::keys_per_worker);
    pending[worker].push_back(key);
  }
  const time_point give_up_at = clock_type::now() + limit;
  std::vector<redelivery> parts(static_cast<std::size_t>(workers));
  std::vector<std::thread> threads;
  for (int worker = 0; worker < workers; ++worker) {
    threads.emplace_back([&, worker] {
      auto& keys = pending[static_cast<std::size_t>(worker)];
      redelivery& part = parts[static_cast<std::size_t>(worker)];
      part.tried = static_cast<long>(keys.size());
      for (int pass = 0; pass < passes && !keys.empty(); ++pass) {
        if (pass > 0) std::this_thread::sleep_for(plan.platform_limit / 4);
        std::vector<std::int64_t> failed_again;
        for (std::int64_t key : keys) {
          if (clock_type::now() >= give_up_at) {
            failed_again.push_back(key);
            continue;
          }
          try {
            app.write(worker % plan.instances, key);
            part.acked.push_back(key);
          } catch (...) {
            failed_again.push_back(key);
          }
        }
        keys.swap(failed_again);
      }
      part.still_failed = static_cast<long>(keys.size());
    });
  }
  for (auto& thread : threads) thread.join();
  redelivery total;
  for (redelivery& part : parts) {
    total.tried += part.tried;
    total.still_failed += part.still_failed;
    total.acked.insert(total.acked.end(), part.acked.begin(), part.acked.end());
  }
  total.acknowledged = static_cast<long>(total.acked.size());
  return total;
}

/// After a redelivery: does the table hold every key that was ever issued, exactly once?
struct exactly_once {
  long issued = 0;
  long missing = 0;
  long duplicated = 0;
  long unknown = 0;
  bool holds() const { return missing == 0 && duplicated == 0 && unknown == 0; }
};

inline exactly_once check_exactly_once(const storm_result& run, const storm_plan& plan,
                                       const std::unordered_map<std::int64_t, int>& table) {
  exactly_once check;
  for (std::size_t worker = 0; worker < run.issued_per_worker.size(); ++worker) {
    for (long request = 0; request < run.issued_per_worker[worker]; ++request) {
      ++check.issued;
      const auto found = table.find(plan.key_of(static_cast<int>(worker), request));
      if (found == table.end()) {
        ++check.missing;
      } else if (found->second > 1) {
        ++check.duplicated;
      }
    }
  }
  for (const auto& entry : table) {
    if (!was_issued(plan, run.issued_per_worker, entry.first)) ++check.unknown;
  }
  return check;
}

// --- the table ----------------------------------------------------------------------------------

/// Prints `label` then `text`, wrapped at 100 columns under the text's first column.
inline void print_wrapped(const std::string& label, const std::string& text) {
  const std::size_t indent = label.size();
  std::string line = label;
  std::size_t word_start = 0;
  while (word_start < text.size()) {
    std::size_t word_end = text.find(' ', word_start);
    if (word_end == std::string::npos) word_end = text.size();
    const std::string word = text.substr(word_start, word_end - word_start);
    if (line.size() > indent && line.size() + 1 + word.size() > 100) {
      std::printf("%s\n", line.c_str());
      line = std::string(indent, ' ');
    }
    if (line.size() > indent) line += ' ';
    line += word;
    word_start = word_end + 1;
  }
  std::printf("%s\n", line.c_str());
}

inline void print_comparison(const storm_result& naive, const storm_result& resilient,
                             const write_check& naive_writes, const write_check& resilient_writes,
                             const storm_plan& plan, long connection_limit) {
  const auto row = [](const std::string& name, auto left, auto right) {
    if constexpr (std::is_floating_point_v<decltype(left)>) {
      std::printf("  %-44s %10.1f %10.1f\n", name.c_str(), left, right);
    } else {
      std::printf("  %-44s %10ld %10ld\n", name.c_str(), static_cast<long>(left),
                  static_cast<long>(right));
    }
  };
  std::printf("\n  %-44s %10s %10s\n", "", "naive", "stockade");
  row("requests attempted", naive.attempted, resilient.attempted);
  row("  succeeded (acknowledged in time)", naive.succeeded, resilient.succeeded);
  for (std::size_t k = 0; k < failure_kinds; ++k) {
    const auto kind = static_cast<failure_kind>(k);
    if (naive.failed[k] == 0 && resilient.failed[k] == 0) continue;
    std::string name = std::string("  ") + describe(kind);
    if (kind == failure_kind::timed_out) {
      name += format(" (%ld, %ld over %.1f s)", naive.over_limit, resilient.over_limit,
                     static_cast<double>(plan.platform_limit.count()) / 1000);
    }
    row(name, naive.failed[k], resilient.failed[k]);
  }
  row("latency p50 (ms)", naive.p50_ms, resilient.p50_ms);
  row("latency p99 (ms)", naive.p99_ms, resilient.p99_ms);
  row("latency max (ms)", naive.max_ms, resilient.max_ms);
  row(format("peak connections (limit %ld)", connection_limit), naive.connections.peak_open,
      resilient.connections.peak_open);
  if (naive.connections.server_peak >= 0 &&
      naive.connections.server_peak != naive.connections.peak_open) {
    row("  as the server saw them (sampled)", naive.connections.server_peak,
        resilient.connections.server_peak);
  }
  row("connections opened", naive.connections.opened, resilient.connections.opened);
  row("connections refused: limit hit (53300)", naive.connections.refused_too_many,
      resilient.connections.refused_too_many);
  if (naive.bystander_tries > 0) {
    row("another client's connects", naive.bystander_tries, resilient.bystander_tries);
    row("  refused: limit reached (53300)", naive.bystander_refused, resilient.bystander_refused);
  }
  row("warm-ups run", naive.warmups, resilient.warmups);
  row("statements sent to the database", naive.connections.statements,
      resilient.connections.statements);
  row("rows in the table", naive_writes.rows, resilient_writes.rows);
  row("  duplicate rows (a key written twice)", naive_writes.duplicate_rows,
      resilient_writes.duplicate_rows);
  row("  acknowledged but missing (lost)", naive_writes.acked_missing,
      resilient_writes.acked_missing);
  row("  written, but the request failed", naive_writes.unacked_written,
      resilient_writes.unacked_written);
  std::printf("\n");
}

}  // namespace storm
