// expect: constexpr[^ ]* function.*timeout_inside_a_retry_is_not_shorter_than_the_one_outside_it
// In a constexpr stack, a timeout inside a retry that is not shorter than the one outside it
// does not compile; shortened (STOCKADE_FIXED), it does.
#include <stockade/stockade.hpp>

using namespace std::chrono_literals;

#ifdef STOCKADE_FIXED
constexpr auto per_attempt = 2s;
#else
constexpr auto per_attempt = 8s;
#endif

constexpr auto stack =
    stockade::pipeline{stockade::timeout{8s}, stockade::retry{}, stockade::timeout{per_attempt}};

int main() {
  return stack([] { return 0; });
}
