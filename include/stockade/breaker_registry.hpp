// One circuit breaker per key (per host, per shard, per tenant), created on first use, with a
// bound on how many are kept: beyond it the least recently used closed breaker is dropped.
// Invariant: a breaker handed out is owned jointly (std::shared_ptr), so dropping it from the
// registry never destroys it under a caller; an open breaker is dropped only when every
// breaker in the registry is open, so a bound never quietly forgets an outage it could keep.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>

#include "circuit_breaker.hpp"
#include "clock.hpp"
#include "detail/parts.hpp"
#include "detail/validate.hpp"

namespace stockade {

struct breaker_registry_options {
  /// Breakers kept at most. Default 1000: no anchor bounds its registry (resilience4j's and
  /// Polly's grow without limit), which lets keys from untrusted input (host names, tenant
  /// ids) grow memory without end; a thousand count windows of 100 calls take about 200 KB.
  std::size_t max_breakers = 1000;

  constexpr void validate() const {
    detail::require(max_breakers >= 1, "breaker_registry", "max_breakers", "must be at least 1",
                    max_breakers);
  }
};

template <class Key, class Breaker = circuit_breaker<>, class Hash = std::hash<Key>,
          class KeyEqual = std::equal_to<Key>>
class breaker_registry {
 public:
  using key_type = Key;
  using breaker_type = Breaker;
  using breaker_options = typename Breaker::options_type;
  using observer_type = typename Breaker::observer_type;

  /// Every breaker gets `each` (its name replaced by the key when the key is a string); then,
  /// in any order, the clock every breaker reads (by reference; the real clock if none) and the
  /// observer every breaker reports to.
  template <class... Parts>
  explicit breaker_registry(const breaker_options& each = {},
                            const breaker_registry_options& limits = {}, Parts&&... parts)
      : each_((each.validate(), each)),
        limits_((limits.validate(), limits)),
        clock_(&detail::clock_in<Parts...>(parts...)),
        observer_(detail::take_part<detail::is_observer_part, observer_type>(parts...)) {}

  breaker_registry(const breaker_registry&) = delete;
  breaker_registry& operator=(const breaker_registry&) = delete;
  ~breaker_registry() = default;

  /// The breaker for `key`, made if there is none (which may drop another to keep the bound).
  /// Takes the registry's lock (a hash lookup and a list splice): keep the pointer across calls
  /// to the same key rather than looking it up for each call.
  std::shared_ptr<Breaker> get(const Key& key) {
    std::lock_guard lock(mutex_);
    if (auto found = index_.find(key); found != index_.end()) {
      by_recency_.splice(by_recency_.begin(), by_recency_, found->second);
      return as_breaker(*found->second);
    }
    auto made = std::make_shared<entry>(key, each_, *clock_, observer_);  // may throw: first
    if (index_.size() >= limits_.max_breakers) evict_one_locked();
    by_recency_.push_front(made);
    try {
      index_.emplace(key, by_recency_.begin());
    } catch (...) {
      by_recency_.pop_front();
      throw;
    }
    return as_breaker(made);
  }

  /// The breaker for `key` if the registry holds one; null otherwise. Does not count as a use.
  std::shared_ptr<Breaker> find(const Key& key) const {
    std::lock_guard lock(mutex_);
    const auto found = index_.find(key);
    return found == index_.end() ? nullptr : as_breaker(*found->second);
  }

  /// Drops the breaker for `key` (holders keep theirs); true if there was one.
  bool erase(const Key& key) {
    std::lock_guard lock(mutex_);
    const auto found = index_.find(key);
    if (found == index_.end()) return false;
    by_recency_.erase(found->second);
    index_.erase(found);
    return true;
  }

  std::size_t size() const {
    std::lock_guard lock(mutex_);
    return index_.size();
  }
  /// Breakers dropped to keep the bound, since the registry was built.
  std::uint64_t evictions() const {
    std::lock_guard lock(mutex_);
    return evictions_;
  }

  /// Calls visit(key, breaker) for each breaker, most recently used first, under the registry's
  /// lock: `visit` must not call back into the registry.
  template <class Visit>
  void for_each(Visit&& visit) const {
    std::lock_guard lock(mutex_);
    for (const auto& held : by_recency_) visit(std::as_const(held->key), held->breaker);
  }

  const breaker_registry_options& options() const noexcept { return limits_; }

 private:
  struct entry {
    Key key;
    Breaker breaker;
    entry(const Key& k, const breaker_options& each, stockade::clock& time_source,
          const observer_type& observer)
        : key(k), breaker(named(each, key), time_source, observer) {}

    // The name views this entry's own key, so it lives exactly as long as the breaker.
    static breaker_options named(breaker_options each, const Key& own_key) {
      if constexpr (std::is_convertible_v<const Key&, std::string_view>) {
        each.name = std::string_view(own_key);
      }
      return each;
    }
  };
  using recency_list = std::list<std::shared_ptr<entry>>;

  static std::shared_ptr<Breaker> as_breaker(const std::shared_ptr<entry>& held) {
    return {held, &held->breaker};  // aliasing: keeps the entry (and its key) alive
  }

  /// Drops, in order of preference, the least recently used breaker that is closed (or
  /// disabled) and held by nobody else, then one that is closed, then the least recently used.
  void evict_one_locked() {
    auto victim = by_recency_.end();
    for (int pass = 0; pass < 3 && victim == by_recency_.end(); ++pass) {
      for (auto it = by_recency_.end(); it != by_recency_.begin();) {
        --it;
        const circuit_state state = (*it)->breaker.state();
        const bool closed = state == circuit_state::closed || state == circuit_state::disabled;
        const bool unshared = it->use_count() == 1;
        if (pass == 2 || (closed && (pass == 1 || unshared))) {
          victim = it;
          break;
        }
      }
    }
    index_.erase((*victim)->key);
    by_recency_.erase(victim);
    ++evictions_;
  }

  const breaker_options each_;
  const breaker_registry_options limits_;
  stockade::clock* clock_;
  observer_type observer_;

  mutable std::mutex mutex_;
  recency_list by_recency_;  // most recently used first
  std::unordered_map<Key, typename recency_list::iterator, Hash, KeyEqual> index_;
  std::uint64_t evictions_ = 0;
};

}  // namespace stockade
