// expect: (static assertion failed|static_assert failed).*two retry layers
// Two retry layers in one stack do not compile; with the opt-out (STOCKADE_FIXED) they do.
#include <stockade/stockade.hpp>

int main() {
  const auto stack = stockade::pipeline{
#ifdef STOCKADE_FIXED
      stockade::allow_nested_retries,
#endif
      stockade::retry{}, stockade::pass_through{}, stockade::retry{}};
  return stack([] { return 0; });
}
