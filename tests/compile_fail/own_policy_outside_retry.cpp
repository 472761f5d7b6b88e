// expect: (static assertion failed|static_assert failed).*circuit breaker outside a retry
// A user's policy whose traits say it sees each attempt (a rate limiter takes one permit per
// attempt) is kept inside a retry like a breaker; inside it (STOCKADE_FIXED) it compiles.
#include <stockade/stockade.hpp>

struct per_attempt_quota {
  static constexpr stockade::layer_traits traits{.sees_each_attempt = true};
  template <class Next>
  auto invoke(stockade::context& ctx, Next&& next) const {
    return next(ctx);
  }
};

int main() {
#ifdef STOCKADE_FIXED
  const auto stack = stockade::pipeline{stockade::retry{}, per_attempt_quota{}};
#else
  const auto stack = stockade::pipeline{per_attempt_quota{}, stockade::retry{}};
#endif
  return stack([] { return 0; });
}
