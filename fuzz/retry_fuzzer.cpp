// Fuzzes the retry layer against a reference model of its decisions. The input picks the
// options (attempts, backoff, caps, max_elapsed, which verdicts are retried, hints, a shared
// token budget) and then calls, each a script of attempts: what the attempt ends in (a value, a
// failed value, a transient, fatal or permanent exception, a hinted failure, another policy's
// rejection with or without a retry-after hint), how long it takes, whether it fires the call's
// stop token, and whether it first makes a nested call through the same pipeline (so the
// budget's updates of two calls interleave). After every call the attempts made, the events
// reported (every scheduled retry and give-up, with their delays and reasons), the value or
// exception the caller got, the virtual time that passed and the budget must equal the model's.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <vector>

#include <stockade/classifier.hpp>
#include <stockade/pipeline.hpp>
#include <stockade/retry.hpp>
#include <stockade/retry_budget.hpp>

#include "harness.hpp"

namespace {

using namespace std::chrono_literals;
using stockade::duration;
using stockade::errc;
using stockade::give_up_reason;
using stockade::outcome;
using stockade::time_point;
using stockade::verdict;
using stockade_fuzz::expect_equal;

// --- what a callee may end in, each carrying the number of the attempt that made it ----------

struct attempt_value {
  int tag = 0;
  bool failed = false;
};
struct transient_error : std::runtime_error {
  explicit transient_error(int attempt_tag) : std::runtime_error("transient"), tag(attempt_tag) {}
  int tag;
};
struct fatal_error : std::runtime_error {
  explicit fatal_error(int attempt_tag) : std::runtime_error("fatal"), tag(attempt_tag) {}
  int tag;
};
struct hinted_error : std::runtime_error {
  hinted_error(int attempt_tag, duration retry_after)
      : std::runtime_error("hinted"), tag(attempt_tag), hint(retry_after) {}
  int tag;
  duration hint;
};
struct permanent_error : std::invalid_argument {
  explicit permanent_error(int attempt_tag)
      : std::invalid_argument("permanent"), tag(attempt_tag) {}
  int tag;
};
struct tagged_rejection : stockade::error {
  tagged_rejection(int attempt_tag, duration retry_after)
      : stockade::error(errc::bulkhead_full, retry_after), tag(attempt_tag) {}
  int tag;
};

const auto classify =
    stockade::classifier{stockade::on<fatal_error, verdict::fatal>{},
                         stockade::when<hinted_error>([](const hinted_error& e) {
                           return outcome{verdict::transient, e.hint};
                         }),
                         stockade::on_result([](const attempt_value& v) {
                           return v.failed ? verdict::transient : verdict::success;
                         })};

enum class attempt_kind { value, failed_value, transient, fatal, permanent, hinted, rejection };
constexpr int attempt_kinds = 7;

// --- scripts: what each attempt of a call does, decided before the call ----------------------

struct call_script;

struct attempt_script {
  attempt_kind kind = attempt_kind::value;
  int tag = 0;
  duration took{};
  duration hint{};
  bool fires_stop = false;
  std::unique_ptr<call_script> nested;  // a call made through the same pipeline first
};

struct call_script {
  std::optional<duration> timeout;  // top-level calls only; a nested call keeps its caller's
  std::vector<attempt_script> attempts;
};

call_script make_script(FuzzedDataProvider& in, int attempts, int depth, int& next_tag) {
  call_script script;
  if (depth == 0 && in.ConsumeBool()) script.timeout = 50ms * in.ConsumeIntegralInRange(0, 30);
  constexpr std::array hints{-1ms, 0ms, 20ms, 60ms, 300ms, 2000ms};
  for (int i = 0; i < attempts; ++i) {
    attempt_script a;
    a.kind = static_cast<attempt_kind>(in.ConsumeIntegralInRange(0, attempt_kinds - 1));
    a.tag = ++next_tag;
    a.took = 25ms * in.ConsumeIntegralInRange(0, 8);
    a.hint = hints[in.ConsumeIntegralInRange<std::size_t>(0, hints.size() - 1)];
    a.fires_stop = in.ConsumeIntegralInRange(0, 15) == 0;
    if (depth == 0 && in.ConsumeIntegralInRange(0, 7) == 0) {
      a.nested = std::make_unique<call_script>(make_script(in, attempts, depth + 1, next_tag));
    }
    script.attempts.push_back(std::move(a));
  }
  return script;
}

// --- the model -------------------------------------------------------------------------------

/// One reported event: a retry scheduled (attempt, delay, from a hint) or a give-up (attempts,
/// reason, delay).
struct event_record {
  bool gave_up = false;
  int attempts = 0;
  duration delay{};
  int detail = 0;  // from_hint for a scheduled retry, the reason for a give-up
};

/// How a call ended: the tag of the attempt whose value or exception the caller got.
struct call_ending {
  attempt_kind kind = attempt_kind::value;
  int tag = 0;
};

struct token_budget_model {
  std::int64_t max_milli = 0;
  std::int64_t ratio_milli = 0;
  std::int64_t milli = 0;
  std::uint64_t granted = 0;
  std::uint64_t refused = 0;

