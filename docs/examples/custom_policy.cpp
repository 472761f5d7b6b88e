// docs/custom-policy.md: a policy that counts calls and refuses once a quota is used up.
#include <atomic>
#include <cstdio>
#include <functional>

#include <stockade/stockade.hpp>

namespace {

// Shared across call sites, so the application owns it and pipelines take it by std::ref.
class quota {
 public:
  explicit quota(int calls) : left_(calls) {}

  template <class Next>
  auto invoke(stockade::context& ctx, Next&& next) {
    if (left_.fetch_sub(1, std::memory_order_relaxed) <= 0) {
      // A documented rejection: the dependency was not called, so no breaker counts it.
      throw stockade::error(stockade::errc::bulkhead_full, "quota used up");
    }
    return next(ctx);  // the inner layers and the callee; returns an object type
  }

 private:
  std::atomic<int> left_;
};

}  // namespace

static_assert(stockade::policy<std::reference_wrapper<quota>>);

int main() {
  quota two_calls{2};
  const auto policy = stockade::pipeline{std::ref(two_calls)};
  int answered = 0;
  int refused = 0;
  for (int i = 0; i < 3; ++i) {
    try {
      answered += policy([] { return 1; });
    } catch (const stockade::error& e) {
      refused += e.is_rejection() ? 1 : 0;
    }
  }
  std::printf("answered %d, refused %d\n", answered, refused);
  return answered == 2 && refused == 1 ? 0 : 1;
}
