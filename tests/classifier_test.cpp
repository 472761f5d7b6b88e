#include <stockade/classifier.hpp>

#include <gtest/gtest.h>

#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>

namespace {

using namespace std::chrono_literals;
using stockade::classifier;
using stockade::on;
using stockade::outcome;
using stockade::verdict;

template <class E>
outcome classify(const auto& c, E thrown) {
  return c.classify_exception(std::make_exception_ptr(std::move(thrown)));
}

struct db_error : std::runtime_error {
  std::string sqlstate;
  explicit db_error(std::string state) : std::runtime_error("db"), sqlstate(std::move(state)) {}
};

// A minimal expected-like type, so the test does not need std::expected (C++23).
template <class T, class E>
struct result {
  std::optional<T> value;
  E err{};
  bool has_value() const { return value.has_value(); }
  const E& error() const { return err; }
};

TEST(DefaultClassifier, LogicErrorsArePermanent) {
  const stockade::default_classifier c;
  EXPECT_EQ(classify(c, std::invalid_argument("x")).kind, verdict::permanent);
  EXPECT_EQ(classify(c, std::out_of_range("x")).kind, verdict::permanent);
}

TEST(DefaultClassifier, OtherExceptionsOfAnyTypeAreTransient) {
  const stockade::default_classifier c;
  EXPECT_EQ(classify(c, std::runtime_error("x")).kind, verdict::transient);
  EXPECT_EQ(classify(c, 42).kind, verdict::transient);
  EXPECT_EQ(classify(c, std::string("thrown string")).kind, verdict::transient);
}

TEST(DefaultClassifier, PolicyRejectionsAreFlaggedAndKeepTheirHint) {
  const stockade::default_classifier c;
  const outcome o = classify(c, stockade::error(stockade::errc::circuit_open, 3s));
  EXPECT_EQ(o.kind, verdict::transient);
  EXPECT_TRUE(o.rejected);
  EXPECT_EQ(o.retry_after, 3s);
}

TEST(DefaultClassifier, TimeoutIsATransientFailureNotARejection) {
  const stockade::default_classifier c;
  const outcome o = classify(c, stockade::error(stockade::errc::timeout));
  EXPECT_EQ(o.kind, verdict::transient);
  EXPECT_FALSE(o.rejected);
  EXPECT_TRUE(o.is_dependency_failure());
}

TEST(DefaultClassifier, ExpectedLikeErrorsAreTransientAndValuesSucceed) {
  const stockade::default_classifier c;
  EXPECT_EQ(c.classify_result(result<int, int>{std::nullopt, 5}).kind, verdict::transient);
  EXPECT_EQ(c.classify_result(result<int, int>{1, 0}).kind, verdict::success);
  EXPECT_EQ(c.classify_result(42).kind, verdict::success);
  EXPECT_EQ(c.classify_result(std::optional<int>{}).kind, verdict::success);  // not expected-like
}

TEST(Classifier, FirstMatchingRuleWins) {
  const classifier c{on<std::system_error, verdict::fatal>{},
                     on<std::runtime_error, verdict::permanent>{}};
  EXPECT_EQ(classify(c, std::system_error(std::make_error_code(std::errc::io_error))).kind,
            verdict::fatal);
  EXPECT_EQ(classify(c, std::runtime_error("x")).kind, verdict::permanent);
}

TEST(Classifier, UnmatchedExceptionsFallBackToTheDefaults) {
  const classifier c{on<std::system_error, verdict::fatal>{}};
  EXPECT_EQ(classify(c, std::invalid_argument("x")).kind, verdict::permanent);
  EXPECT_EQ(classify(c, 7).kind, verdict::transient);
}

TEST(Classifier, RulesCanBeWrittenAsTypes) {
  using rules = classifier<on<int, verdict::permanent>, on<double, verdict::fatal>>;
  const rules c;
  EXPECT_EQ(classify(c, 1).kind, verdict::permanent);
  EXPECT_EQ(classify(c, 1.0).kind, verdict::fatal);
}

TEST(Classifier, WhenInspectsTheException) {
  const classifier c{stockade::when<db_error>([](const db_error& e) {
    if (e.sqlstate == "53300") return verdict::transient;     // too many connections
    if (e.sqlstate.starts_with("08")) return verdict::fatal;  // connection failure
    return verdict::permanent;
  })};
  EXPECT_EQ(classify(c, db_error("53300")).kind, verdict::transient);
  EXPECT_EQ(classify(c, db_error("08006")).kind, verdict::fatal);
  EXPECT_EQ(classify(c, db_error("23505")).kind, verdict::permanent);
}

TEST(Classifier, ARuleReturningNulloptPassesToTheNextRule) {
  const classifier c{stockade::when<db_error>([](const db_error& e) -> std::optional<verdict> {
                       if (e.sqlstate == "40001") return verdict::transient;
                       return std::nullopt;
                     }),
                     on<std::runtime_error, verdict::fatal>{}};
  EXPECT_EQ(classify(c, db_error("40001")).kind, verdict::transient);
  EXPECT_EQ(classify(c, db_error("99999")).kind, verdict::fatal);
}

TEST(Classifier, RulesCanSetARetryAfterHint) {
  struct throttled {
    int seconds;
  };
  const classifier c{stockade::when<throttled>([](const throttled& t) {
    return outcome{verdict::transient, std::chrono::seconds(t.seconds)};
  })};
  EXPECT_EQ(classify(c, throttled{7}).retry_after, 7s);
}

TEST(Classifier, ResultRulesApplyToTheTypesTheyAccept) {
  struct response {
    int status;
  };
  const classifier c{stockade::on_result([](const response& r) {
    if (r.status == 429 || r.status >= 500) return verdict::transient;
    if (r.status >= 400) return verdict::permanent;
    return verdict::success;
  })};
  EXPECT_EQ(c.classify_result(response{503}).kind, verdict::transient);
  EXPECT_EQ(c.classify_result(response{404}).kind, verdict::permanent);
  EXPECT_EQ(c.classify_result(response{200}).kind, verdict::success);
  EXPECT_EQ(c.classify_result(std::string("other type")).kind, verdict::success);
}

TEST(Classifier, AUserRuleCannotHideARejection) {
  const classifier c{on<std::exception, verdict::permanent>{}};
  const outcome o = classify(c, stockade::error(stockade::errc::bulkhead_full));
  EXPECT_TRUE(o.rejected);
  EXPECT_EQ(o.kind, verdict::transient);
}

TEST(Classifier, AUserRuleMayReclassifyNonRejectionStockadeErrors) {
  const classifier c{stockade::when<stockade::error>([](const stockade::error& e) {
    return e.code() == stockade::errc::timeout ? std::optional<verdict>(verdict::fatal)
                                               : std::nullopt;
  })};
  EXPECT_EQ(classify(c, stockade::error(stockade::errc::timeout)).kind, verdict::fatal);
}

TEST(Classifier, SatisfiesTheConcept) {
  static_assert(stockade::classifier_for<stockade::default_classifier, int>);
  static_assert(stockade::classifier_for<classifier<on<int, verdict::fatal>>, std::string>);
  static_assert(!stockade::classifier_for<int, int>);
}

TEST(VerdictSet, ContainsWhatItWasGiven) {
  constexpr stockade::verdict_set retried{verdict::transient, verdict::fatal};
  static_assert(retried.contains(verdict::fatal));
  static_assert(!retried.contains(verdict::permanent));
  static_assert(stockade::verdict_set{}.empty());
}

}  // namespace