  void on_attempt(const outcome& result) {
    if (result.succeeded()) {
      milli = std::min(max_milli, milli + ratio_milli);
    } else if (result.is_dependency_failure()) {
      milli = std::max<std::int64_t>(0, milli - 1000);
    }
  }
  bool try_retry() {
    const bool yes = milli > max_milli / 2;
    ++(yes ? granted : refused);
    return yes;
  }
};

struct retry_model {
  stockade::retry_options<> options;
  token_budget_model budget;
  time_point now{};
  std::vector<event_record> events;

  static outcome outcome_of(const attempt_script& a) {
    switch (a.kind) {
      case attempt_kind::value:
        return verdict::success;
      case attempt_kind::failed_value:
      case attempt_kind::transient:
        return verdict::transient;
      case attempt_kind::fatal:
        return verdict::fatal;
      case attempt_kind::permanent:
        return verdict::permanent;
      case attempt_kind::hinted:
        return {verdict::transient, a.hint};
      case attempt_kind::rejection:
        return {verdict::transient, a.hint, true};
    }
    return verdict::success;
  }

  bool retryable(const outcome& result) const {
    if (result.kind == verdict::success || result.kind == verdict::permanent) return false;
    if (!options.retry_on.contains(result.kind)) return false;
    return !(result.rejected && !options.retry_rejections);
  }

