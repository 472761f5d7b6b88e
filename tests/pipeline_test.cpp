#include <stockade/pipeline.hpp>

#include <gtest/gtest.h>

TEST(Pipeline, Smoke) {
  const auto p = stockade::pipeline{stockade::pass_through{}};
  EXPECT_EQ(p([] { return 1; }), 1);
}
