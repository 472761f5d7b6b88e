// docs/composition.md's example: the post-mortem's three nested retries, known to take 15.5 s
// before they ever run, and the one-retry stack that replaces them, checked against the 10 s
// platform limit at compile time and described for a log.
#include <stockade/describe.hpp>
#include <stockade/pipeline.hpp>
#include <stockade/retry.hpp>
#include <stockade/timeout.hpp>

#include <cstdio>

using namespace std::chrono_literals;

constexpr auto backing_off(int attempts, stockade::duration first) {
  return stockade::retry{{.max_attempts = attempts,
                          .backoff = stockade::exponential{first, 2.0, 10s},
                          .jitter = stockade::jitter::none(),
                          .use_retry_after = false}};
}

// Handler, repository and client each retried on their own; each query took up to 1 s.
// Without allow_nested_retries this does not compile.
constexpr auto post_mortem =
    stockade::pipeline{stockade::allow_nested_retries, backing_off(2, 1s), backing_off(2, 500ms),
                       backing_off(3, 125ms), stockade::timeout{1s}};
static_assert(!post_mortem.worst_case().fits_within(10s));  // 15.5 s: over the limit

// One retry, inside the call's budget, each attempt bounded.
constexpr auto fixed = stockade::pipeline{
    stockade::timeout{8s},
    stockade::retry{{.max_attempts = 4, .backoff = stockade::exponential{200ms, 2.0, 2s}}},
    stockade::timeout{2s}};
static_assert(fixed.worst_case().fits_within(10s));

int main() {
  std::printf("%s\n\n%s\n", stockade::describe(post_mortem).c_str(),
              stockade::describe(fixed).c_str());
  return fixed([] { return 0; });
}
