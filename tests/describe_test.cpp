// describe(pipeline) and the text of bounds: layers outermost first with their configuration,
// the worst case from each layer inward, and the name of what leaves a call unbounded.
#include <stockade/describe.hpp>
#include <stockade/stockade.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <string>

namespace {

using namespace std::chrono_literals;
using stockade::bound;
using stockade::duration;
using stockade::pipeline;
using stockade::retry;
using stockade::timeout;
using stockade::detail::duration_text;

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST(DurationText, WritesDurationsAsAPersonWould) {
  EXPECT_EQ(duration_text(0s), "0s");
  EXPECT_EQ(duration_text(250ns), "250ns");
  EXPECT_EQ(duration_text(1500ns), "1.5us");
  EXPECT_EQ(duration_text(200ms), "200ms");
  EXPECT_EQ(duration_text(15500ms), "15.5s");
  EXPECT_EQ(duration_text(5min), "5min");
  EXPECT_EQ(duration_text(98s), "98s");
  EXPECT_EQ(duration_text(10s + 1ns), "10.000000001s");  // exact: never rounds into a limit
  EXPECT_EQ(duration_text(300h + 1s), "1080001s");
  EXPECT_EQ(duration_text(1min + 30s), "90s");
  EXPECT_EQ(duration_text(duration::max()), "forever");
  EXPECT_EQ(duration_text(-1500ms), "-1.5s");
  EXPECT_EQ(duration_text(duration::min()), "-forever");
}

TEST(BoundsText, SaysAtMostOrNamesWhatHasNoBound) {
  EXPECT_EQ(stockade::to_string(stockade::stack_bounds{12, bound<duration>(15500ms)}),
            "at most 12 attempts, at most 15.5s");
  EXPECT_EQ(stockade::to_string(stockade::stack_bounds::of_callee()),
            "at most 1 attempt, time unbounded (the callable: its own time is not known; state it "
            "with worst_case(limit))");
}

TEST(Describe, ListsLayersOutermostFirstWithTheWorstCaseFromEachInward) {
  stockade::testing::manual_clock clock;
  stockade::circuit_breaker<> breaker{{.name = "db"}, clock};
  stockade::bulkhead<> slots{{.max_concurrent = 5, .max_queue = 64, .max_wait = 2s}};
  stockade::warmup_gate gate{[] {}, {}, clock};
  const auto stack =
      pipeline{timeout{8s},
               retry{{.max_attempts = 4, .backoff = stockade::exponential{200ms, 2.0, 2s}}},
               std::ref(breaker),
               std::ref(slots),
               std::ref(gate),
               timeout{2s}};
  EXPECT_EQ(stack.worst_case().attempts.value(), 4);  // the README's stack: 4 attempts, 8 s
  EXPECT_EQ(stack.worst_case().elapsed.value(), 8s);
  const std::string text = describe(stack);
  const std::string expected_start =
      "pipeline of 6 layers, outermost first:\n"
      "  1. timeout 8s\n"
      "       from here in: at most 4 attempts, at most 8s\n"
      "  2. retry: max_attempts 4, backoff exponential 200ms x2 up to 2s, jitter full, "
      "max_delay 30s (retry-after hints count up to it), retry_on {transient, fatal}\n"
      "       from here in: at most 4 attempts, time unbounded (warmup_gate";
  EXPECT_EQ(text.substr(0, expected_start.size()), expected_start) << text;
  EXPECT_TRUE(contains(text,
                       "  3. circuit_breaker \"db\": failure ratio over a count window, "
                       "half_open_permits 1, failures {transient, fatal}\n"))
      << text;
  EXPECT_TRUE(contains(text, "  4. bulkhead: 5 slots, queue 64, max_wait 2s\n")) << text;
  EXPECT_TRUE(contains(text,
                       "  5. warmup_gate: warmup_timeout 20s, cool_down exponential 1s x1.6 "
                       "up to 2min, re-armed on a fatal verdict\n"))
      << text;
  EXPECT_TRUE(contains(text,
                       "  6. timeout 2s\n       from here in: at most 1 attempt, at most "
                       "2s\n"))
      << text;
  EXPECT_TRUE(contains(text, "\nworst case: at most 4 attempts, at most 8s")) << text;
}

TEST(Describe, PostMortemStackReadsFifteenAndAHalfSeconds) {
  constexpr auto plain = [](int attempts, duration first) {
    return retry{{.max_attempts = attempts,
                  .backoff = stockade::exponential{first, 2.0, 10s},
                  .jitter = stockade::jitter::none(),
                  .use_retry_after = false}};
  };
  const auto stack = pipeline{stockade::allow_nested_retries, plain(2, 1s), plain(2, 500ms),
                              plain(3, 125ms), timeout{1s}};
  const std::string text = describe(stack);
  EXPECT_TRUE(contains(text, "allow (checks turned off: nested retries)")) << text;
  EXPECT_TRUE(contains(text, "worst case: at most 12 attempts, at most 15.5s")) << text;
}

TEST(Describe, StatedCalleeTimeIsShownAndUsed) {
  const auto stack = pipeline{retry{{.max_attempts = 2,
                                     .backoff = stockade::constant{100ms},
                                     .jitter = stockade::jitter::none(),
                                     .use_retry_after = false}}};
  const std::string text = describe(stack, stockade::stack_bounds::of_callee(300ms));
  EXPECT_TRUE(contains(text, "  callable: at most 1 attempt, at most 300ms\n")) << text;
  EXPECT_TRUE(contains(text, "worst case: at most 2 attempts, at most 700ms")) << text;
}

struct quiet_policy {
  template <class Next>
  auto invoke(stockade::context& ctx, Next&& next) const {
    return next(ctx);
  }
};

TEST(Describe, PolicyWithoutDescribeOrWorstCaseSaysSo) {
  const std::string text = describe(pipeline{timeout{1s}, quiet_policy{}});
  EXPECT_TRUE(contains(text, "  2. a policy without describe()\n")) << text;
  EXPECT_TRUE(contains(text, "attempts unbounded (a policy without worst_case()")) << text;
}

TEST(Describe, OtherPoliciesDescribeTheirConfiguration) {
  stockade::testing::manual_clock clock;
  stockade::health_check health{[] { return true; }, {}, clock};
  stockade::fault_injector chaos{{.seed = 7}, stockade::inject_latency{{.every_nth = 2}, 300ms}};
  const std::string text = describe(pipeline{std::ref(health), std::ref(chaos)});
  EXPECT_TRUE(contains(text, "health_check: max_age 10s, unhealthy_max_age 1s, probe_timeout 1s"))
      << text;
  EXPECT_TRUE(contains(text, "fault_injection: 1 fault(s), seed 7, enabled")) << text;
}

}  // namespace
