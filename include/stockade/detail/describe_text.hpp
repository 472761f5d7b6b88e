// Text for describe(): backoff schedules and jitter as they are configured.
#pragma once

#include <cstdio>
#include <string>

#include "../backoff.hpp"
#include "duration_text.hpp"

namespace stockade::detail {

inline std::string backoff_text(const constant& schedule) {
  return "constant " + duration_text(schedule.interval);
}
inline std::string backoff_text(const linear& schedule) {
  return "linear " + duration_text(schedule.initial) + " + " + duration_text(schedule.increment) +
         " up to " + duration_text(schedule.max_delay);
}
inline std::string backoff_text(const exponential& schedule) {
  char multiplier[32];
  std::snprintf(multiplier, sizeof multiplier, "%g", schedule.multiplier);
  return "exponential " + duration_text(schedule.initial) + " x" + multiplier + " up to " +
         duration_text(schedule.max_delay);
}
inline std::string backoff_text(const backoff_schedule& schedule) {
  switch (schedule.which()) {
    case backoff_schedule::kind::constant:
      return backoff_text(schedule.as_constant());
    case backoff_schedule::kind::linear:
      return backoff_text(schedule.as_linear());
    case backoff_schedule::kind::exponential:
      return backoff_text(schedule.as_exponential());
  }
  return "backoff";
}
/// A user-defined backoff: its own describe() if it has one.
template <class B>
std::string backoff_text(const B& schedule) {
  if constexpr (requires { std::string(schedule.describe()); }) {
    return std::string(schedule.describe());
  } else {
    return "custom backoff";
  }
}

inline std::string jitter_text(const jitter& choice) {
  if (choice.kind != jitter_kind::proportional) return to_string(choice.kind);
  char text[48];
  std::snprintf(text, sizeof text, "proportional +-%g%%", choice.spread * 100.0);
  return text;
}

}  // namespace stockade::detail
