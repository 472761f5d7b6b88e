// The verdict of one attempt, decided once by the pipeline's classifier and read by every layer.
// Invariant: a rejection made by a policy is flagged `rejected`, so no other layer mistakes it
// for a failure of the dependency (an outer breaker never counts an inner bulkhead's "full").
#pragma once

#include <chrono>
#include <cstdint>
#include <initializer_list>

namespace stockade {

enum class verdict : std::uint8_t {
  success,    ///< the call did what was asked
  transient,  ///< the dependency failed in a way that a later attempt may not
  fatal,      ///< the resource is broken: reset it (reconnect, re-warm), then a retry may help
  permanent,  ///< the caller's fault: never retried, never a failure of the dependency
};

constexpr const char* to_string(verdict v) noexcept {
  switch (v) {
    case verdict::success:
      return "success";
    case verdict::transient:
      return "transient";
    case verdict::fatal:
      return "fatal";
    case verdict::permanent:
      return "permanent";
  }
  return "unknown";
}

/// A set of verdicts, e.g. which ones a retry retries or a breaker counts as failures.
class verdict_set {
 public:
  constexpr verdict_set() noexcept = default;
  constexpr verdict_set(std::initializer_list<verdict> verdicts) noexcept {
    for (verdict v : verdicts) bits_ = static_cast<std::uint8_t>(bits_ | bit(v));
  }
  constexpr bool contains(verdict v) const noexcept { return (bits_ & bit(v)) != 0; }
  constexpr bool empty() const noexcept { return bits_ == 0; }
  friend constexpr bool operator==(verdict_set, verdict_set) noexcept = default;

 private:
  static constexpr std::uint8_t bit(verdict v) noexcept {
    return static_cast<std::uint8_t>(1U << static_cast<unsigned>(v));
  }
  std::uint8_t bits_ = 0;
};

/// What one attempt came to: its verdict, whether a policy (not the dependency) refused it,
/// and a retry-after hint (zero: none) from the classifier or the rejecting policy.
struct outcome {
  verdict kind = verdict::success;
  bool rejected = false;
  std::chrono::nanoseconds retry_after{0};

  constexpr outcome() noexcept = default;
  constexpr outcome(verdict v) noexcept : kind(v) {}  // NOLINT: a bare verdict is an outcome
  constexpr outcome(verdict v, std::chrono::nanoseconds hint, bool by_policy = false) noexcept
      : kind(v), rejected(by_policy), retry_after(hint) {}

  constexpr bool succeeded() const noexcept { return kind == verdict::success; }
  /// A failure of the dependency itself: not a success, not the caller's fault, not a rejection.
  constexpr bool is_dependency_failure() const noexcept {
    return !rejected && (kind == verdict::transient || kind == verdict::fatal);
  }
  friend constexpr bool operator==(const outcome&, const outcome&) noexcept = default;
};

}  // namespace stockade
