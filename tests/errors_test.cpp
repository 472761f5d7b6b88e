#include <stockade/errors.hpp>

#include <gtest/gtest.h>

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

}  // namespace
