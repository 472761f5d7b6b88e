// expect: (static assertion failed|static_assert failed).*returns an awaitable, a coroutine
// A callable that returns a std::future hands back work it has not done; a blocking pipeline
// refuses it. Waiting for the future inside the callable (STOCKADE_FIXED) compiles.
#include <future>

#include <stockade/stockade.hpp>

int main() {
  const auto stack = stockade::pipeline{stockade::retry{}};
#ifdef STOCKADE_FIXED
  return stack([] { return std::async(std::launch::deferred, [] { return 0; }).get(); });
#else
  return stack([] { return std::async(std::launch::deferred, [] { return 0; }); }).get();
#endif
}
