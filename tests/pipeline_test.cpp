#include <stockade/pipeline.hpp>

#include <gtest/gtest.h>

#include <coroutine>
#include <future>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include <stockade/errors.hpp>
#include <stockade/manual_clock.hpp>

#include "support.hpp"

// Outside the unnamed namespace: a free operator co_await with internal linkage that nothing
// calls would be an unneeded declaration to clang.
namespace deferred_work_types {

// A type with an awaiter's members, one with a member operator co_await, one with a free one.
struct awaiter_like {
  bool await_ready() const noexcept { return true; }
  void await_suspend(std::coroutine_handle<> /*unused*/) const noexcept {}
  int await_resume() const noexcept { return 1; }
};
struct member_awaitable {
  awaiter_like operator co_await() const noexcept { return {}; }
};
struct free_awaitable {};
inline awaiter_like operator co_await(free_awaitable /*unused*/) noexcept { return {}; }
struct task_like {
  struct promise_type {};
};

}  // namespace deferred_work_types

namespace {

using stockade::context;
using stockade::verdict;

// A test policy: records when it is entered and left, in a shared log.
struct recorder {
  std::vector<std::string>* log;
  std::string name;
  template <class Next>
  auto invoke(context& ctx, Next&& next) const {
    log->push_back("enter " + name);
    auto result = next(ctx);
    log->push_back("leave " + name);
    return result;
  }
};
static_assert(stockade::policy<recorder>);
static_assert(stockade::policy<std::reference_wrapper<recorder>>);
static_assert(!stockade::policy<int>);

// Counts how often the outcome it sees was classified, through a counting classifier.
struct counting_classifier {
  int* results;
  int* exceptions;
  stockade::outcome classify_exception(const std::exception_ptr& failure) const {
    ++*exceptions;
    return stockade::default_rules::classify_exception(failure);
  }
  template <class R>
  stockade::outcome classify_result(const R& result) const {
    ++*results;
    return stockade::default_rules::classify_result(result);
  }
};

using stockade_test::outcome_spy;

// Refuses every call, as a bulkhead does when full.
struct always_full {
  template <class Next>
  auto invoke(context& /*ctx*/, Next&& /*next*/) const {
    using result_type = std::invoke_result_t<Next&, context&>;
    return result_type::raised(stockade::call_error(stockade::errc::bulkhead_full));
  }
};

TEST(Pipeline, RunsPoliciesOutermostFirst) {
  std::vector<std::string> log;
  const auto p = stockade::pipeline{recorder{&log, "a"}, recorder{&log, "b"}, recorder{&log, "c"}};
  p([&] { log.push_back("callee"); });
  EXPECT_EQ(log, (std::vector<std::string>{"enter a", "enter b", "enter c", "callee", "leave c",
                                           "leave b", "leave a"}));
}

TEST(Pipeline, HoldsSharedPoliciesByReference) {
  std::vector<std::string> log;
  recorder shared{&log, "shared"};
  const auto p = stockade::pipeline{std::ref(shared)};
  static_assert(std::is_same_v<std::remove_cvref_t<decltype(std::get<0>(p.layers()))>,
                               std::reference_wrapper<recorder>>);
  shared.name = "renamed";
  p([] {});
  EXPECT_EQ(log.front(), "enter renamed");
}

struct capture {
  std::vector<const context*>* seen;
  template <class Next>
  auto invoke(context& ctx, Next&& next) const {
    seen->push_back(&ctx);
    return next(ctx);
  }
};

TEST(Pipeline, PassesTheSameContextToEveryLayerAndTheCallee) {
  std::vector<const context*> seen;
  stockade::testing::manual_clock clock;
  context ctx{clock};
  ctx.set_name("db.query");
  const auto p = stockade::pipeline{capture{&seen}, capture{&seen}};
  p(ctx, [&](context& inner) {
    seen.push_back(&inner);
    EXPECT_EQ(inner.name(), "db.query");
    EXPECT_EQ(&inner.clock(), &clock);
  });
  ASSERT_EQ(seen.size(), 3U);
  for (const context* each : seen) EXPECT_EQ(each, &ctx);
}

TEST(Pipeline, AcceptsCallablesWithAndWithoutContext) {
  const auto p = stockade::pipeline{stockade::pass_through{}};
  EXPECT_EQ(p([] { return 1; }), 1);
  EXPECT_EQ(p([](context& ctx) { return ctx.attempt(); }), 1);
}

TEST(Pipeline, ReturnsVoid) {
  const auto p = stockade::pipeline{stockade::pass_through{}};
  int calls = 0;
  static_assert(std::is_void_v<decltype(p([&] { ++calls; }))>);
  p([&] { ++calls; });
  EXPECT_EQ(calls, 1);
}

TEST(Pipeline, ReturnsMoveOnlyResults) {
  const auto p = stockade::pipeline{stockade::pass_through{}, stockade::pass_through{}};
  std::unique_ptr<int> result = p([] { return std::make_unique<int>(7); });
  ASSERT_NE(result, nullptr);
  EXPECT_EQ(*result, 7);
}

TEST(Pipeline, ReturnsReferencesUnchanged) {
  const auto p = stockade::pipeline{stockade::pass_through{}};
  int target = 1;
  int& result = p([&]() -> int& { return target; });
  EXPECT_EQ(&result, &target);
}

TEST(Pipeline, ReturnsTheValueARvalueReferenceNamedMovedOut) {
  // The layers carry a T moved from what the callee's T&& named; the caller gets that T by
  // value, not a T&& to a temporary that is gone once the call returns.
  const auto p = stockade::pipeline{stockade::pass_through{}, stockade::pass_through{}};
  std::string source(64, 'x');  // longer than any small-string buffer: a dangling read shows
  auto&& result = p([&]() -> std::string&& { return std::move(source); });
  static_assert(std::is_same_v<decltype(result), std::string&&>);
  static_assert(std::is_same_v<decltype(p([&]() -> std::string&& { return std::move(source); })),
                               std::string>);
  EXPECT_EQ(result, std::string(64, 'x'));
  EXPECT_TRUE(source.empty());  // moved from, exactly once
}

TEST(Pipeline, TellsDeferredWorkFromResults) {
  using namespace deferred_work_types;
  using stockade::detail::deferred_work;
  static_assert(deferred_work<std::future<int>>);
  static_assert(deferred_work<std::shared_future<int>>);
  static_assert(deferred_work<awaiter_like>);
  static_assert(deferred_work<member_awaitable>);
  static_assert(deferred_work<free_awaitable>);
  static_assert(deferred_work<task_like>);
  static_assert(!deferred_work<int>);
  static_assert(!deferred_work<std::string>);
  static_assert(!deferred_work<std::optional<int>>);
  static_assert(!deferred_work<std::unique_ptr<int>>);
  static_assert(!deferred_work<std::vector<int>>);
  SUCCEED();  // the refusal itself: tests/compile_fail/{future,awaitable}_callee.cpp
}

TEST(Pipeline, RethrowsTheCalleesOwnExceptionUnchanged) {
  struct not_a_std_exception {
    int code;
  };
  const auto p = stockade::pipeline{stockade::pass_through{}, stockade::pass_through{}};
  try {
    p([]() -> int { throw not_a_std_exception{42}; });
    FAIL() << "expected an exception";
  } catch (const not_a_std_exception& e) {
    EXPECT_EQ(e.code, 42);
  }
  const std::runtime_error original("original");
  try {
    p([&] { throw original; });
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "original");
  }
}

