// Small helpers the test files share: what an action throws, whether a configuration compiles
// as a constant, and a policy that records outcomes.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include <stockade/context.hpp>
#include <stockade/errors.hpp>
#include <stockade/verdict.hpp>

namespace stockade_test {

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
