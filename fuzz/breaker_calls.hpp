// Shared by the circuit breaker harnesses: what a held callee does when the fuzzer lets it go
// (return, or throw a failure the classifier sees as transient, fatal, permanent or a
// rejection), and how the caller should then see the call end.
#pragma once

#include <stdexcept>

#include <stockade/classifier.hpp>
#include <stockade/errors.hpp>

#include "harness.hpp"

namespace stockade_fuzz {

struct dependency_error : std::runtime_error {
  dependency_error() : std::runtime_error("dependency failed") {}
};
struct fatal_error : std::runtime_error {
  fatal_error() : std::runtime_error("connection broken") {}
};

/// The classifier both harnesses run their breaker with: fatal_error is fatal, the rest default.
inline auto breaker_classifier() {
  return stockade::classifier{stockade::on<fatal_error, stockade::verdict::fatal>{}};
}

/// Ends a held callee the way `how` says; success returns normally instead.
[[noreturn]] inline void act(release how) {
  switch (how) {
    case release::transient:
      throw dependency_error();
    case release::fatal:
      throw fatal_error();
    case release::permanent:
      throw std::invalid_argument("bad request");
    case release::rejection:
      throw stockade::error(stockade::errc::bulkhead_full);
    case release::success:
      break;
  }
  throw std::logic_error("act(success) does not throw");
}

/// How the caller sees a call whose callee ended as `how`.
inline ending expected_ending(release how) {
  switch (how) {
    case release::success:
      return {ending::kind::value};
    case release::rejection:
      return {ending::kind::stockade_error, stockade::errc::bulkhead_full};
    default:
      return {ending::kind::callee_exception};
  }
}

}  // namespace stockade_fuzz
