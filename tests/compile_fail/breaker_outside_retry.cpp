// expect: (static assertion failed|static_assert failed).*circuit breaker outside a retry
// A circuit breaker outside a retry does not compile; with the opt-out (STOCKADE_FIXED) it does.
#include <stockade/stockade.hpp>

#include <functional>

int main() {
  stockade::circuit_breaker<> breaker;
  const auto stack = stockade::pipeline{
#ifdef STOCKADE_FIXED
      stockade::allow_breaker_outside_retry,
#endif
      std::ref(breaker), stockade::retry{}};
  return stack([] { return 0; });
}
