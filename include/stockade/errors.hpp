// Errors that policies raise: one exception type (`stockade::error`) carrying a std::error_code,
// so callers can catch one type or compare codes. Each family of policies has its own
// category, derived from policy_error_category (stockade's own: `errc`), so a policy written
// outside the library brings its own codes without touching this header.
// Invariant: a code is a rejection (the policy refused, the dependency was not called) exactly
// when its category's is_rejection() says so; classifiers and breakers rely on it.
#pragma once

#include <chrono>
#include <stdexcept>
#include <string>
#include <system_error>

#include "verdict.hpp"

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
  // Failures observed by a policy; they describe the dependency, so breakers may count them.
  timeout,               ///< the attempt did not finish before its deadline
  warmup_failed,         ///< the warm-up action failed (this caller ran it or waited for it)
  warmup_wait_exceeded,  ///< a warm-up was still running when the caller's deadline passed
  unhealthy,             ///< the health check reported the dependency unhealthy
  resource_closed,       ///< the managed resource was shut down
  injected_fault,        ///< a fault-injection policy failed this call on purpose
  // A rejection again, added last so the values above keep their numbers.
  warmup_cooling_down,  ///< a warm-up failed lately and the gate waits out its cool-down
};

}  // namespace stockade

template <>
struct std::is_error_code_enum<stockade::errc> : std::true_type {};

