// Small helpers the test files share: what an action throws, whether a configuration compiles
// as a constant, and a policy that records outcomes.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include <stockade/clock.hpp>
#include <stockade/context.hpp>
#include <stockade/errors.hpp>
#include <stockade/manual_clock.hpp>
#include <stockade/verdict.hpp>

namespace stockade_test {

/// A manual clock whose recent() is `lag` behind now(), as a real clock's coarse reading can be.
class lagging_clock final : public stockade::clock {
 public:
  explicit lagging_clock(stockade::duration lag) : lag_(lag) {}
  stockade::testing::manual_clock& inner() noexcept { return inner_; }
  stockade::time_point now() const noexcept override { return inner_.now(); }
  stockade::time_point recent() const noexcept override { return inner_.now() - lag_; }
  void arm(stockade::timer& t, stockade::time_point when) override { inner_.arm(t, when); }
  bool cancel(stockade::timer& t) noexcept override { return inner_.cancel(t); }

 private:
  stockade::testing::manual_clock inner_;
  stockade::duration lag_;
};

/// The message of the std::invalid_argument `action` throws, or "no exception".
std::string message_of(auto&& action) {
  try {
    action();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "no exception";
}

/// The code of the stockade::error `action` throws; nullopt if it throws none.
std::optional<stockade::errc> error_of(auto&& action) {
  try {
    action();
  } catch (const stockade::error& e) {
    return e.code();
  }
  return std::nullopt;
}

/// A test policy that records the outcome of every attempt the layers inside it return, as a
/// retry or a breaker reads it.
struct outcome_spy {
  std::vector<stockade::outcome>* seen;
  template <class Next>
  auto invoke(stockade::context& ctx, Next&& next) const {
    auto ended = next(ctx);
    seen->push_back(ended.outcome());
    return ended;
  }
};

/// True when `make().validate()` runs in a constant expression: a constexpr configuration built
/// by `make` compiles (and a bad one does not).
template <auto make>
constexpr bool compiles_as_constant = requires {
  typename std::bool_constant<(make().validate(), true)>;
};

}  // namespace stockade_test
