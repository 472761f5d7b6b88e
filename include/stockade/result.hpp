// What an attempt, or a whole call, came to: the callee's value, or the error it failed with (its
// exception, caught once where it left the callee, or an error a policy raised as a value),
// together with the outcome the classifier gave it. Each layer returns one to the layer outside
// it; only the pipeline's throwing call turns a failure into a throw, and only once.
// Invariant: a result holds exactly one of a value or an error, and a callee's exception object
// travels unchanged (by std::exception_ptr) to whoever rethrows it.
#pragma once

#include <chrono>
#include <exception>
#include <functional>
#include <memory>
#include <new>
#include <stdexcept>
#include <system_error>
#include <type_traits>
#include <utility>

#include "errors.hpp"
#include "verdict.hpp"

namespace stockade {

/// What a policy sees for a callee that returns void.
struct void_result {};

namespace detail {

/// A callee's result as it travels through the layers: always an object type (void_result for
/// void, std::reference_wrapper for a reference, T for T&&), held in a stockade::result.
template <class R>
struct stored_result {
  using type = R;
};
template <>
struct stored_result<void> {
  using type = void_result;
};
template <class R>
struct stored_result<R&> {
  using type = std::reference_wrapper<R>;
};
template <class R>
struct stored_result<R&&> {
  using type = R;
};
template <class R>
using stored_result_t = typename stored_result<R>::type;

/// Tags result's constructor that makes the value from what a callable returns, in place.
struct from_call_t {};

}  // namespace detail

/// Why an attempt or a call failed: an exception (the callee's, or one a policy's own code
/// threw), or an error a policy raised without throwing: a code of a policy family (errc, or
/// any family derived from policy_error_category), a retry-after hint and, for a timeout, the
/// late failure it stands for.
class call_error {
 public:
  /// An exception, carried as is.
  explicit call_error(std::exception_ptr thrown) noexcept : thrown_(std::move(thrown)) {}
  /// One of stockade's own errors.
  explicit call_error(errc code, std::chrono::nanoseconds retry_after = {}) noexcept
      : call_error(error_category(), static_cast<int>(code), retry_after) {}
  /// An error of any policy family, e.g. a quota's own "exhausted" code.
  call_error(const policy_error_category& family, int code,
             std::chrono::nanoseconds retry_after = {}, std::exception_ptr cause = {}) noexcept
      : thrown_(std::move(cause)), family_(&family), value_(code), retry_after_(retry_after) {}
  /// The same from an error-code enum of such a family (std::is_error_code_enum); its category
  /// must derive from policy_error_category (else std::invalid_argument).
  template <class Enum>
  requires(std::is_error_code_enum_v<Enum> && !std::is_same_v<Enum, errc>) explicit call_error(
      Enum code, std::chrono::nanoseconds retry_after = {})
      : call_error(detail::policy_family_of(std::error_code(make_error_code(code))),
                   std::error_code(make_error_code(code)).value(), retry_after) {}

  /// A stockade::error a policy's own machinery threw, as a value (its nested cause kept).
  explicit call_error(const error& thrown) noexcept
      : call_error(thrown.category(), thrown.error_code().value(), thrown.retry_after(),
                   nested_cause(thrown)) {}

  /// True for an exception; false for an error a policy raised as a value.
  bool is_exception() const noexcept { return family_ == nullptr; }
  /// The exception (is_exception()), or the failure a policy's error stands for (a timeout's
  /// late failure); null when there is none.
  const std::exception_ptr& exception() const noexcept { return thrown_; }
  /// The code of an error a policy raised; a default error_code for an exception.
  std::error_code code() const noexcept {
    return family_ ? std::error_code(value_, *family_) : std::error_code();
  }
  /// True for an error a policy raised that means "refused; the dependency was not called".
  bool is_rejection() const noexcept { return family_ && family_->is_rejection(value_); }
  /// The hint an error a policy raised carries (zero: none).
  std::chrono::nanoseconds retry_after() const noexcept { return retry_after_; }
  /// The outcome the default rules give an error a policy raised (for an exception, the
  /// pipeline's classifier decides instead).
  outcome default_outcome() const noexcept {
    return detail::outcome_of_policy_error(*family_, value_, retry_after_);
  }

  /// Throws it: the exception itself (the same object), or stockade::error with the code and
  /// hint, the late failure nested in it as its cause (std::throw_with_nested).
  [[noreturn]] void raise() const {
    if (is_exception()) std::rethrow_exception(thrown_);
    if (thrown_) {
      try {
        std::rethrow_exception(thrown_);
      } catch (...) {
        std::throw_with_nested(as_error());
      }
    }
    throw as_error();
  }
  /// The same as an exception_ptr (made here for an error a policy raised).
  std::exception_ptr to_exception_ptr() const {
    if (is_exception()) return thrown_;
    try {
      raise();
    } catch (...) {
      return std::current_exception();
    }
  }

 private:
  error as_error() const { return {*family_, value_, retry_after_}; }
  static std::exception_ptr nested_cause(const error& thrown) noexcept {
    const auto* nested = dynamic_cast<const std::nested_exception*>(&thrown);
    return nested != nullptr ? nested->nested_ptr() : std::exception_ptr();
  }

  std::exception_ptr thrown_;
  const policy_error_category* family_ = nullptr;  // null: an exception
  int value_ = 0;
  std::chrono::nanoseconds retry_after_{0};
};

/// The value of an attempt or call, or the error it failed with, and the outcome it was
/// classified as. Expected-like (has_value(), value(), error()), so a classifier reads a callee
/// that returns one like std::expected; a nested pipeline's result keeps its own outcome.
template <class T>
class [[nodiscard]] result {
  static_assert(std::is_object_v<T> && !std::is_array_v<T> && !std::is_same_v<T, call_error>,
                "stockade::result holds an object type (void_result for void, "
                "std::reference_wrapper for a reference)");

