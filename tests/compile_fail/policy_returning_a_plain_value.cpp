// expect: invoke\(ctx, next\) returns the stockade::result<T> that next\(ctx\) returns
// A policy written for the first call protocol: it returns the plain value and lets failures
// fly. Layers now pass results (value or error, with the outcome) and never need to catch.
#include <stockade/stockade.hpp>

struct unwraps {
  template <class Next>
  auto invoke(stockade::context& ctx, Next&& next) const {
#ifdef STOCKADE_FIXED
    return next(ctx);
#else
    return next(ctx).value();
#endif
  }
};

int main() {
  return stockade::pipeline{unwraps{}}([] { return 0; });
}
