// The call protocol between layers: outcomes travel as stockade::result values, a callee's
// exception is caught once and thrown once, policies' errors are values until the pipeline's
// edge, and try_call throws nothing.
#include <dlfcn.h>
#include <unwind.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <exception>
#include <functional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <stockade/manual_clock.hpp>
#include <stockade/stockade.hpp>

#include "support.hpp"

// --- counting throws ----------------------------------------------------------------------------
// Every throw, `throw;` and std::rethrow_exception starts an unwind in libgcc through
// _Unwind_RaiseException (a `throw;` by way of _Unwind_Resume_or_Rethrow, which calls it through
// the PLT). The test executable's definition stands in front of libgcc's, counts and passes on;
// the first test checks that it sees each kind of throw exactly once.
namespace {
std::atomic<int> unwinds{0};

template <class F>
F real_function(const char* name) {
  return reinterpret_cast<F>(dlsym(RTLD_NEXT, name));  // NOLINT: the only way to reach it
}
}  // namespace

extern "C" _Unwind_Reason_Code _Unwind_RaiseException(struct _Unwind_Exception* exception) {
  static const auto real =
      real_function<_Unwind_Reason_Code (*)(struct _Unwind_Exception*)>("_Unwind_RaiseException");
  unwinds.fetch_add(1);
  return real(exception);
}

