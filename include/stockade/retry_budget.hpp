// Retry budgets: objects shared by every call site that talks to one dependency, which refuse
// retries once too many calls fail, so a struggling dependency is not buried in a retry storm.
// Invariant: a budget never blocks and never takes a lock; it only counts (relaxed atomics) and
// answers. It may over-grant by at most one retry per thread racing on it, never under-count.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>

#include "clock.hpp"
#include "detail/validate.hpp"
#include "verdict.hpp"

namespace stockade {

/// What a retry policy asks of a budget: on_attempt() after every attempt (`first` is true for
/// a call's first attempt, so a budget can count calls too), and try_retry() when it is about to
/// retry; a budget that answers true has charged that retry. A budget is shared by reference
/// (`retry{options, std::ref(b)}`) between every retry policy that calls the same dependency.
template <class B>
concept budget_for_retry = requires(B& budget, const outcome& result) {
  budget.on_attempt(result, true);
  { budget.try_retry() } -> std::convertible_to<bool>;
};

/// The budget of a retry policy that has none: grants every retry and compiles to nothing.
struct no_budget {
  constexpr void on_attempt(const outcome& /*result*/, bool /*first*/) const noexcept {}
  constexpr bool try_retry() const noexcept { return true; }
};

/// A base for budgets chosen at run time (retry{options, std::ref(some_retry_budget_ref)}); the
/// two budgets below derive from it but are `final`, so a policy given one calls it directly.
class retry_budget {
 public:
  retry_budget() = default;
  retry_budget(const retry_budget&) = delete;
  retry_budget& operator=(const retry_budget&) = delete;
  virtual ~retry_budget() = default;

  virtual void on_attempt(const outcome& result, bool first) noexcept = 0;
  virtual bool try_retry() noexcept = 0;

  /// Retries granted and refused so far.
  std::uint64_t retries_granted() const noexcept {
    return granted_.load(std::memory_order_relaxed);
  }
  std::uint64_t retries_refused() const noexcept {
    return refused_.load(std::memory_order_relaxed);
  }

 protected:
  bool count_answer(bool granted) noexcept {
    (granted ? granted_ : refused_).fetch_add(1, std::memory_order_relaxed);
    return granted;
  }

 private:
  std::atomic<std::uint64_t> granted_{0};
  std::atomic<std::uint64_t> refused_{0};
};

/// gRPC proposal A6 "retry throttling". Defaults are A6's example configuration.
struct token_budget_options {
  /// Tokens when healthy; retries stop while tokens <= max_tokens / 2.
  int max_tokens = 10;
  /// Tokens a success gives back (a failure costs 1). 0.1 means retries stop once more than
  /// about one attempt in eleven fails. A6 keeps 3 decimal places; so do we.
  double token_ratio = 0.1;

  constexpr void validate() const {
    detail::require(max_tokens > 0 && max_tokens <= 1'000'000, "token_budget", "max_tokens",
                    "must be between 1 and 1000000", max_tokens);
    detail::require(token_ratio >= 0.001 && token_ratio <= 1000.0, "token_budget", "token_ratio",
                    "must be between 0.001 and 1000", token_ratio);
  }
};

/// gRPC A6 throttling: tokens start at max_tokens; every failed attempt (a transient or fatal
/// verdict that is not a policy's rejection) costs 1 token, every success adds token_ratio, the
/// count stays within [0, max_tokens]; a retry is allowed only while tokens > max_tokens / 2.
/// Permanent verdicts and rejections leave the count alone (A6 counts only retryable failures).
/// Kept in thousandths of a token in one atomic, so it is exact and lock-free; a success while
/// the bucket is full costs one load. constexpr-constructible, so it can be `constinit`.
class token_budget final : public retry_budget {
 public:
  constexpr explicit token_budget(token_budget_options options = {})
      : options_((options.validate(), options)),
        max_milli_(std::int64_t{options.max_tokens} * milli),
        ratio_milli_(static_cast<std::int64_t>(options.token_ratio * milli + 0.5)),
        milli_tokens_(max_milli_) {}

