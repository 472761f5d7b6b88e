// expect: constexpr[^ ]* function.*throw_invalid_config
// A constexpr timeout of zero does not compile; a positive one does.
#include <stockade/timeout.hpp>

using namespace std::chrono_literals;

#ifdef STOCKADE_FIXED
constexpr auto limit = 1s;
#else
constexpr auto limit = 0s;
#endif

constexpr stockade::timeout policy{limit};

int main() { return policy.limit() == 1s ? 0 : 1; }
