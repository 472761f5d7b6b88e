// A small libpq helper for the examples and the PostgreSQL storm test: a session whose connect and
// statements are bounded by a deadline (libpq's asynchronous API and poll(), never a call that
// blocks without limit), errors as pg::error with their SQLSTATE, and a check that a connection
// target is on this machine. Invariant: every wait here ends by the deadline; a statement that
// times out closes its session (it cannot be reused mid-statement), so the error says it is lost.
#pragma once

#include <libpq-fe.h>
#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sqlstate.hpp"

namespace pg {

using clock_type = std::chrono::steady_clock;
using time_point = clock_type::time_point;

/// Connection parameters as libpq keywords, e.g. {{"dbname", conninfo}, {"user", "app"}}. A
/// "dbname" value that is a connection string or URI is expanded; later keywords override it.
using parameters = std::vector<std::pair<std::string, std::string>>;

/// The rows of one statement, as text (NULL as the empty string).
struct rows {
  std::vector<std::vector<std::string>> values;
  long affected = 0;  // INSERT/UPDATE/DELETE: rows affected
};

namespace detail {

/// The longest any single wait may last, whatever deadline the caller gave: a bound on every
/// loop even for a caller that passed "no deadline".
inline constexpr std::chrono::seconds longest_wait{60};

inline time_point bounded(time_point deadline) {
  return std::min(deadline, clock_type::now() + longest_wait);
}

/// Waits until `socket` is ready for `events` or the deadline passes; false at the deadline.
inline bool wait_socket(int socket, short events, time_point deadline) {
  for (;;) {
    const auto now = clock_type::now();
    if (now >= deadline) return false;
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - now).count();
    pollfd watched{socket, events, 0};
    const int ready = ::poll(&watched, 1, static_cast<int>(std::min<long long>(left, 1000)));
    if (ready > 0) return true;
    if (ready < 0 && errno != EINTR) return true;  // let libpq meet and report the error
  }
}

inline std::string trimmed(const char* message) {
  std::string text = message != nullptr ? message : "";
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

/// libpq gives no SQLSTATE for a failed connection attempt, only the server's message: map the
/// messages that matter here (English, as the server's lc_messages is in the test's cluster).
/// Anything else is "could not connect" (08001), which is transient.
inline std::string sqlstate_of_connect_failure(std::string_view message) {
  const auto has = [&](std::string_view part) { return message.find(part) != message.npos; };
  if (has("too many clients") || has("remaining connection slots are reserved")) {
    return std::string(too_many_connections);
  }
  if (has("starting up") || has("shutting down") || has("recovery mode") ||
      has("not yet accepting connections") || has("not accepting connections")) {
    return std::string(cannot_connect_now);
  }
  if (has("terminating connection")) return std::string(admin_shutdown);
  if (has("password authentication failed") || has("no pg_hba.conf entry")) return "28P01";
  if (has("does not exist")) return has("database") ? "3D000" : "28000";
  return std::string(unable_to_connect);
}

struct finish {
  void operator()(PGconn* session) const noexcept { PQfinish(session); }
};
struct clear {
  void operator()(PGresult* result) const noexcept { PQclear(result); }
};

}  // namespace detail

/// True if every host `params` would connect to is on this machine: a Unix socket, localhost,
/// 127.0.0.0/8 or ::1. Unset parameters are looked up as libpq would (PGHOST, PGHOSTADDR, then
/// the default socket directory). The tests and examples refuse any other target.
inline bool is_local_target(const parameters& params) {
  std::string host, hostaddr;
  bool host_set = false, hostaddr_set = false;
  const auto take = [&](std::string_view keyword, const std::string& value) {
    if (value.empty()) return;
    if (keyword == "host") {
      host = value;
      host_set = true;
    } else if (keyword == "hostaddr") {
      hostaddr = value;
      hostaddr_set = true;
    }
  };
  for (const auto& [keyword, value] : params) {
    if (keyword == "dbname" && value.find('=') != std::string::npos) {
      char* failure = nullptr;
      PQconninfoOption* parsed = PQconninfoParse(value.c_str(), &failure);
      if (parsed == nullptr) {
        PQfreemem(failure);
        return false;
      }
      for (PQconninfoOption* option = parsed; option->keyword != nullptr; ++option) {
        if (option->val != nullptr) take(option->keyword, option->val);
      }
      PQconninfoFree(parsed);
    } else {
      take(keyword, value);
    }
  }
  if (!host_set) {
    if (const char* env = std::getenv("PGHOST")) host = env;
  }
  if (!hostaddr_set) {
    if (const char* env = std::getenv("PGHOSTADDR")) hostaddr = env;
  }
  const auto local_name = [](std::string_view name) {
    return name.empty() || name.front() == '/' || name.front() == '@' || name == "localhost" ||
           name == "::1" || name.starts_with("127.");
  };
  const auto all_local = [&](const std::string& list) {
    std::size_t start = 0;
    for (;;) {
      const std::size_t comma = list.find(',', start);
      if (!local_name(std::string_view(list).substr(start, comma - start))) return false;
      if (comma == std::string::npos) return true;
      start = comma + 1;
    }
  };
  return all_local(host) && all_local(hostaddr);
}

/// One PostgreSQL session. Move-only; closes on destruction. Use from one thread at a time.
class connection {
 public:
  connection() = default;

