// What the storm's applications need from a database driver, so that the same naive and stockade
// code runs against the simulation (sim_db.hpp) and against PostgreSQL
// (../postgres/storm_driver.hpp). Invariant: every driver call takes a deadline and returns or
// throws by then (plus the length of one short step), so no worker of the storm can hang.
#pragma once

#include <chrono>
#include <concepts>
#include <cstdint>
#include <memory>

namespace storm {

using clock_type = std::chrono::steady_clock;
using time_point = clock_type::time_point;
using std::chrono::milliseconds;

/// How an insert treats a key it has seen: `idempotent` is INSERT ... ON CONFLICT DO NOTHING on a
/// unique key (a retry whose first reply was lost is harmless); `plain` adds a row every time.
enum class write_mode { plain, idempotent };

/// Connection counts as the driver (or, for the simulation, the server) sees them.
struct connection_figures {
  long open_now = 0;
  long peak_open = 0;         ///< most connections open at once (client side for PostgreSQL)
  long server_peak = -1;      ///< most the server itself saw (sampled for PostgreSQL); -1: unknown
  long connect_attempts = 0;  ///< connections asked for
  long opened = 0;            ///< connections made
  long refused_too_many = 0;  ///< connection attempts refused with 53300 (the limit was hit)
  long statements = 0;        ///< statements sent
};

/// The driver interface (sim_db and pg_driver satisfy it).
template <class D>
concept driver = requires(D& d, typename D::connection& c, time_point deadline) {
  { d.connect(deadline) } -> std::same_as<std::unique_ptr<typename D::connection>>;
  d.await_ready(c, deadline);
  d.insert(c, std::int64_t{1}, 0, write_mode::plain, deadline);
  { d.ping(c, deadline) } -> std::convertible_to<bool>;
  { d.figures() } -> std::same_as<connection_figures>;
};

}  // namespace storm