  void on_attempt(const outcome& result, bool /*first*/) noexcept override {
    if (result.succeeded()) {
      add(ratio_milli_);
    } else if (result.is_dependency_failure()) {
      add(-milli);
    }
  }

  bool try_retry() noexcept override {
    return count_answer(milli_tokens_.load(std::memory_order_relaxed) > max_milli_ / 2);
  }

  /// The current token count (e.g. 5.1).
  double tokens() const noexcept {
    return static_cast<double>(milli_tokens_.load(std::memory_order_relaxed)) / milli;
  }
  constexpr const token_budget_options& options() const noexcept { return options_; }

 private:
  static constexpr std::int64_t milli = 1000;

  void add(std::int64_t delta) noexcept {
    std::int64_t current = milli_tokens_.load(std::memory_order_relaxed);
    for (;;) {
      std::int64_t next = current + delta;
      next = next < 0 ? 0 : (next > max_milli_ ? max_milli_ : next);
      if (next == current) return;  // full and succeeding, or empty and failing: no write
      if (milli_tokens_.compare_exchange_weak(current, next, std::memory_order_relaxed)) return;
    }
  }

  token_budget_options options_;
  std::int64_t max_milli_;
  std::int64_t ratio_milli_;
  std::atomic<std::int64_t> milli_tokens_;
};

/// A percentage budget over a sliding window, as Finagle's RetryBudget and tower's TpsBudget
/// (defaults are theirs: ttl 10 s, 10 retries per second, 20 %).
struct percent_budget_options {
  /// How long a call's deposit counts. tower accepts 1 s to 60 s; so do we.
  duration ttl = std::chrono::seconds(10);
  /// Retries always allowed per second, whatever the traffic, so a quiet client can still retry.
  int min_per_sec = 10;
  /// Retries allowed per call within the window: 0.2 lets 20 % more load reach the dependency.
  double percent_can_retry = 0.2;

  constexpr void validate() const {
    detail::require(ttl >= std::chrono::seconds(1) && ttl <= std::chrono::seconds(60),
                    "percent_budget", "ttl", "must be between 1s and 60s", ttl);
    detail::require(min_per_sec >= 0 && min_per_sec <= 1'000'000, "percent_budget", "min_per_sec",
                    "must be between 0 and 1000000", min_per_sec);
    detail::require(percent_can_retry >= 0.0 && percent_can_retry <= 1000.0, "percent_budget",
                    "percent_can_retry", "must be between 0 and 1000", percent_can_retry);
  }
};

/// Every call deposits percent_can_retry of a retry; every retry withdraws one; a retry is
/// allowed while deposits of the last ttl, plus a reserve of min_per_sec * ttl retries, minus
/// the retries already taken in that window, make at least one whole retry. Deposits live in
/// 10 slots of ttl / 10 each, so old traffic drops out slot by slot. Time is read from `time`
/// (the manual clock in tests) once per call and once per try_retry().
class percent_budget final : public retry_budget {
 public:
  explicit percent_budget(percent_budget_options options = {},
                          stockade::clock& time = real_clock::instance())
      : options_((options.validate(), options)),
        clock_(time),
        origin_(time.now()),
        slot_length_(options.ttl / slot_count),
        deposit_(std::llround(options.percent_can_retry * unit)),
        reserve_(std::llround(static_cast<double>(options.min_per_sec) *
                              std::chrono::duration<double>(options.ttl).count() * unit)) {
    // Every slot starts "long ago" (a quarter of the tag range behind epoch 0): never counted.
    for (auto& slot : slots_) {
      slot.store(pack((tag_mask + 1) - (tag_mask + 1) / 4, 0), std::memory_order_relaxed);
    }
  }

  /// A call's first attempt deposits; outcomes do not matter to this budget.
  void on_attempt(const outcome& /*result*/, bool first) noexcept override {
    if (first) add(deposit_, epoch_now());
  }

