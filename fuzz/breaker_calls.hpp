// Shared by the circuit breaker harnesses: what a held callee does when the fuzzer lets it go
// (return, or throw a failure the classifier sees as transient, fatal, permanent or a
// rejection), how the caller should then see the call end, and the calls held in flight
// through a breaker with what the harness's model expects of each.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

#include <stockade/classifier.hpp>
#include <stockade/context.hpp>
#include <stockade/errors.hpp>
#include <stockade/manual_clock.hpp>

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

/// The calls a breaker harness holds in flight through `policy`, one per thread of `threads`,
/// with what `model` expects of each. Model has admit(now) -> admission {admitted, refusal, ...}
/// and finish(admission, how, now).
template <class Model, class Policy>
class held_breaker_calls {
 public:
  held_breaker_calls(std::vector<held_call>& threads, Model& model, const Policy& policy,
                     stockade::testing::manual_clock& clock)
      : calls_(threads),
        model_(model),
        policy_(policy),
        clock_(clock),
        admissions_(threads.size()),
        expected_(threads.size(), held_call::phase::idle),
        endings_(threads.size()) {}

  held_call::phase current(std::size_t slot) const { return calls_[slot].current(); }

  /// A call arrives in `slot`: the model decides whether the breaker admits it.
  void start(std::size_t slot) {
    trace("arrive", slot);
    admissions_[slot] = model_.admit(clock_.now());
    expected_[slot] =
        admissions_[slot].admitted ? held_call::phase::in_callee : held_call::phase::done;
    endings_[slot] = admissions_[slot].refusal;
    calls_[slot].start([this](held_call& self) {
      stockade::context ctx{clock_};
      return ending_of([&] {
        policy_(ctx, [&self] {
          const release how = self.wait_in_callee();
          if (how != release::success) act(how);
        });
      });
    });
  }

  /// The callee in `slot` ends as `how`.
  void finish(std::size_t slot, release how) {
    trace("finish", slot, how);
    model_.finish(admissions_[slot], how, clock_.now());
    expected_[slot] = held_call::phase::done;
    endings_[slot] = expected_ending(how);
    calls_[slot].let_go(how);
  }

  /// Lets every call settle, then checks how each call that ended did end.
  void check_endings(int step) {
    settle(calls_, expected_, clock_, 0, step);
    for (std::size_t slot = 0; slot < calls_.size(); ++slot) {
      if (expected_[slot] != held_call::phase::done) continue;
      const ending got = calls_[slot].collect();
      if (!(got == endings_[slot])) {
        fail("call " + std::to_string(slot) + " ended " + describe(got) + ", model " +
             describe(endings_[slot]) + " at step " + std::to_string(step));
      }
      expected_[slot] = held_call::phase::idle;
    }
  }

  /// Every call still in its callee ends with success, one at a time, `compare(-1)` after each
  /// (a window is exact only for calls that do not end at the same instant).
  template <class Compare>
  void finish_all(Compare compare) {
    for (std::size_t slot = 0; slot < calls_.size(); ++slot) {
      if (current(slot) != held_call::phase::in_callee) continue;
      finish(slot, release::success);
      compare(-1);
    }
  }

 private:
  std::vector<held_call>& calls_;
  Model& model_;
  const Policy& policy_;
  stockade::testing::manual_clock& clock_;
  std::vector<typename Model::admission> admissions_;
  std::vector<held_call::phase> expected_;
  std::vector<ending> endings_;
};

}  // namespace stockade_fuzz