 public:
  using value_type = T;
  using error_type = call_error;

  /// A value, classified as `classified`.
  template <class... Args>
  explicit result(std::in_place_t /*unused*/, const stockade::outcome& classified,
                  Args&&... args) noexcept(std::is_nothrow_constructible_v<T, Args...>)
      : outcome_(classified), has_value_(true) {
    ::new (static_cast<void*>(std::addressof(value_))) T(std::forward<Args>(args)...);
  }
  /// The value `make()` returns, made in place (a callee's own result is never moved), with the
  /// outcome `classify(value)` gives it. If classify throws, the result is that exception, as
  /// permanent: a classifier's bug is never retried nor counted against the dependency.
  template <class Make, class Classify>
  result(detail::from_call_t /*unused*/, Make&& make, Classify&& classify) {
    ::new (static_cast<void*>(std::addressof(value_))) T(std::forward<Make>(make)());
    // Set once the value is there, after the callee returned, so that the optimizer knows it
    // without reading it back (it cannot know what an opaque callee did to memory before).
    has_value_ = true;
    try {
      outcome_ = std::forward<Classify>(classify)(std::as_const(value_));
    } catch (...) {
      value_.~T();
      has_value_ = false;
      ::new (static_cast<void*>(std::addressof(error_))) call_error(std::current_exception());
      outcome_ = verdict::permanent;
    }
  }
  /// A value that succeeded.
  result(T value) noexcept(std::is_nothrow_move_constructible_v<T>)  // NOLINT: implicit
      : result(std::in_place, stockade::outcome{}, std::move(value)) {}
  /// A failure, classified as `classified`.
  result(call_error failure, const stockade::outcome& classified) noexcept
      : outcome_(classified), has_value_(false) {
    ::new (static_cast<void*>(std::addressof(error_))) call_error(std::move(failure));
  }
  /// An error a policy raised (not an exception), classified by its family's rules.
  static result raised(call_error failure) noexcept {
    const stockade::outcome classified = failure.default_outcome();
    return {std::move(failure), classified};
  }

  result(const result& other) noexcept(
      std::is_nothrow_copy_constructible_v<T>) requires std::is_copy_constructible_v<T>
      : outcome_(other.outcome_), has_value_(other.has_value_) {
    if (has_value_) {
      ::new (static_cast<void*>(std::addressof(value_))) T(other.value_);
    } else {
      ::new (static_cast<void*>(std::addressof(error_))) call_error(other.error_);
    }
  }
  result(result&& other) noexcept(std::is_nothrow_move_constructible_v<T>)
      : outcome_(other.outcome_), has_value_(other.has_value_) {
    if (has_value_) {
      ::new (static_cast<void*>(std::addressof(value_))) T(std::move(other.value_));
    } else {
      ::new (static_cast<void*>(std::addressof(error_))) call_error(std::move(other.error_));
    }
  }
  result& operator=(result&& other) noexcept requires std::is_nothrow_move_constructible_v<T> {
    if (this != &other) {
      this->~result();
      ::new (static_cast<void*>(this)) result(std::move(other));
    }
    return *this;
  }
  result& operator=(const result& other) requires(
      std::is_copy_constructible_v<T>&& std::is_nothrow_move_constructible_v<T>) {
    if (this != &other) {
      result copy(other);  // a copy that throws leaves *this as it was
      *this = std::move(copy);
    }
    return *this;
  }
  ~result() {
    if (has_value_) {
      value_.~T();
    } else {
      error_.~call_error();
    }
  }

  bool has_value() const noexcept { return has_value_; }
  explicit operator bool() const noexcept { return has_value_; }

  /// The value; for a failure, throws it (call_error::raise).
  T& value() & {
    if (!has_value_) error_.raise();
    return value_;
  }
  const T& value() const& {
    if (!has_value_) error_.raise();
    return value_;
  }
  T&& value() && {
    if (!has_value_) error_.raise();
    return std::move(value_);
  }
  /// The value, which must be there (has_value()).
  T& operator*() & noexcept { return value_; }
  const T& operator*() const& noexcept { return value_; }
  T&& operator*() && noexcept { return std::move(value_); }
  T* operator->() noexcept { return std::addressof(value_); }
  const T* operator->() const noexcept { return std::addressof(value_); }

  /// The error, which must be there (!has_value()).
  const call_error& error() const& noexcept { return error_; }
  call_error&& error() && noexcept { return std::move(error_); }

  /// How the attempt was classified: verdict, rejection flag, retry-after hint.
  const stockade::outcome& outcome() const noexcept { return outcome_; }
  /// Replaces the classification, e.g. to add a retry-after hint read from a reply.
  void set_outcome(const stockade::outcome& classified) noexcept { outcome_ = classified; }
  /// Replaces a value with a failure (a layer that refuses what came back).
  void fail(call_error failure, const stockade::outcome& classified) noexcept {
    this->~result();
    ::new (static_cast<void*>(this)) result(std::move(failure), classified);
  }

 private:
  union {
    T value_;
    call_error error_;
  };
  stockade::outcome outcome_;
  bool has_value_;
};

namespace detail {
template <class R>
struct is_result : std::false_type {};
template <class T>
struct is_result<result<T>> : std::true_type {};
}  // namespace detail

/// True for stockade::result<T>, whatever T.
template <class R>
concept result_type = detail::is_result<std::remove_cvref_t<R>>::value;

}  // namespace stockade