  bool try_retry() noexcept override {
    const std::uint64_t epoch = epoch_now();
    if (balance(epoch) < unit) return count_answer(false);
    add(-unit, epoch);
    return count_answer(true);
  }

  /// Whole retries the budget would grant now (racing callers aside).
  std::int64_t retries_available() const noexcept {
    const std::int64_t left = balance(epoch_now());
    return left > 0 ? left / unit : 0;
  }
  const percent_budget_options& options() const noexcept { return options_; }

 private:
  // A slot packs the low 28 bits of its epoch (which ttl/10 period it counts) and a signed
  // 36-bit balance in one word, so a slot is re-used for a new period by one compare-exchange.
  // Tags wrap after 2^28 periods (310 days at the shortest ttl): a slot left untouched for
  // exactly a multiple of that could count its old balance for one window, a risk we accept.
  static constexpr std::size_t slot_count = 10;
  static constexpr std::int64_t unit = 1000;  // one retry, in thousandths
  static constexpr unsigned value_bits = 36;
  static constexpr std::uint64_t value_mask = (std::uint64_t{1} << value_bits) - 1;
  static constexpr std::uint64_t tag_mask = (std::uint64_t{1} << (64 - value_bits)) - 1;
  static constexpr std::int64_t value_limit = (std::int64_t{1} << (value_bits - 1)) - 1;
  /// A slot whose tag is ahead of a writer's epoch by less than this was moved on by a faster
  /// thread; the late writer's period has expired. Farther "ahead" means far behind, wrapped.
  static constexpr std::uint64_t max_lag = 1024;

  static constexpr std::uint64_t tag_of(std::uint64_t word) noexcept { return word >> value_bits; }
  static constexpr std::int64_t value_of(std::uint64_t word) noexcept {
    const std::uint64_t raw = word & value_mask;
    const std::uint64_t sign = std::uint64_t{1} << (value_bits - 1);
    return static_cast<std::int64_t>(raw ^ sign) - static_cast<std::int64_t>(sign);
  }
  static constexpr std::uint64_t pack(std::uint64_t tag, std::int64_t value) noexcept {
    value = value > value_limit ? value_limit : (value < -value_limit ? -value_limit : value);
    return ((tag & tag_mask) << value_bits) | (static_cast<std::uint64_t>(value) & value_mask);
  }
  /// How many periods `tag` lies behind `epoch` (modulo the tag width).
  static constexpr std::uint64_t age(std::uint64_t epoch, std::uint64_t tag) noexcept {
    return (epoch - tag) & tag_mask;
  }

  std::uint64_t epoch_now() const noexcept {
    const duration since = clock_.now() - origin_;
    return since <= duration::zero() ? 0 : static_cast<std::uint64_t>(since / slot_length_);
  }

  void add(std::int64_t delta, std::uint64_t epoch) noexcept {
    std::atomic<std::uint64_t>& slot = slots_[epoch % slot_count];
    const std::uint64_t tag = epoch & tag_mask;
    std::uint64_t current = slot.load(std::memory_order_relaxed);
    for (;;) {
      const std::uint64_t held = tag_of(current);
      std::int64_t value = delta;
      if (held == tag) {
        value += value_of(current);
      } else if (age(held, tag) < max_lag) {
        return;  // the slot already counts a later period: this update's period has expired
      }
      if (slot.compare_exchange_weak(current, pack(tag, value), std::memory_order_relaxed)) return;
    }
  }

  std::int64_t balance(std::uint64_t epoch) const noexcept {
    std::int64_t total = reserve_;
    for (const auto& slot : slots_) {
      const std::uint64_t word = slot.load(std::memory_order_relaxed);
      if (age(epoch, tag_of(word)) < slot_count) total += value_of(word);
    }
    return total;
  }

  percent_budget_options options_;
  stockade::clock& clock_;
  time_point origin_;
  duration slot_length_;
  std::int64_t deposit_;
  std::int64_t reserve_;
  std::array<std::atomic<std::uint64_t>, slot_count> slots_{};
};

}  // namespace stockade
