// expect: (static assertion failed|static_assert failed).*bulkhead outside a retry
// A bulkhead outside a retry does not compile; with the opt-out (STOCKADE_FIXED) it does.
#include <stockade/stockade.hpp>

#include <functional>

int main() {
  stockade::bulkhead<> slots{{.max_concurrent = 4}};
  const auto stack = stockade::pipeline{
#ifdef STOCKADE_FIXED
      stockade::allow_bulkhead_outside_retry,
#endif
      std::ref(slots), stockade::retry{}};
  return stack([] { return 0; });
}