TEST(Pipeline, ClassifiesEachResultOnceHoweverManyLayersAsk) {
  int results = 0;
  int exceptions = 0;
  std::vector<stockade::outcome> seen;
  const auto p =
      stockade::pipeline{outcome_spy{&seen}, outcome_spy{&seen}, outcome_spy{&seen}}.classify_with(
          counting_classifier{&results, &exceptions});
  p([] { return 5; });
  EXPECT_EQ(results, 1);
  EXPECT_EQ(exceptions, 0);
  ASSERT_EQ(seen.size(), 3U);
  for (const auto& o : seen) EXPECT_EQ(o.kind, verdict::success);
}

TEST(Pipeline, ClassifiesEachExceptionOnceHoweverManyLayersAsk) {
  int results = 0;
  int exceptions = 0;
  std::vector<stockade::outcome> seen;
  const auto p = stockade::pipeline{outcome_spy{&seen}, outcome_spy{&seen}}.classify_with(
      counting_classifier{&results, &exceptions});
  EXPECT_THROW(p([]() -> int { throw std::invalid_argument("bad"); }), std::invalid_argument);
  EXPECT_EQ(exceptions, 1);
  EXPECT_EQ(results, 0);
  ASSERT_EQ(seen.size(), 2U);
  for (const auto& o : seen) EXPECT_EQ(o.kind, verdict::permanent);
}

