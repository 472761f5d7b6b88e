// Shared by the fuzz harnesses: failing loudly when an implementation and its reference model
// disagree, and calls held in flight on threads of their own, so that one harness thread can
// interleave the steps of many calls (admit A, admit B, finish A, ...) in an order the fuzzer
// chooses, and the same input always gives the same interleaving.
// Invariant: the harness thread moves on only once every held call has settled (is in its
// callee, has ended, or waits on the manual clock as the model expects), so each step's effect
// is complete before the next step and before the model is compared.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include <stockade/clock.hpp>
#include <stockade/errors.hpp>
#include <stockade/manual_clock.hpp>

namespace stockade_fuzz {

/// Prints what disagreed and aborts, so libFuzzer keeps the input that caused it.
[[noreturn]] inline void fail(const std::string& what) {
  std::fprintf(stderr, "\n*** model mismatch: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

template <class T>
std::string text_of(const T& value) {
  std::ostringstream out;
  if constexpr (std::is_enum_v<T>) {
    out << static_cast<long long>(value);
  } else if constexpr (requires { value.count(); }) {
    out << value.count() << "ns";
  } else {
    out << value;
  }
  return out.str();
}

/// With STOCKADE_FUZZ_TRACE set, prints each step (to replay a crash: run the fuzzer on it).
template <class... Parts>
void trace(const Parts&... parts) {
  static const bool on = std::getenv("STOCKADE_FUZZ_TRACE") != nullptr;
  if (!on) return;
  std::string line;
  ((line += text_of(parts) + " "), ...);
  std::fprintf(stderr, "%s\n", line.c_str());
}

/// Aborts unless got == want, naming the quantity and the operation step.
template <class Got, class Want>
void expect_equal(const Got& got, const Want& want, const char* what, int step) {
  if (!(got == want)) {
    fail(std::string(what) + " at step " + std::to_string(step) + ": implementation " +
         text_of(got) + ", model " + text_of(want));
  }
}

inline void expect(bool holds, const char* what, int step) {
  if (!holds) fail(std::string(what) + " at step " + std::to_string(step));
}

/// How a call ended, as its caller saw it.
struct ending {
  enum class kind { value, callee_exception, stockade_error, other };
  kind how = kind::other;
  stockade::errc code{};
  stockade::duration retry_after{0};
  friend bool operator==(const ending&, const ending&) = default;
};

inline std::string describe(const ending& e) {
  return "{kind " + std::to_string(static_cast<int>(e.how)) + ", code " +
         std::to_string(static_cast<int>(e.code)) + ", retry_after " +
         std::to_string(e.retry_after.count()) + "ns}";
}

/// What the callee of a held call does once the harness lets it go.
enum class release { success, transient, fatal, permanent, rejection };

/// A call running on a thread of its own. Its callee calls wait_in_callee() and blocks there
/// until the harness calls let_go(); the harness sees each change of phase.
class held_call {
 public:
  enum class phase { idle, running, in_callee, done };

  held_call() : thread_([this] { serve(); }) {}
  held_call(const held_call&) = delete;
  held_call& operator=(const held_call&) = delete;
  ~held_call() {
    {
      std::lock_guard lock(mutex_);
      quit_ = true;
    }
    changed_.notify_all();
    thread_.join();
  }

  // --- the harness's side --------------------------------------------------------------------
  /// Runs `job` on this call's thread; it must return how the call ended.
  void start(std::function<ending(held_call&)> job) {
    {
      std::lock_guard lock(mutex_);
      if (phase_ != phase::idle) fail("started a call that is not idle");
      job_ = std::move(job);
      phase_ = phase::running;
    }
    changed_.notify_all();
  }
  void let_go(release how) {
    {
      std::lock_guard lock(mutex_);
      if (phase_ != phase::in_callee) fail("let go a call that is not in its callee");
      released_ = how;
      phase_ = phase::running;
    }
    changed_.notify_all();
  }
  phase current() const {
    std::lock_guard lock(mutex_);
    return phase_;
  }
  /// The ending of a call that is done; the call is idle again afterwards.
  ending collect() {
    std::lock_guard lock(mutex_);
    if (phase_ != phase::done) fail("collected a call that has not ended");
    phase_ = phase::idle;
    return ending_;
  }

  // --- the callee's side ---------------------------------------------------------------------
  release wait_in_callee() {
    std::unique_lock lock(mutex_);
    phase_ = phase::in_callee;
    changed_.notify_all();
    changed_.wait(lock, [&] { return released_.has_value() || quit_; });
    const release how = released_.value_or(release::success);
    released_.reset();
    return how;
  }

 private:
  void serve() {
    std::unique_lock lock(mutex_);
    for (;;) {
      changed_.wait(lock, [&] { return job_ != nullptr || quit_; });
      if (quit_) return;
      auto job = std::exchange(job_, nullptr);
      lock.unlock();
      const ending result = job(*this);
      lock.lock();
      ending_ = result;
      phase_ = phase::done;
      changed_.notify_all();
    }
  }

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::function<ending(held_call&)> job_;
  std::optional<release> released_;
  ending ending_;
  phase phase_ = phase::idle;
  bool quit_ = false;
  std::thread thread_;  // last: starts once everything above exists
};

/// Runs `call()` and reports how it ended.
template <class Call>
ending ending_of(Call&& call) {
  try {
    call();
    return {ending::kind::value};
  } catch (const stockade::error& e) {
    return {ending::kind::stockade_error, e.code(), e.retry_after()};
  } catch (const std::runtime_error&) {
    return {ending::kind::callee_exception};
  } catch (const std::logic_error&) {
    return {ending::kind::callee_exception};
  } catch (...) {
    return {ending::kind::other};
  }
}

/// Waits (in real time, bounded) until every call is in the phase the model expects and the
/// number of threads waiting on the clock is `clock_waiters`; a call expected to be queued is
/// `running`. Aborts with both views if that does not happen: a hang is a mismatch too.
inline void settle(std::vector<held_call>& calls, const std::vector<held_call::phase>& expected,
                   const stockade::testing::manual_clock& clock, std::size_t clock_waiters,
                   int step) {
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  for (;;) {
    bool all = clock.waiting() == clock_waiters;
    for (std::size_t i = 0; all && i < calls.size(); ++i) all = calls[i].current() == expected[i];
    if (all) return;
    if (std::chrono::steady_clock::now() > give_up) {
      std::string seen = "calls did not settle at step " + std::to_string(step) + ": waiting " +
                         std::to_string(clock.waiting()) + " (model " +
                         std::to_string(clock_waiters) + "), phases";
      for (std::size_t i = 0; i < calls.size(); ++i) {
        seen += " " + std::to_string(static_cast<int>(calls[i].current())) + "/" +
                std::to_string(static_cast<int>(expected[i]));
      }
      fail(seen);
    }
    std::this_thread::yield();
  }
}

}  // namespace stockade_fuzz
