// Durations as a person writes them ("1.5s", "200ms"), for describe() and for messages.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "../clock.hpp"

namespace stockade::detail {

/// "0s", "250ns", "1.5us", "200ms", "15.5s", "98s", "10.000000001s", "5min" (whole minutes
/// only), exact; "forever" for duration::max().
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
    int decimals;  // digits of a nanosecond count below one unit
    const char* name;
  };
  constexpr unit units[] = {
      {60'000'000'000, 0, "min"}, {1'000'000'000, 9, "s"}, {1'000'000, 6, "ms"}, {1'000, 3, "us"}};
  for (const unit u : units) {
    if (d.count() < u.ns) continue;
    if (u.decimals == 0 && d.count() % u.ns != 0) continue;  // 98s, not 1.633min
    // Exact, never rounded: a bound of 10 s + 1 ns must not read "10s".
    std::string text = std::to_string(d.count() / u.ns);
    if (const std::int64_t rest = d.count() % u.ns; rest != 0) {
      std::string fraction = std::to_string(rest);
      fraction.insert(0, static_cast<std::size_t>(u.decimals) - fraction.size(), '0');
      fraction.erase(fraction.find_last_not_of('0') + 1);
      text += '.';
      text += fraction;
    }
    text += u.name;
    return text;
  }
  return std::to_string(d.count()) + "ns";
}

}  // namespace stockade::detail