  /// Connects, bounded by `deadline`. Throws pg::error: the server's refusal (53300 too many
  /// connections, 57P03 starting up...), 08001 when no connection could be made, 57014 when the
  /// deadline passed first.
  static connection open(const parameters& params, time_point deadline) {
    deadline = detail::bounded(deadline);
    std::vector<const char*> keywords, values;
    for (const auto& [keyword, value] : params) {
      keywords.push_back(keyword.c_str());
      values.push_back(value.c_str());
    }
    keywords.push_back(nullptr);
    values.push_back(nullptr);
    connection made;
    made.session_.reset(PQconnectStartParams(keywords.data(), values.data(), 1));
    if (!made.session_) throw error(std::string(unable_to_connect), "out of memory");
    PGconn* session = made.session_.get();
    if (PQstatus(session) == CONNECTION_BAD) throw made.connect_failure();
    // libpq's protocol: act as if PQconnectPoll had asked to write, then do what it asks.
    PostgresPollingStatusType step = PGRES_POLLING_WRITING;
    for (int rounds = 0; step != PGRES_POLLING_OK; ++rounds) {
      if (step == PGRES_POLLING_FAILED || rounds > 10'000) throw made.connect_failure();
      const short events = step == PGRES_POLLING_READING ? POLLIN : POLLOUT;
      if (!detail::wait_socket(PQsocket(session), events, deadline)) {
        throw error(std::string(query_canceled), "connection attempt timed out");
      }
      step = PQconnectPoll(session);
    }
    if (PQsetnonblocking(session, 1) != 0) throw made.connect_failure();
    // Notices ("table does not exist, skipping") are informational; libpq would print them to
    // stderr from whichever thread reads them.
    PQsetNoticeProcessor(
        session, [](void*, const char*) {}, nullptr);
    return made;
  }

  bool is_open() const noexcept { return session_ && PQstatus(session_.get()) == CONNECTION_OK; }
  PGconn* native() const noexcept { return session_.get(); }
  void close() noexcept { session_.reset(); }

  /// Runs one statement with text parameters, bounded by `deadline`. Throws pg::error with the
  /// server's SQLSTATE; a lost session or a timeout closes this session and says so.
  rows exec(const std::string& sql, const std::vector<std::string>& params, time_point deadline) {
    deadline = detail::bounded(deadline);
    if (!is_open()) {
      throw error(std::string(connection_does_not_exist), "the connection is closed", true);
    }
    PGconn* session = session_.get();
    std::vector<const char*> values;
    values.reserve(params.size());
    for (const auto& value : params) values.push_back(value.c_str());
    if (PQsendQueryParams(session, sql.c_str(), static_cast<int>(values.size()), nullptr,
                          values.data(), nullptr, nullptr, 0) == 0) {
      throw session_failure();
    }
    for (int flushed = PQflush(session); flushed != 0; flushed = PQflush(session)) {
      if (flushed < 0) throw session_failure();
      if (!detail::wait_socket(PQsocket(session), POLLIN | POLLOUT, deadline)) throw timed_out();
      if (PQconsumeInput(session) == 0) throw session_failure();
    }
    rows answer;
    std::unique_ptr<error> failed;
    for (int results = 0; results < 64; ++results) {
      while (PQisBusy(session) != 0) {
        if (!detail::wait_socket(PQsocket(session), POLLIN, deadline)) throw timed_out();
        if (PQconsumeInput(session) == 0 && PQisBusy(session) != 0) throw session_failure();
      }
      std::unique_ptr<PGresult, detail::clear> result(PQgetResult(session));
      if (!result) break;
      const ExecStatusType status = PQresultStatus(result.get());
      if (status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK) {
        if (results == 0) answer = rows_of(result.get());
      } else if (!failed) {
        failed = std::make_unique<error>(error_of(result.get()));
      }
    }
    if (failed) throw *failed;
    return answer;
  }

 private:
  static rows rows_of(PGresult* result) {
    rows out;
    const int count = PQntuples(result);
    const int fields = PQnfields(result);
    out.values.reserve(static_cast<std::size_t>(count));
    for (int row = 0; row < count; ++row) {
      std::vector<std::string>& line = out.values.emplace_back();
      for (int field = 0; field < fields; ++field)
        line.emplace_back(PQgetvalue(result, row, field));
    }
    const char* affected = PQcmdTuples(result);
    out.affected = affected != nullptr && *affected != '\0' ? std::atol(affected) : 0;
    return out;
  }

  error error_of(PGresult* result) const {
    const char* state = PQresultErrorField(result, PG_DIAG_SQLSTATE);
    const bool lost = PQstatus(session_.get()) == CONNECTION_BAD;
    std::string code = state != nullptr ? state : (lost ? std::string(connection_failure) : "");
    return error(std::move(code), detail::trimmed(PQresultErrorMessage(result)), lost);
  }

  error connect_failure() const {
    const std::string message = detail::trimmed(PQerrorMessage(session_.get()));
    return error(detail::sqlstate_of_connect_failure(message), message);
  }

  /// The session failed outside a result (the socket closed): it is lost.
  error session_failure() {
    error failure(std::string(connection_failure), detail::trimmed(PQerrorMessage(session_.get())),
                  true);
    close();
    return failure;
  }

  /// The deadline passed mid-statement: the session is closed, since it cannot take another
  /// statement until this one ends. The server may still complete the statement.
  error timed_out() {
    close();
    return error(std::string(query_canceled), "statement timed out; connection closed", true);
  }

  std::unique_ptr<PGconn, detail::finish> session_;
};

}  // namespace pg
