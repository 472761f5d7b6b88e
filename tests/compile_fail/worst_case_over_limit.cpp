// expect: (static assertion failed|static_assert failed).*does not fit the 10 s platform limit
// The one-line check of a stack's worst case: the post-mortem's nested retries (15.5 s) fail it;
// one retry layer under an 8 s timeout (STOCKADE_FIXED) passes.
#include <stockade/stockade.hpp>

using namespace std::chrono_literals;

constexpr auto retry_after(int attempts, stockade::duration first) {
  return stockade::retry{{.max_attempts = attempts,
                          .backoff = stockade::exponential{first, 2.0, 10s},
                          .jitter = stockade::jitter::none(),
                          .use_retry_after = false}};
}

#ifdef STOCKADE_FIXED
constexpr auto stack =
    stockade::pipeline{stockade::timeout{8s}, retry_after(4, 200ms), stockade::timeout{1s}};
#else
constexpr auto stack =
    stockade::pipeline{stockade::allow_nested_retries, retry_after(2, 1s), retry_after(2, 500ms),
                       retry_after(3, 125ms), stockade::timeout{1s}};
#endif

static_assert(stack.worst_case().fits_within(10s), "does not fit the 10 s platform limit");

int main() {
  return stack([] { return 0; });
}
