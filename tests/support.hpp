// Small helpers the test files share: what an action throws, and whether a configuration
// compiles as a constant.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>

#include <stockade/errors.hpp>

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

/// True when `make().validate()` runs in a constant expression: a constexpr configuration built
/// by `make` compiles (and a bad one does not).
template <auto make>
constexpr bool compiles_as_constant = requires {
  typename std::bool_constant<(make().validate(), true)>;
};

}  // namespace stockade_test
