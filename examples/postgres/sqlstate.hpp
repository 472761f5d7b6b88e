// PostgreSQL errors for stockade: an exception that carries the SQLSTATE, and the rule that turns
// a SQLSTATE into a stockade verdict. No libpq here, so the simulated database can throw the same
// errors and the pipeline classifies both alike. Invariant: a verdict depends only on the code
// (and on whether the session is lost), never on the message text, which the server localises.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include <stockade/classifier.hpp>
#include <stockade/verdict.hpp>

namespace pg {

/// An error reported by the server or by the client library, with its five-character SQLSTATE
/// ("" when nobody gave one). `connection_lost`: the session is unusable afterwards, whatever
/// the code says (the socket closed, or the client gave up on it mid-statement).
class error : public std::runtime_error {
 public:
  error(std::string sqlstate, const std::string& message, bool connection_lost = false)
      : std::runtime_error(message.empty() ? sqlstate : sqlstate + ": " + message),
        sqlstate_(std::move(sqlstate)),
        connection_lost_(connection_lost) {}

  const std::string& sqlstate() const noexcept { return sqlstate_; }
  bool connection_lost() const noexcept { return connection_lost_; }

 private:
  std::string sqlstate_;
  bool connection_lost_;
};

// The codes the examples name (PostgreSQL's Appendix A, "PostgreSQL Error Codes").
inline constexpr std::string_view too_many_connections = "53300";
inline constexpr std::string_view admin_shutdown = "57P01";  // pg_terminate_backend, fast stop
inline constexpr std::string_view crash_shutdown = "57P02";
inline constexpr std::string_view cannot_connect_now = "57P03";  // starting up, shutting down
inline constexpr std::string_view query_canceled = "57014";      // also: a client-side timeout
inline constexpr std::string_view connection_failure = "08006";
inline constexpr std::string_view connection_does_not_exist = "08003";
inline constexpr std::string_view unable_to_connect = "08001";
inline constexpr std::string_view serialization_failure = "40001";
inline constexpr std::string_view deadlock_detected = "40P01";

/// What a SQLSTATE means for a retrying caller.
/// - fatal: the session is broken; only a new connection helps (08xxx on an open session, 57P01
///   and 57P02: the backend is gone).
/// - transient: the same statement may succeed later, on this session or a new one (53xxx: the
///   server is short of connections, memory or disk; 57P03: it is starting or stopping; 08001
///   and 08004: a connection could not be made, there is nothing to reset; 40001 and 40P01:
///   serialization failure and deadlock, the textbook retry; 57014: cancelled or timed out;
///   55P03: lock not available).
/// - permanent: the statement itself is wrong and will fail again (23xxx constraint violations,
///   22xxx data errors, 42xxx syntax and access, 28xxx authentication, 3D000 unknown database,
///   0A000 unsupported, 25xxx wrong transaction state, 57P04 database dropped, XX001/XX002
///   corruption).
/// - anything else, and an empty code: transient, like stockade's default for unknown errors.
constexpr stockade::verdict verdict_for(std::string_view sqlstate) noexcept {
  using stockade::verdict;
  if (sqlstate.size() != 5) return verdict::transient;
  const std::string_view group = sqlstate.substr(0, 2);
  if (group == "08") {
    return sqlstate == "08001" || sqlstate == "08004" ? verdict::transient : verdict::fatal;
  }
  if (sqlstate == "57P01" || sqlstate == "57P02") return verdict::fatal;
  if (sqlstate == "57P04") return verdict::permanent;
  if (sqlstate == "XX001" || sqlstate == "XX002") return verdict::permanent;
  if (group == "23" || group == "22" || group == "42" || group == "28" || group == "0A" ||
      group == "25" || sqlstate == "3D000") {
    return verdict::permanent;
  }
  return verdict::transient;  // 53xxx, 57P03, 57014, 40001, 40P01, 55P03, XX000 and the unknown
}

/// The verdict for one error: a lost session is fatal whatever its code (a new connection is
/// needed before anything else can succeed), except where the code says the statement itself
/// is wrong.
inline stockade::verdict verdict_of(const error& e) noexcept {
  const stockade::verdict by_code = verdict_for(e.sqlstate());
  if (e.connection_lost() && by_code == stockade::verdict::transient)
    return stockade::verdict::fatal;
  return by_code;
}

/// The classifier a pipeline that calls PostgreSQL uses: pg::error by its SQLSTATE, everything
/// else by stockade's defaults.
///   auto policy = stockade::pipeline{...}.classify_with(pg::classifier());
inline auto classifier() {
  return stockade::classifier{stockade::when<error>([](const error& e) { return verdict_of(e); })};
}

}  // namespace pg