  /// Runs `script` as the retry would, with the deadline and stop flag of its call.
  call_ending call(const call_script& script, time_point deadline, bool& stopped) {
    const time_point elapsed_limit =
        options.max_elapsed == duration::max()
            ? stockade::no_deadline
            : stockade::context::saturating_add(now, options.max_elapsed);
    for (int attempt = 1;; ++attempt) {
      const attempt_script& a = script.attempts.at(static_cast<std::size_t>(attempt - 1));
      if (a.nested) call(*a.nested, deadline, stopped);
      now += a.took;
      if (a.fires_stop) stopped = true;
      const outcome result = outcome_of(a);
      const call_ending ended{a.kind, a.tag};
      budget.on_attempt(result);
      if (result.succeeded()) return ended;

      const auto give_up = [&](give_up_reason why, duration delay) {
        events.push_back({true, attempt, delay, static_cast<int>(why)});
        return ended;
      };
      if (!retryable(result)) return give_up(give_up_reason::verdict, {});
      if (options.use_retry_after && result.retry_after < duration::zero()) {
        return give_up(give_up_reason::pushback, {});
      }
      if (attempt >= options.max_attempts) return give_up(give_up_reason::attempts, {});
      const bool hinted = options.use_retry_after && result.retry_after > duration::zero();
      const duration delay =
          hinted ? std::min(result.retry_after, options.max_delay)
                 : std::clamp(options.backoff.delay(attempt), duration::zero(), options.max_delay);
      const time_point wake = stockade::context::saturating_add(now, delay);
      if (wake >= deadline || wake >= elapsed_limit) {
        return give_up(
            elapsed_limit < deadline ? give_up_reason::elapsed : give_up_reason::deadline, delay);
      }
      if (stopped) return give_up(give_up_reason::cancelled, delay);
      if (!budget.try_retry()) return give_up(give_up_reason::budget, delay);
      events.push_back({false, attempt, delay, hinted ? 1 : 0});
      if (delay > duration::zero()) now = wake;
    }
  }
};

// --- the implementation's side ---------------------------------------------------------------

struct event_log {
  std::vector<event_record>* events;
  template <stockade::event E>
  void on(const E& e) const {
    if constexpr (std::is_same_v<E, stockade::retry_scheduled>) {
      events->push_back({false, e.attempt, e.delay, e.from_hint ? 1 : 0});
    } else if constexpr (std::is_same_v<E, stockade::retry_gave_up>) {
      events->push_back({true, e.attempts, e.delay, static_cast<int>(e.reason)});
    }
  }
};

[[noreturn]] void act_failure(const attempt_script& a) {
  switch (a.kind) {
    case attempt_kind::transient:
      throw transient_error(a.tag);
    case attempt_kind::fatal:
      throw fatal_error(a.tag);
    case attempt_kind::permanent:
      throw permanent_error(a.tag);
    case attempt_kind::hinted:
      throw hinted_error(a.tag, a.hint);
    default:
      throw tagged_rejection(a.tag, a.hint);
  }
}

template <class Policy>
call_ending run_call(const Policy& policy, stockade::testing::manual_clock& clock,
                     stockade::context& ctx, const call_script& script, std::stop_source& stop) {
  const auto callee = [&](stockade::context& attempt_ctx) -> attempt_value {
    const auto index = static_cast<std::size_t>(attempt_ctx.attempt() - 1);
    if (index >= script.attempts.size()) stockade_fuzz::fail("more attempts than max_attempts");
    const attempt_script& a = script.attempts[index];
    stockade_fuzz::trace("attempt", index + 1, "kind", a.kind, "took", a.took, "nested",
                         a.nested != nullptr, "fires stop", a.fires_stop);
    if (a.nested) {
      stockade::context nested{attempt_ctx.clock()};
      nested.set_deadline(attempt_ctx.deadline()).set_stop_token(attempt_ctx.caller_stop_token());
      run_call(policy, clock, nested, *a.nested, stop);
    }
    clock.advance(a.took);
    if (a.fires_stop) stop.request_stop();
    if (a.kind == attempt_kind::value) return {a.tag, false};
    if (a.kind == attempt_kind::failed_value) return {a.tag, true};
    act_failure(a);
  };
  try {
    const attempt_value v = policy(ctx, callee);
    return {v.failed ? attempt_kind::failed_value : attempt_kind::value, v.tag};
  } catch (const transient_error& e) {
    return {attempt_kind::transient, e.tag};
  } catch (const fatal_error& e) {
    return {attempt_kind::fatal, e.tag};
  } catch (const permanent_error& e) {
    return {attempt_kind::permanent, e.tag};
  } catch (const hinted_error& e) {
    return {attempt_kind::hinted, e.tag};
  } catch (const tagged_rejection& e) {
    return {attempt_kind::rejection, e.tag};
  }
}

void run(FuzzedDataProvider& in) {
  stockade::retry_options<> options;
  options.max_attempts = in.ConsumeIntegralInRange(1, 5);
  const duration base = 25ms * in.ConsumeIntegralInRange(0, 4);
  switch (in.ConsumeIntegralInRange(0, 2)) {
    case 0:
      options.backoff = stockade::constant{base};
      break;
    case 1:
      options.backoff = stockade::linear{base, 25ms, 200ms};
      break;
    default:
      options.backoff = stockade::exponential{base, 2.0, 400ms};
  }
  options.jitter = stockade::jitter::none();
  constexpr std::array max_delays{0ms, 50ms, 150ms, 30000ms};
  options.max_delay = max_delays[in.ConsumeIntegralInRange<std::size_t>(0, max_delays.size() - 1)];
  constexpr std::array max_elapsed{duration::max(), duration{100ms}, duration{500ms}, duration{2s}};
  options.max_elapsed =
      max_elapsed[in.ConsumeIntegralInRange<std::size_t>(0, max_elapsed.size() - 1)];
  switch (in.ConsumeIntegralInRange(0, 2)) {
    case 0:
      options.retry_on = {verdict::transient, verdict::fatal};
      break;
    case 1:
      options.retry_on = {verdict::transient};
      break;
    default:
      options.retry_on = {verdict::fatal};
  }
  options.retry_rejections = in.ConsumeBool();
  options.use_retry_after = in.ConsumeBool();
  constexpr std::array ratios{0.1, 0.5, 1.0};
  const stockade::token_budget_options budget_options{
      .max_tokens = in.ConsumeIntegralInRange(1, 10),
      .token_ratio = ratios[in.ConsumeIntegralInRange<std::size_t>(0, ratios.size() - 1)]};

  stockade::testing::manual_clock clock;
  stockade::token_budget budget{budget_options};
  std::vector<event_record> events;
  const auto policy =
      stockade::pipeline{stockade::retry{options, std::ref(budget), event_log{&events}}}
          .classify_with(classify);

  retry_model model;
  model.options = options;
  model.budget.max_milli = std::int64_t{budget_options.max_tokens} * 1000;
  model.budget.ratio_milli = static_cast<std::int64_t>(budget_options.token_ratio * 1000 + 0.5);
  model.budget.milli = model.budget.max_milli;
  model.now = clock.now();

  int next_tag = 0;
  for (int call = 0; call < 40 && in.remaining_bytes() > 0; ++call) {
    const call_script script = make_script(in, options.max_attempts, 0, next_tag);
    std::stop_source stop;
    stockade::context ctx{clock};
    ctx.set_stop_token(stop.get_token());
    if (script.timeout) ctx.set_timeout(*script.timeout);
    const time_point deadline = ctx.deadline();
    stockade_fuzz::trace("call", call, "attempts scripted", script.attempts.size(), "timeout",
                         script.timeout ? script.timeout->count() : -1);
    events.clear();
    model.events.clear();

    const call_ending got = run_call(policy, clock, ctx, script, stop);
    bool stopped = false;
    const call_ending want = model.call(script, deadline, stopped);

    expect_equal(static_cast<int>(got.kind), static_cast<int>(want.kind), "ending kind", call);
    expect_equal(got.tag, want.tag, "ending attempt", call);
    expect_equal(events.size(), model.events.size(), "events reported", call);
    for (std::size_t i = 0; i < events.size(); ++i) {
      expect_equal(events[i].gave_up, model.events[i].gave_up, "event kind", call);
      expect_equal(events[i].attempts, model.events[i].attempts, "event attempt", call);
      expect_equal(events[i].delay, model.events[i].delay, "event delay", call);
      expect_equal(events[i].detail, model.events[i].detail, "event reason or hint", call);
    }
    expect_equal(clock.now().time_since_epoch(), model.now.time_since_epoch(), "virtual time",
                 call);
    expect_equal(budget.tokens(), static_cast<double>(model.budget.milli) / 1000.0, "tokens", call);
    expect_equal(budget.retries_granted(), model.budget.granted, "retries granted", call);
    expect_equal(budget.retries_refused(), model.budget.refused, "retries refused", call);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  run(in);
  return 0;
}
