// docs/custom-policy.md: a policy that counts calls and refuses once a quota is used up, with
// an error family of its own ("quota exhausted") that the library takes for a rejection.
#include <atomic>
#include <cstdio>
#include <functional>
#include <string>
#include <system_error>
#include <type_traits>

#include <stockade/stockade.hpp>

namespace quotas {

// The policy's own codes, in a category of their own: nothing in stockade's headers changes.
enum class quota_errc { exhausted = 1 };

class quota_category final : public stockade::policy_error_category {
 public:
  const char* name() const noexcept override { return "quota"; }
  std::string message(int /*code*/) const override { return "quota exhausted"; }
  // A refusal on the quota's own state: the dependency was not called, so no breaker, retry
  // budget or outer policy may count it as a failure of the dependency.
  bool is_rejection(int code) const noexcept override {
    return code == static_cast<int>(quota_errc::exhausted);
  }
};

inline const quota_category& category() noexcept {
  static const quota_category the_category;
  return the_category;
}
inline std::error_code make_error_code(quota_errc code) noexcept {
  return {static_cast<int>(code), category()};
}

}  // namespace quotas

template <>
struct std::is_error_code_enum<quotas::quota_errc> : std::true_type {};

namespace quotas {

// Shared across call sites, so the application owns it and pipelines take it by std::ref.
class quota {
 public:
  explicit quota(int calls) : left_(calls) {}

  // next(ctx) runs the inner layers and the callee and returns a stockade::result<T>: the
  // value or the error, with its outcome. The policy returns that, or a result of its own.
  template <class Next>
  auto invoke(stockade::context& ctx, Next&& next) {
    using result_type = std::invoke_result_t<Next&, stockade::context&>;
    if (left_.fetch_sub(1, std::memory_order_relaxed) <= 0) {
      // A documented rejection, made as a value: nothing is thrown inside the stack.
      return result_type::raised(stockade::call_error(quota_errc::exhausted));
    }
    return next(ctx);
  }

 private:
  std::atomic<int> left_;
};

}  // namespace quotas

static_assert(stockade::policy<std::reference_wrapper<quotas::quota>>);

int main() {
  quotas::quota two_calls{2};
  // A breaker that opens on the first failure: the quota's refusals must not open it.
  stockade::circuit_breaker<stockade::consecutive_failures> breaker{{.trip = {.threshold = 1}}};
  const auto policy = stockade::pipeline{std::ref(breaker), std::ref(two_calls)};
  int answered = 0;
  int refused = 0;
  for (int i = 0; i < 2; ++i) {
    try {
      answered += policy([] { return 1; });
    } catch (const stockade::error& e) {
      std::printf("unexpected: %s\n", e.what());
    }
  }
  // The throwing call throws the refusal once, at the pipeline's edge, as stockade::error ...
  try {
    answered += policy([] { return 1; });
  } catch (const stockade::error& e) {
    if (e.is_rejection() && e.error_code() == quotas::quota_errc::exhausted) ++refused;
    std::printf("refused: %s (%s)\n", e.what(), e.category().name());
  }
  // ... and try_call returns it, throwing nothing.
  const auto again = policy.try_call([] { return 1; });
  if (!again.has_value() && again.error().is_rejection() && again.outcome().rejected &&
      again.error().code() == quotas::quota_errc::exhausted) {
    ++refused;
  }
  const bool closed = breaker.state() == stockade::circuit_state::closed;
  std::printf("answered %d, refused %d, breaker %s\n", answered, refused,
              closed ? "closed" : "open");
  return answered == 2 && refused == 2 && closed ? 0 : 1;
}
