// Random sources for jitter: a concept (any 64-bit std::uniform_random_bit_generator), a fast
// lock-free default (`thread_random`: one splitmix64 state per thread) and `seeded_random{seed}`.
// Invariant: a source yields uniformly distributed 64-bit values over the full range [0, 2^64),
// because to_unit_interval() and the jitter bounds rely on it.
#pragma once

#include <atomic>
#include <chrono>
#include <concepts>
#include <cstdint>
#include <limits>

namespace stockade {

/// What a random source must provide: a std::uniform_random_bit_generator over all 64-bit values
/// (std::mt19937_64 qualifies, but is not thread-safe; so do thread_random and seeded_random
/// below). It is called through a non-const reference; a source shared by threads must be
/// thread-safe itself. (Spelled out rather than built on std::uniform_random_bit_generator, which
/// needs <random>.)
template <class R>
concept random_source = requires(R& source) {
  { source() } -> std::same_as<std::uint64_t>;
  { R::min() } -> std::same_as<std::uint64_t>;
  { R::max() } -> std::same_as<std::uint64_t>;
}
&&(R::min() == 0) && (R::max() == std::numeric_limits<std::uint64_t>::max());

namespace detail {

inline constexpr std::uint64_t golden_gamma = 0x9e3779b97f4a7c15ULL;

/// splitmix64's output function (Steele, Lea, Flood 2014): a bijective 64-bit mixer; fed with a
/// counter stepped by the golden gamma it passes BigCrush.
constexpr std::uint64_t splitmix64_mix(std::uint64_t z) noexcept {
  z = (z ^ (z >> 30U)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27U)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31U);
}

/// A double uniform in [0, 1) from the top 53 bits (every value exactly representable).
constexpr double to_unit_interval(std::uint64_t bits) noexcept {
  return static_cast<double>(bits >> 11U) * 0x1.0p-53;
}

/// A per-thread seed that differs between threads and between runs without a system call:
/// a process-wide counter, the address of this thread's state and the time, mixed together.
inline std::uint64_t fresh_thread_seed(const void* thread_state) noexcept {
  static std::atomic<std::uint64_t> threads_seeded{0};
  const std::uint64_t serial = threads_seeded.fetch_add(1, std::memory_order_relaxed);
  const auto address = static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(thread_state));
  const auto ticks =
      static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  return splitmix64_mix(splitmix64_mix(serial * golden_gamma ^ address) ^ ticks);
}

}  // namespace detail

/// The default source: each thread steps its own splitmix64 state, so there is no lock, no
/// shared cache line and no atomic instruction. Stateless itself (an empty type), so a policy
/// holding it costs nothing. Not reproducible; use seeded_random for that.
struct thread_random {
  using result_type = std::uint64_t;
  static constexpr result_type min() noexcept { return 0; }
  static constexpr result_type max() noexcept { return std::numeric_limits<result_type>::max(); }

  result_type operator()() const noexcept {
    thread_local std::uint64_t state = detail::fresh_thread_seed(&state);
    state += detail::golden_gamma;
    return detail::splitmix64_mix(state);
  }
};

/// A reproducible source for tests: splitmix64 from `seed`. Copies continue independently from
/// the copied state. Safe to share between threads (the counter is stepped atomically, so no two
/// draws repeat); the sequence each thread sees is then interleaved, not reproducible.
class seeded_random {
 public:
  using result_type = std::uint64_t;
  static constexpr result_type min() noexcept { return 0; }
  static constexpr result_type max() noexcept { return std::numeric_limits<result_type>::max(); }

  constexpr explicit seeded_random(std::uint64_t seed) noexcept : state_(seed) {}
  constexpr seeded_random(const seeded_random& other) noexcept : state_(other.state_) {}
  constexpr seeded_random& operator=(const seeded_random& other) noexcept {
    state_ = other.state_;
    return *this;
  }

  result_type operator()() noexcept {
    const std::uint64_t before = std::atomic_ref<std::uint64_t>(state_).fetch_add(
        detail::golden_gamma, std::memory_order_relaxed);
    return detail::splitmix64_mix(before + detail::golden_gamma);
  }

 private:
  alignas(std::atomic_ref<std::uint64_t>::required_alignment) std::uint64_t state_;
};

/// The source policies use unless given another.
using default_random = thread_random;

/// A double uniform in [0, 1) drawn from `source`.
template <random_source R>
double uniform_unit(R& source) noexcept(noexcept(source())) {
  return detail::to_unit_interval(source());
}

static_assert(random_source<thread_random>);
static_assert(random_source<seeded_random>);

}  // namespace stockade
