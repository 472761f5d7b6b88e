// Arithmetic on worst-case quantities that must never wrap: a sum or product that would overflow
// stays at the largest value (duration::max() reads as "forever").
#pragma once

#include <cstdint>
#include <limits>

#include "../clock.hpp"

namespace stockade::detail {

constexpr duration saturating_sum(duration a, duration b) noexcept {
  return b > duration::max() - a ? duration::max() : a + b;
}

constexpr duration saturating_product(duration a, std::int64_t times) noexcept {
  if (times <= 0 || a <= duration::zero()) return duration::zero();
  return a.count() > std::numeric_limits<duration::rep>::max() / times ? duration::max()
                                                                       : a * times;
}

constexpr std::int64_t saturating_product(std::int64_t a, std::int64_t b) noexcept {
  if (a <= 0 || b <= 0) return 0;
  return a > std::numeric_limits<std::int64_t>::max() / b ? std::numeric_limits<std::int64_t>::max()
                                                          : a * b;
}

}  // namespace stockade::detail