TEST(Pipeline, MarksAnInnerPolicysRefusalAsARejection) {
  std::vector<stockade::outcome> seen;
  const auto p = stockade::pipeline{outcome_spy{&seen}, always_full{}};
  bool called = false;
  EXPECT_THROW(p([&] { called = true; }), stockade::error);
  EXPECT_FALSE(called);
  ASSERT_EQ(seen.size(), 1U);
  EXPECT_TRUE(seen[0].rejected);
  EXPECT_FALSE(seen[0].is_dependency_failure());
}

TEST(Pipeline, RejectionsStayRejectionsUnderABroadUserRule) {
  // A rejection thrown by the callee (e.g. from a pipeline of its own) meets the classifier.
  std::vector<stockade::outcome> seen;
  const auto p = stockade::pipeline{outcome_spy{&seen}}.classify_with(
      stockade::classifier{stockade::on<std::exception, verdict::fatal>{}});
  EXPECT_THROW(p([] { throw stockade::error(stockade::errc::bulkhead_full); }), stockade::error);
  ASSERT_EQ(seen.size(), 1U);
  EXPECT_TRUE(seen[0].rejected);
  EXPECT_EQ(seen[0].kind, verdict::transient);
}

TEST(Pipeline, UsesThePipelinesClassifierForReturnedValues) {
  struct response {
    int status;
  };
  std::vector<stockade::outcome> seen;
  const auto p = stockade::pipeline{outcome_spy{&seen}}.classify_with(
      stockade::classifier{stockade::on_result([](const response& r) {
        return r.status >= 500 ? verdict::transient : verdict::success;
      })});
  EXPECT_EQ(p([] { return response{503}; }).status, 503);
  EXPECT_EQ(p([] { return response{200}; }).status, 200);
  ASSERT_EQ(seen.size(), 2U);
  EXPECT_EQ(seen[0].kind, verdict::transient);
  EXPECT_EQ(seen[1].kind, verdict::success);
}

TEST(Pipeline, StartsEveryCallAtAttemptOne) {
  const auto p = stockade::pipeline{};
  context ctx;
  ctx.begin_attempt(5);
  p(ctx, [&](context& inner) { EXPECT_EQ(inner.attempt(), 1); });
}

TEST(Pipeline, CanBeConstexpr) {
  static constexpr auto p = stockade::pipeline{stockade::pass_through{}, stockade::pass_through{}};
  static_assert(decltype(p)::size() == 2);
  EXPECT_EQ(p([] { return 3; }), 3);
}

TEST(Pipeline, ACalleeMayCallBackIntoTheSamePipeline) {
  std::vector<std::string> log;
  const auto p = stockade::pipeline{recorder{&log, "outer"}};
  const int result = p([&] { return p([] { return 2; }) + 1; });
  EXPECT_EQ(result, 3);
  EXPECT_EQ(log.size(), 4U);
}

}  // namespace
