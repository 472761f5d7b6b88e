// Durations as a person writes them ("1.5s", "200ms"), for describe() and for messages.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

#include "../clock.hpp"

namespace stockade::detail {

/// "0s", "250ns", "1.5us", "200ms", "15.5s", "98s", "5min" (whole minutes only); "forever" for
/// duration::max().
inline std::string duration_text(duration d) {
  if (d == duration::max()) return "forever";
  if (d < duration::zero()) {
    // Appended, not "-" + text: g++ 12 at -O3 warns (-Wrestrict) on the latter, wrongly.
    std::string text = "-";
    text += d == duration::min() ? "forever" : duration_text(-d);
    return text;
  }
  if (d == duration::zero()) return "0s";
  struct unit {
    std::int64_t ns;
    const char* name;
  };
  constexpr unit units[] = {
      {60'000'000'000, "min"}, {1'000'000'000, "s"}, {1'000'000, "ms"}, {1'000, "us"}};
  for (const unit u : units) {
    if (d.count() < u.ns) continue;
    if (u.ns == 60'000'000'000 && d.count() % u.ns != 0) continue;  // 98s, not 1.633min
    const double amount = static_cast<double>(d.count()) / static_cast<double>(u.ns);
    char text[48];
    std::snprintf(text, sizeof text, "%.6g%s", amount, u.name);
    return text;
  }
  return std::to_string(d.count()) + "ns";
}

}  // namespace stockade::detail
