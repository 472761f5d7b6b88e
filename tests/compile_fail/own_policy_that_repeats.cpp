// expect: (static assertion failed|static_assert failed).*two retry layers
// A user's policy whose traits say it repeats is checked like stockade::retry: nested with one,
// it does not compile; with the opt-out (STOCKADE_FIXED) it does.
#include <stockade/stockade.hpp>

struct hedge_once {
  static constexpr stockade::layer_traits traits{.repeats = true};
  template <class Next>
  auto invoke(stockade::context& ctx, Next&& next) const {
    return next(ctx);
  }
};

int main() {
  const auto stack = stockade::pipeline{
#ifdef STOCKADE_FIXED
      stockade::allow_nested_retries,
#endif
      stockade::retry{}, hedge_once{}};
  return stack([] { return 0; });
}