namespace {

using namespace std::chrono_literals;
using stockade::call_error;
using stockade::context;
using stockade::errc;
using stockade::result;
using stockade::verdict;
using stockade::testing::manual_clock;

/// How many unwinds `action` starts.
template <class Action>
int unwinds_in(Action&& action) {
  const int before = unwinds.load();
  std::forward<Action>(action)();
  return unwinds.load() - before;
}

/// Counts its copies: the exception a caller catches must be the callee's own object.
struct counted_failure : std::runtime_error {
  static inline int copies = 0;
  counted_failure() : std::runtime_error("down") {}
  counted_failure(const counted_failure& other) : std::runtime_error(other) { ++copies; }
  counted_failure& operator=(const counted_failure&) = delete;
  ~counted_failure() override = default;
};

auto retry_now(int attempts) {
  return stockade::retry{{.max_attempts = attempts,
                          .backoff = stockade::constant{0s},
                          .jitter = stockade::jitter::none()}};
}

using breaker_type = stockade::circuit_breaker<stockade::consecutive_failures>;
breaker_type::options_type never_trips() { return {.trip = {.threshold = 1000}}; }

TEST(OneThrow, TheCountingHookSeesThrowsAndRethrows) {
  EXPECT_EQ(unwinds_in([] {
              try {
                throw 1;
              } catch (int) {  // NOLINT(bugprone-empty-catch)
              }
            }),
            1);
  EXPECT_EQ(unwinds_in([] {
              try {
                try {
                  throw 1;
                } catch (...) {
                  throw;
                }
              } catch (int) {  // NOLINT(bugprone-empty-catch)
              }
            }),
            2);
  EXPECT_EQ(unwinds_in([] {
              try {
                std::rethrow_exception(std::make_exception_ptr(1));
              } catch (int) {  // NOLINT(bugprone-empty-catch)
              }
            }),
            1);
}

TEST(OneThrow, AFailureThroughRetryAndBreakerIsThrownOncePerAttemptAndOnceToTheCaller) {
  manual_clock clock;
  breaker_type breaker{never_trips(), clock};
  const auto p = stockade::pipeline{stockade::timeout{8s}, retry_now(3), std::ref(breaker)};
  counted_failure::copies = 0;
  int attempts = 0;
  const int thrown = unwinds_in([&] {
    context ctx{clock};
    try {
      p(ctx, [&]() -> int {
        ++attempts;
        throw counted_failure{};
      });
    } catch (const counted_failure&) {  // NOLINT(bugprone-empty-catch)
    }
  });
  EXPECT_EQ(attempts, 3);
  EXPECT_EQ(thrown, 3 + 1);  // each attempt's own throw, and the one to the caller
  EXPECT_EQ(counted_failure::copies, 0);
}

TEST(OneThrow, ARuleThatDeclinesPassesTheExceptionOnWithoutARethrow) {
  const auto p = stockade::pipeline{retry_now(2)}.classify_with(stockade::classifier{
      stockade::when<std::runtime_error>(
          [](const std::runtime_error&) -> std::optional<verdict> { return std::nullopt; }),
      stockade::on<std::exception, verdict::permanent>{}});
  int attempts = 0;
  const int thrown = unwinds_in([&] {
    try {
      p([&]() -> int {
        ++attempts;
        throw std::runtime_error("x");
      });
    } catch (const std::runtime_error&) {  // NOLINT(bugprone-empty-catch)
    }
  });
  EXPECT_EQ(attempts, 1);  // the second rule decided: permanent
  EXPECT_EQ(thrown, 1 + 1);
}

TEST(OneThrow, ARejectionIsThrownOnceThroughTheThrowingCallAndNeverThroughTryCall) {
  manual_clock clock;
  breaker_type breaker{{.trip = {.threshold = 1}, .open_for = stockade::constant{1h}}, clock};
  breaker.isolate();
  const auto p = stockade::pipeline{stockade::timeout{8s}, retry_now(3), std::ref(breaker)};
  EXPECT_EQ(unwinds_in([&] {
              context ctx{clock};
              EXPECT_THROW(p(ctx, [] { return 1; }), stockade::error);
            }),
            1);
  EXPECT_EQ(unwinds_in([&] {
              context ctx{clock};
              const auto refused = p.try_call(ctx, [] { return 1; });
              EXPECT_FALSE(refused.has_value());
              EXPECT_EQ(refused.error().code(), errc::circuit_isolated);
              EXPECT_TRUE(refused.outcome().rejected);
            }),
            0);
}

// --- try_call -----------------------------------------------------------------------------------

TEST(TryCall, AFailureReturnedAsAValueThrowsNothingAnywhere) {
  struct reply {
    int code = 0;
    bool has_value() const { return code == 0; }
    int error() const { return code; }
  };
  manual_clock clock;
  breaker_type breaker{never_trips(), clock};
  const auto p = stockade::pipeline{stockade::timeout{8s}, retry_now(3), std::ref(breaker)};
  int attempts = 0;
  EXPECT_EQ(unwinds_in([&] {
              context ctx{clock};
              const auto got = p.try_call(ctx, [&] {
                ++attempts;
                return reply{503};
              });
              ASSERT_TRUE(got.has_value());  // the callee's own value, its failure inside
              EXPECT_EQ(got->code, 503);
              EXPECT_EQ(got.outcome().kind, verdict::transient);
            }),
            0);
  EXPECT_EQ(attempts, 3);
}

TEST(TryCall, CapturesTheCalleesExceptionWithoutRethrowingIt) {
  counted_failure::copies = 0;
  const auto p = stockade::pipeline{retry_now(2)};
  std::exception_ptr captured;
  EXPECT_EQ(unwinds_in([&] {
              const auto got = p.try_call([]() -> int { throw counted_failure{}; });
              ASSERT_FALSE(got.has_value());
              ASSERT_TRUE(got.error().is_exception());
              EXPECT_EQ(got.outcome().kind, verdict::transient);
              EXPECT_FALSE(got.outcome().rejected);
              captured = got.error().exception();
            }),
            2);  // the two attempts' own throws
  EXPECT_THROW(std::rethrow_exception(captured), counted_failure);
  EXPECT_EQ(counted_failure::copies, 0);
}

TEST(TryCall, ReturnsVoidAndReferenceResultsAsPoliciesCarryThem) {
  const auto p = stockade::pipeline{stockade::pass_through{}};
  const auto nothing = p.try_call([] {});
  static_assert(std::is_same_v<std::remove_cvref_t<decltype(*nothing)>, stockade::void_result>);
  EXPECT_TRUE(nothing.has_value());
  int target = 4;
  const auto named = p.try_call([&]() -> int& { return target; });
  EXPECT_EQ(&named->get(), &target);
}

struct broken_policy {
  template <class Next>
  auto invoke(context& /*ctx*/, Next&& /*next*/) const -> std::invoke_result_t<Next&, context&> {
    throw std::logic_error("a policy's bug");
  }
};

using stockade_test::outcome_spy;

TEST(TryCall, AnExceptionFromAPolicysOwnCodeIsReturnedClassified) {
  const auto got = stockade::pipeline{broken_policy{}}.try_call([] { return 1; });
  ASSERT_FALSE(got.has_value());
  EXPECT_EQ(got.outcome().kind, verdict::permanent);
  EXPECT_THROW(got.error().raise(), std::logic_error);
}

TEST(TryCall, ANestedPipelinesResultKeepsItsOwnOutcome) {
  manual_clock clock;
  breaker_type breaker{never_trips(), clock};
  breaker.isolate();
  const auto inner = stockade::pipeline{std::ref(breaker)};
  std::vector<stockade::outcome> seen;
  const auto outer = stockade::pipeline{outcome_spy{&seen}};
  const auto got = outer([&] { return inner.try_call([] { return 1; }); });
  EXPECT_FALSE(got.has_value());
  ASSERT_EQ(seen.size(), 1U);
  EXPECT_TRUE(seen[0].rejected);  // the outer layers see the inner refusal for what it is
}

/// Reads the call's cached time before the layers inside it run (as a breaker or a timeout
/// does) and again once they have returned.
struct now_after {
  stockade::time_point* seen;
  template <class Next>
  auto invoke(context& ctx, Next&& next) const {
    (void)ctx.now();
    auto ended = next(ctx);
    *seen = ctx.now();
    return ended;
  }
};

TEST(TryCall, TheTimeIsReadAgainAfterTheCalleeWhicheverWayItEnded) {
  // A breaker's time window records a failure at the time it came back, not when it started.
  manual_clock clock;
  stockade::time_point seen{};
  const auto p = stockade::pipeline{now_after{&seen}};
  context thrown{clock};
  (void)p.try_call(thrown, [&]() -> int {
    clock.advance(5s);
    throw std::runtime_error("late");
  });
  EXPECT_EQ(seen, clock.now());
  context returned{clock};
  (void)p.try_call(returned, [&] {
    clock.advance(5s);
    return 1;
  });
  EXPECT_EQ(seen, clock.now());
}

// --- the classifier's ladder --------------------------------------------------------------------

TEST(Ladder, ANonClassExceptionIsClassifiedByTheRulesAfterADecliningOne) {
  const auto c = stockade::classifier{stockade::when<int>([](int code) -> std::optional<verdict> {
                                        if (code == 1) return verdict::fatal;
                                        return std::nullopt;
                                      }),
                                      stockade::on<int, verdict::permanent>{}};
  EXPECT_EQ(c.classify_exception(std::make_exception_ptr(1)).kind, verdict::fatal);
  EXPECT_EQ(c.classify_exception(std::make_exception_ptr(2)).kind, verdict::permanent);
  EXPECT_EQ(c.classify_exception(std::make_exception_ptr(2.5)).kind, verdict::transient);
}

TEST(Ladder, ANonPolymorphicBaseStillReachesTheDefaults) {
  struct tag {};
  struct tagged_logic_error : tag, std::logic_error {
    tagged_logic_error() : std::logic_error("tagged") {}
  };
  const auto c = stockade::classifier{
      stockade::when<tag>([](const tag&) -> std::optional<verdict> { return std::nullopt; })};
  // Caught as a `tag`, which cannot be inspected further: the defaults still see a logic_error.
  EXPECT_EQ(c.classify_exception(std::make_exception_ptr(tagged_logic_error{})).kind,
            verdict::permanent);
}

TEST(Ladder, APolicysRejectionComesFirstWhateverTheRules) {
  const auto c = stockade::classifier{stockade::on<std::runtime_error, verdict::fatal>{}};
  const auto o = c.classify_exception(
      std::make_exception_ptr(stockade::error(errc::bulkhead_full, std::chrono::seconds(2))));
  EXPECT_TRUE(o.rejected);
  EXPECT_EQ(o.kind, verdict::transient);
  EXPECT_EQ(o.retry_after, 2s);
  // Not a rejection: the user's rule decides.
  EXPECT_EQ(c.classify_exception(std::make_exception_ptr(stockade::error(errc::timeout))).kind,
            verdict::fatal);
}

TEST(Ladder, ARuleThatThrowsFailsTheAttemptWithItsOwnExceptionAsPermanent) {
  struct rule_broke {};
  const auto p = stockade::pipeline{retry_now(3)}.classify_with(
      stockade::classifier{stockade::when<std::runtime_error>(
          [](const std::runtime_error&) -> verdict { throw rule_broke{}; })});
  int attempts = 0;
  const auto got = p.try_call([&]() -> int {
    ++attempts;
    throw std::runtime_error("x");
  });
  EXPECT_EQ(attempts, 1);  // never retried
  EXPECT_EQ(got.outcome().kind, verdict::permanent);
  EXPECT_THROW(got.error().raise(), rule_broke);
}

// --- result -------------------------------------------------------------------------------------

TEST(Result, HoldsAValueOrAnErrorWithItsOutcome) {
  result<int> value(7);
  EXPECT_TRUE(value.has_value());
  EXPECT_EQ(value.value(), 7);
  EXPECT_TRUE(value.outcome().succeeded());

  const auto refused = result<int>::raised(call_error(errc::circuit_open, 3s));
  EXPECT_FALSE(refused.has_value());
  EXPECT_TRUE(refused.error().is_rejection());
  EXPECT_FALSE(refused.error().is_exception());
  EXPECT_EQ(refused.error().retry_after(), 3s);
  EXPECT_EQ(refused.outcome(), (stockade::outcome{verdict::transient, 3s, true}));
  try {
    (void)refused.value();
    FAIL() << "no throw";
  } catch (const stockade::error& e) {
    EXPECT_EQ(e.code(), errc::circuit_open);
    EXPECT_EQ(e.retry_after(), 3s);
  }
}

TEST(Result, APolicysErrorThrowsWithItsCauseNested) {
  const auto late =
      result<int>(call_error(stockade::error_category(), static_cast<int>(errc::timeout), {},
                             std::make_exception_ptr(std::runtime_error("late"))),
                  verdict::transient);
  try {
    late.error().raise();
    FAIL() << "no throw";
  } catch (const stockade::error& e) {
    EXPECT_EQ(e.code(), errc::timeout);
    EXPECT_THROW(std::rethrow_if_nested(e), std::runtime_error);
  }
}

TEST(Result, CopiesMovesAndAssigns) {
  result<std::string> a(std::string("payload"));
  result<std::string> b = a;
  EXPECT_EQ(*b, "payload");
  result<std::string> c = std::move(a);
  EXPECT_EQ(*c, "payload");
  c = result<std::string>::raised(call_error(errc::bulkhead_full));
  EXPECT_FALSE(c.has_value());
  c = b;
  EXPECT_EQ(*c, "payload");
  b.fail(call_error(errc::timeout), verdict::transient);
  EXPECT_FALSE(b.has_value());
  EXPECT_EQ(b.error().code(), errc::timeout);
}

TEST(Result, IsReadLikeAnyExpectedLikeTypeByTheClassifier) {
  const stockade::default_classifier c;
  EXPECT_EQ(c.classify_result(result<int>(1)).kind, verdict::success);
  const auto refused = result<int>::raised(call_error(errc::bulkhead_full));
  EXPECT_TRUE(c.classify_result(refused).rejected);  // its own outcome
}

}  // namespace
