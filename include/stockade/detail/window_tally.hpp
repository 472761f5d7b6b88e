// Counts a trip strategy's window holds, and the one ratio test every strategy uses.
// Invariant: a ratio is "reached" at exactly the threshold (>=), with a relative tolerance far
// below one call, so 0.1 of 100 calls trips at exactly 10 failures despite binary rounding.
#pragma once

#include <cstdint>

namespace stockade::detail {

struct window_tally {
  std::uint64_t calls = 0;
  std::uint64_t failures = 0;
  std::uint64_t slow_calls = 0;
  friend constexpr bool operator==(const window_tally&, const window_tally&) noexcept = default;
};

/// count / total >= ratio, for ratio in (0, 1]; false when total is 0.
constexpr bool ratio_reached(std::uint64_t count, std::uint64_t total, double ratio) noexcept {
  if (total == 0) return false;
  return static_cast<double>(count) >=
         ratio * static_cast<double>(total) * (1.0 - 1e-12);  // tolerance: < 1 call below 1e12
}

/// The smallest count with count / total >= ratio (at least 1).
constexpr std::uint64_t count_for_ratio(std::uint64_t total, double ratio) noexcept {
  if (total == 0) return 1;
  auto count = static_cast<std::uint64_t>(ratio * static_cast<double>(total));  // within 1
  while (count > 1 && ratio_reached(count - 1, total, ratio)) --count;
  while (count < total && !ratio_reached(count, total, ratio)) ++count;
  return count < 1 ? 1 : count;
}

}  // namespace stockade::detail
