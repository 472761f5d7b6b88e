#include <stockade/errors.hpp>

#include <stockade/classifier.hpp>

#include <gtest/gtest.h>

#include <exception>
#include <stdexcept>
#include <string>
#include <system_error>

namespace {

using namespace std::chrono_literals;
using stockade::errc;

TEST(Errors, RejectionCodesAreExactlyThePolicyRefusals) {
  EXPECT_TRUE(stockade::is_rejection(errc::circuit_open));
  EXPECT_TRUE(stockade::is_rejection(errc::circuit_isolated));
  EXPECT_TRUE(stockade::is_rejection(errc::bulkhead_full));
  EXPECT_TRUE(stockade::is_rejection(errc::bulkhead_wait_exceeded));
  EXPECT_TRUE(stockade::is_rejection(errc::detached_limit_reached));
  EXPECT_TRUE(stockade::is_rejection(errc::deadline_already_passed));
  EXPECT_TRUE(stockade::is_rejection(errc::cancelled));
  EXPECT_TRUE(stockade::is_rejection(errc::warmup_cooling_down));
  EXPECT_FALSE(stockade::is_rejection(errc::timeout));
  EXPECT_FALSE(stockade::is_rejection(errc::warmup_failed));
  EXPECT_FALSE(stockade::is_rejection(errc::warmup_wait_exceeded));
  EXPECT_FALSE(stockade::is_rejection(errc::unhealthy));
  EXPECT_FALSE(stockade::is_rejection(errc::resource_closed));
  EXPECT_FALSE(stockade::is_rejection(errc::injected_fault));
}

TEST(Errors, CompareAsErrorCodes) {
  const stockade::error e(errc::bulkhead_full);
  EXPECT_EQ(e.error_code(), errc::bulkhead_full);
  EXPECT_EQ(std::error_code(errc::timeout), stockade::make_error_code(errc::timeout));
  EXPECT_STREQ(e.error_code().category().name(), "stockade");
  EXPECT_EQ(e.error_code().message(), "bulkhead full");
}

TEST(Errors, CarryARetryAfterHint) {
  const stockade::error e(errc::circuit_open, 250ms);
  EXPECT_EQ(e.retry_after(), 250ms);
  EXPECT_TRUE(e.is_rejection());
  EXPECT_STREQ(e.what(), "circuit open");
}

TEST(Errors, AreCaughtAsOneBaseType) {
  try {
    throw stockade::error(errc::unhealthy, "health check of db failed");
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "health check of db failed");
  }
}

// --- a family of errors from outside the library -------------------------------------------

enum class quota_errc { exhausted = 1, misconfigured = 2, backend_down = 3 };

class quota_category final : public stockade::policy_error_category {
 public:
  const char* name() const noexcept override { return "quota"; }
  std::string message(int code) const override {
    return code == 1 ? "quota exhausted" : code == 2 ? "quota misconfigured" : "quota backend down";
  }
  bool is_rejection(int code) const noexcept override { return code == 1; }
  stockade::verdict verdict_of(int code) const noexcept override {
    return code == 2 ? stockade::verdict::permanent : stockade::verdict::transient;
  }
};
const quota_category& quota_family() {
  static const quota_category family;
  return family;
}
std::error_code make_error_code(quota_errc code) {
  return {static_cast<int>(code), quota_family()};
}

}  // namespace

template <>
struct std::is_error_code_enum<quota_errc> : std::true_type {};

namespace {

TEST(ErrorFamilies, AnOutsideFamilysCodeCarriesItsOwnCategoryAndMessage) {
  const stockade::error e(quota_errc::exhausted, 2s);
  EXPECT_EQ(e.error_code(), quota_errc::exhausted);
  EXPECT_STREQ(e.category().name(), "quota");
  EXPECT_STREQ(e.what(), "quota exhausted");
  EXPECT_EQ(e.retry_after(), 2s);
  EXPECT_EQ(e.code(), errc{});  // not one of stockade's own codes
  EXPECT_NE(e.error_code(), errc::circuit_open);
}

TEST(ErrorFamilies, ItsCategorySaysWhichCodesAreRejections) {
  EXPECT_TRUE(stockade::error(quota_errc::exhausted).is_rejection());
  EXPECT_FALSE(stockade::error(quota_errc::backend_down).is_rejection());
  const auto rejected =
      stockade::default_rules::classify_stockade_error(stockade::error(quota_errc::exhausted, 1s));
  EXPECT_TRUE(rejected.rejected);
  EXPECT_EQ(rejected.retry_after, 1s);
}

TEST(ErrorFamilies, ItsCategoryGivesTheVerdictOfTheOtherCodes) {
  using stockade::verdict;
  EXPECT_EQ(
      stockade::default_rules::classify_stockade_error(stockade::error(quota_errc::misconfigured))
          .kind,
      verdict::permanent);
  const auto down = stockade::default_rules::classify_stockade_error(
      stockade::error(quota_errc::backend_down, 3s));
  EXPECT_EQ(down.kind, verdict::transient);
  EXPECT_FALSE(down.rejected);
  EXPECT_EQ(down.retry_after, 3s);
}

TEST(ErrorFamilies, ARejectionOfAnOutsideFamilyComesBeforeAnyUserRule) {
  const auto broad = stockade::classifier{stockade::on<std::exception, stockade::verdict::fatal>{}};
  const auto seen =
      broad.classify_exception(std::make_exception_ptr(stockade::error(quota_errc::exhausted)));
  EXPECT_TRUE(seen.rejected);
  EXPECT_EQ(seen.kind, stockade::verdict::transient);
}

TEST(ErrorFamilies, ACategoryThatIsNotAPolicyFamilyIsRefused) {
  try {
    stockade::error e(std::make_error_code(std::errc::timed_out));
    FAIL() << "accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("policy_error_category"), std::string::npos) << e.what();
  }
}

TEST(ErrorFamilies, StockadesOwnCodesAreAFamilyLikeAnyOther) {
  const stockade::error closed(errc::resource_closed);
  EXPECT_EQ(&closed.category(), &stockade::error_category());
  EXPECT_EQ(closed.default_verdict(), stockade::verdict::permanent);
  EXPECT_EQ(stockade::error(std::error_code(errc::bulkhead_full)).code(), errc::bulkhead_full);
  EXPECT_TRUE(stockade::error(std::error_code(errc::bulkhead_full)).is_rejection());
}

}  // namespace
