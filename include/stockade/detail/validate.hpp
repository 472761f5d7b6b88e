// Checks of policy configurations. A check that fails throws std::invalid_argument naming the
// policy, the field and the value; in a constant expression the throw makes the configuration
// fail to compile instead.
#pragma once

#include <chrono>
#include <concepts>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "../verdict.hpp"

namespace stockade::detail {

inline std::string value_text(double value) { return std::to_string(value); }
inline std::string value_text(bool value) { return value ? "true" : "false"; }
template <std::integral T>
std::string value_text(T value) {
  return std::to_string(value);
}
/// A set of verdicts as written in code, e.g. "{transient, permanent}".
inline std::string value_text(verdict_set set) {
  std::string text = "{";
  for (const verdict v :
       {verdict::success, verdict::transient, verdict::fatal, verdict::permanent}) {
    if (!set.contains(v)) continue;
    if (text.size() > 1) text += ", ";
    text += to_string(v);
  }
  return text + "}";
}
template <class Rep, class Period>
std::string value_text(std::chrono::duration<Rep, Period> value) {
  return std::to_string(std::chrono::duration_cast<std::chrono::nanoseconds>(value).count()) + "ns";
}

template <class T>
[[noreturn]] void throw_invalid_config(const char* policy, const char* field, const char* rule,
                                       const T& value) {
  throw std::invalid_argument(std::string("stockade::") + policy + ": " + field + " " + rule +
                              " (got " + value_text(value) + ")");
}

/// require(cfg.max_attempts >= 1, "retry", "max_attempts", "must be at least 1", cfg.max_attempts)
/// -> std::invalid_argument("stockade::retry: max_attempts must be at least 1 (got 0)")
template <class T>
constexpr void require(bool ok, const char* policy, const char* field, const char* rule,
                       const T& value) {
  if (!ok) throw_invalid_config(policy, field, rule, value);
}

}  // namespace stockade::detail
