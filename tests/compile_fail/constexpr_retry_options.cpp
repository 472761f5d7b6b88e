// expect: constexpr[^ ]* function.*throw_invalid_config
// A constexpr retry with an invalid option (zero attempts) does not compile; valid, it does.
#include <stockade/retry.hpp>

#ifdef STOCKADE_FIXED
constexpr int attempts = 1;
#else
constexpr int attempts = 0;
#endif

constexpr stockade::retry policy{{.max_attempts = attempts}};

int main() { return policy.options().max_attempts == 1 ? 0 : 1; }
