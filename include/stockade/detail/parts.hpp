// A policy's collaborators, given to its constructor after its options in any order and each at
// most once: `retry{options, std::ref(budget), observer_ref{counters}}`. Each policy names the
// kinds it takes (a trait per kind); a part of no other kind is its observer.
// Invariant: every part is of exactly one kind the policy takes, and no kind is given twice (a
// static_assert says which).
#pragma once

#include <cstddef>
#include <functional>
#include <type_traits>
#include <utility>

#include "../clock.hpp"

namespace stockade::detail {

template <class P>
using part_t = std::remove_cvref_t<P>;

/// How many of `Parts` are of the kind `Is`.
template <template <class> class Is, class... Parts>
inline constexpr std::size_t count_parts = (std::size_t{0} + ... +
                                            (Is<part_t<Parts>>::value ? 1U : 0U));

/// The type of the part of kind `Is`, or `Default` if none is given.
template <template <class> class Is, class Default, class... Parts>
struct part_of {
  using type = Default;
};
template <template <class> class Is, class Default, class P, class... Rest>
struct part_of<Is, Default, P, Rest...>
    : std::conditional_t<Is<part_t<P>>::value, std::type_identity<part_t<P>>,
                         part_of<Is, Default, Rest...>> {};
template <template <class> class Is, class Default, class... Parts>
using part_of_t = typename part_of<Is, Default, Parts...>::type;

/// The first of `parts` of kind `Is` (a copy); there is one.
template <template <class> class Is, class P, class... Rest>
constexpr auto take_first(P& part, Rest&... rest) {
  if constexpr (Is<part_t<P>>::value) {
    return part_t<P>(part);
  } else {
    return take_first<Is>(rest...);
  }
}

/// The part of kind `Is` (a copy), or a default-made `Default` if none is given.
template <template <class> class Is, class Default, class... Parts>
constexpr auto take_part(Parts&... parts) {
  if constexpr (count_parts<Is, Parts...> == 0) {
    return Default{};
  } else {
    return take_first<Is>(parts...);
  }
}

// The parts of a policy that keeps time outside calls: its clock (by reference; the real clock
// if none is given) and its observer (anything else).
template <class P>
struct is_clock_part : std::is_base_of<clock, P> {};
template <class P>
struct is_observer_part : std::bool_constant<!is_clock_part<P>::value> {};

/// The clock among `parts`, or the real clock. Also checks the parts, once for every policy
/// that takes these two: at most one of each, and a clock is kept by reference, so it must be
/// an lvalue (a temporary clock would be gone before the policy). Called with the
/// constructor's own `Parts` (`clock_in<Parts...>(parts...)`), so it sees how each was passed.
template <class... Parts>
clock& clock_in(Parts&... parts) noexcept {
  static_assert(
      count_parts<is_clock_part, Parts...> <= 1 && count_parts<is_observer_part, Parts...> <= 1 &&
          ((!is_clock_part<part_t<Parts>>::value || std::is_lvalue_reference_v<Parts>)&&...),
      "a policy takes, after its options, at most one clock (an lvalue that outlives "
      "it) and one observer");
  clock* found = &real_clock::instance();
  (
      [&] {
        if constexpr (is_clock_part<part_t<Parts>>::value) found = &parts;
      }(),
      ...);
  return *found;
}

}  // namespace stockade::detail
