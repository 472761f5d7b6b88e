// expect: at most one clock \(an lvalue that
// A breaker given a temporary clock does not compile (it keeps the clock by reference); given a
// clock that outlives it, it does.
#include <stockade/circuit_breaker.hpp>
#include <stockade/manual_clock.hpp>

int main() {
#ifdef STOCKADE_FIXED
  stockade::testing::manual_clock clock;
  stockade::circuit_breaker<> breaker{{}, clock};
#else
  stockade::circuit_breaker<> breaker{{}, stockade::testing::manual_clock{}};
#endif
  return breaker.state() == stockade::circuit_state::closed ? 0 : 1;
}