namespace stockade {

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

/// The category of the errors one family of policies raises. A policy written outside the
/// library derives its own from this one (docs/custom-policy.md) and says here which of its codes
/// are rejections and how the default rules classify the others.
class policy_error_category : public std::error_category {
 public:
  /// True for a code that means "the policy refused; the dependency was not called". The
  /// classifier marks such an error `rejected`, before any user rule, so no breaker, budget or
  /// outer policy takes it for a failure of the dependency.
  virtual bool is_rejection(int code) const noexcept = 0;
  /// The verdict the default rules give a code that is not a rejection (a rejection is always
  /// transient and flagged). Default: transient, as the default rules treat unknown failures.
  virtual verdict verdict_of(int /*code*/) const noexcept { return verdict::transient; }
};

namespace detail {
/// The verdict the default rules give one of stockade's own codes that is not a rejection:
/// resource_closed is permanent (the application shut the resource down: retrying cannot help);
/// every other failure stockade raises (timeout, warm-up, health) is transient.
constexpr verdict verdict_of_own(errc code) noexcept {
  return code == errc::resource_closed ? verdict::permanent : verdict::transient;
}

class error_category_impl final : public policy_error_category {
 public:
  const char* name() const noexcept override { return "stockade"; }
  std::string message(int code) const override { return to_string(static_cast<errc>(code)); }
  bool is_rejection(int code) const noexcept override {
    return stockade::is_rejection(static_cast<errc>(code));
  }
  verdict verdict_of(int code) const noexcept override {
    return verdict_of_own(static_cast<errc>(code));
  }
};

/// The family of `code`, which must derive from policy_error_category (else
/// std::invalid_argument), so that its rejections are known.
inline const policy_error_category& policy_family_of(const std::error_code& code) {
  const auto* family = dynamic_cast<const policy_error_category*>(&code.category());
  if (family == nullptr) {
    throw std::invalid_argument(std::string("stockade: the error category \"") +
                                code.category().name() +
                                "\" does not derive from stockade::policy_error_category");
  }
  return *family;
}

// Made at compile time (constinit): reading it costs no initialisation check, which a
// function-local static would add to every error a policy raises.
inline constinit const error_category_impl stockade_category{};

/// How the default rules classify an error a policy raised: a rejection stays a rejection
/// (transient, flagged, with its hint); any other code gets its family's verdict, and a thrown
/// or returned error is never a success (read as transient).
inline outcome outcome_of_family_error(const policy_error_category& family, int code,
                                       std::chrono::nanoseconds retry_after) noexcept {
  if (family.is_rejection(code)) return {verdict::transient, retry_after, true};
  const verdict kind = family.verdict_of(code);
  if (kind == verdict::permanent) return kind;  // never retried: a hint would mean nothing
  return {kind == verdict::success ? verdict::transient : kind, retry_after};
}
constexpr outcome outcome_of_own_error(errc code, std::chrono::nanoseconds retry_after) noexcept {
  if (stockade::is_rejection(code)) return {verdict::transient, retry_after, true};
  if (verdict_of_own(code) == verdict::permanent) return verdict::permanent;
  return {verdict::transient, retry_after};
}
/// Either of the two; stockade's own codes inline and without a virtual call, since a
/// breaker's refusal is on a hot path.
[[gnu::always_inline]] inline outcome outcome_of_policy_error(
    const policy_error_category& family, int code, std::chrono::nanoseconds retry_after) noexcept {
  if (&family == &stockade_category)
    return outcome_of_own_error(static_cast<errc>(code), retry_after);
  return outcome_of_family_error(family, code, retry_after);
}
}  // namespace detail

inline const policy_error_category& error_category() noexcept { return detail::stockade_category; }

inline std::error_code make_error_code(errc code) noexcept {
  return {static_cast<int>(code), error_category()};
}

/// The one exception type policies throw, stockade's and any written outside the library.
/// `retry_after()` carries a hint (e.g. an open breaker's remaining open time); zero means "no
/// hint".
class error : public std::runtime_error {
 public:
  explicit error(errc code, std::chrono::nanoseconds retry_after = {})
      : error(static_cast<int>(code), error_category(), to_string(code), retry_after) {}
  error(errc code, const std::string& what, std::chrono::nanoseconds retry_after = {})
      : error(static_cast<int>(code), error_category(), what, retry_after) {}
  /// An error of another family of policies: `code`'s category must derive from
  /// policy_error_category (else std::invalid_argument), so that its rejections are known.
  explicit error(const std::error_code& code, std::chrono::nanoseconds retry_after = {})
      : error(code.value(), detail::policy_family_of(code), code.message(), retry_after) {}
  error(const std::error_code& code, const std::string& what,
        std::chrono::nanoseconds retry_after = {})
      : error(code.value(), detail::policy_family_of(code), what, retry_after) {}
  /// An error of `family`, code `code`, its message the family's.
  error(const policy_error_category& family, int code, std::chrono::nanoseconds retry_after = {})
      : error(code, family, family.message(code), retry_after) {}
  /// The same from an error-code enum of such a family (std::is_error_code_enum).
  template <class Enum>
  requires(std::is_error_code_enum_v<Enum> &&
           !std::is_same_v<Enum, errc>) explicit error(Enum code,
                                                       std::chrono::nanoseconds retry_after = {})
      : error(std::error_code(make_error_code(code)), retry_after) {}

  /// stockade's own code; errc{} (no value of errc) for an error of another family, whose
  /// code error_code() gives.
  errc code() const noexcept {
    return family_ == &error_category() ? static_cast<errc>(value_) : errc{};
  }
  std::error_code error_code() const noexcept { return {value_, *family_}; }
  const policy_error_category& category() const noexcept { return *family_; }
  bool is_rejection() const noexcept { return family_->is_rejection(value_); }
  /// How the default rules classify this error when it is not a rejection.
  verdict default_verdict() const noexcept { return family_->verdict_of(value_); }
  std::chrono::nanoseconds retry_after() const noexcept { return retry_after_; }

 private:
  template <class What>
  error(int value, const policy_error_category& family, const What& what,
        std::chrono::nanoseconds retry_after)
      : std::runtime_error(what), value_(value), family_(&family), retry_after_(retry_after) {}

  int value_;
  const policy_error_category* family_;
  std::chrono::nanoseconds retry_after_;
};

}  // namespace stockade
