// Errors that stockade's policies raise: one base type (`stockade::error`) and one
// `errc` enum with its std::error_category, so callers can catch one type or compare codes.
// Invariant: a code is a rejection (the policy refused, the dependency was not called)
// exactly when is_rejection(code) says so; classifiers and breakers rely on it.
#pragma once

#include <chrono>
#include <stdexcept>
#include <string>
#include <system_error>

namespace stockade {

enum class errc {
  // Rejections: a policy refused the call on its own state; the dependency never saw it.
  circuit_open = 1,         ///< circuit breaker is open or half-open without a free trial permit
  circuit_isolated,         ///< circuit breaker was forced open by the operator
  bulkhead_full,            ///< no free slot and the waiting queue is full
  bulkhead_wait_exceeded,   ///< waited for a slot longer than max_wait or the deadline allows
  detached_limit_reached,   ///< too many abandoned detached calls still running
  deadline_already_passed,  ///< the call's deadline had passed before the policy could run it
  cancelled,                ///< the caller's stop token fired while a policy waited (for a slot,
                            ///< a warm-up, a detached call): the callee never ran or was abandoned
  warmup_cooling_down,      ///< a warm-up failed lately and the gate waits out its cool-down
  // Failures observed by a policy; they describe the dependency, so breakers may count them.
  timeout,               ///< the attempt did not finish before its deadline
  warmup_failed,         ///< the warm-up action failed (this caller ran it or waited for it)
  warmup_wait_exceeded,  ///< a warm-up was still running when the caller's deadline passed
  unhealthy,             ///< the health check reported the dependency unhealthy
  resource_closed,       ///< the managed resource was shut down
  injected_fault,        ///< a fault-injection policy failed this call on purpose
};

/// True for the codes that mean "a policy refused; the dependency was not called".
constexpr bool is_rejection(errc code) noexcept {
  switch (code) {
    case errc::circuit_open:
    case errc::circuit_isolated:
    case errc::bulkhead_full:
    case errc::bulkhead_wait_exceeded:
    case errc::detached_limit_reached:
    case errc::deadline_already_passed:
    case errc::cancelled:
    case errc::warmup_cooling_down:
      return true;
    default:
      return false;
  }
}

constexpr const char* to_string(errc code) noexcept {
  switch (code) {
    case errc::circuit_open:
      return "circuit open";
    case errc::circuit_isolated:
      return "circuit isolated";
    case errc::bulkhead_full:
      return "bulkhead full";
    case errc::bulkhead_wait_exceeded:
      return "bulkhead wait exceeded";
    case errc::detached_limit_reached:
      return "too many detached calls still running";
    case errc::deadline_already_passed:
      return "deadline already passed";
    case errc::cancelled:
      return "cancelled";
    case errc::warmup_cooling_down:
      return "warm-up cooling down";
    case errc::timeout:
      return "timeout";
    case errc::warmup_failed:
      return "warm-up failed";
    case errc::warmup_wait_exceeded:
      return "warm-up wait exceeded";
    case errc::unhealthy:
      return "unhealthy";
    case errc::resource_closed:
      return "resource closed";
    case errc::injected_fault:
      return "injected fault";
  }
  return "unknown stockade error";
}

namespace detail {
class error_category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "stockade"; }
  std::string message(int code) const override { return to_string(static_cast<errc>(code)); }
};
}  // namespace detail

inline const std::error_category& error_category() noexcept {
  static const detail::error_category_impl category;
  return category;
}

inline std::error_code make_error_code(errc code) noexcept {
  return {static_cast<int>(code), error_category()};
}

/// The one exception type stockade's policies throw. `retry_after()` carries a hint
/// (e.g. an open breaker's remaining open time); zero means "no hint".
class error : public std::runtime_error {
 public:
  explicit error(errc code, std::chrono::nanoseconds retry_after = {})
      : std::runtime_error(to_string(code)), code_(code), retry_after_(retry_after) {}
  error(errc code, const std::string& what, std::chrono::nanoseconds retry_after = {})
      : std::runtime_error(what), code_(code), retry_after_(retry_after) {}

  errc code() const noexcept { return code_; }
  std::error_code error_code() const noexcept { return make_error_code(code_); }
  bool is_rejection() const noexcept { return stockade::is_rejection(code_); }
  std::chrono::nanoseconds retry_after() const noexcept { return retry_after_; }

 private:
  errc code_;
  std::chrono::nanoseconds retry_after_;
};

}  // namespace stockade

template <>
struct std::is_error_code_enum<stockade::errc> : std::true_type {};
