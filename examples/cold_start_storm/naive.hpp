// The naive application, written the way the post-mortem's authors grew it by hand: a fixed
// warm-up delay, three nested retry loops with exponential backoff, a health check on another
// client than the queries, a reconnect on every "fatal" error with no generation check, and a
// cold-start race in which every concurrent caller builds its own client. Each instance has a
// client with a small pool, as the post-mortem's database client had.
// Every loop is bounded (3 attempts per layer) and every driver call has a deadline, so it is
// bad the way the original was bad, and no worse: it cannot hang.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "../postgres/sqlstate.hpp"
#include "driver.hpp"

namespace storm {

/// Timed out waiting for a free connection of the client's pool (the post-mortem's client said
/// "Timed out fetching a new connection from the connection pool").
struct pool_timeout : std::runtime_error {
  pool_timeout() : std::runtime_error("timed out fetching a connection from the pool") {}
};

struct naive_settings {
  // The client library's default pool (the post-mortem's client: 2 x CPUs + 1 = 5), not a
  // share of what the database allows: 15 instances x 5 met a 60-connection limit.
  int connections_per_instance = 5;
  milliseconds handler_backoff{80};  // layer 1: 160, 320 ms
  milliseconds data_backoff{40};     // layer 2: 80, 160 ms (jittered on "too many clients")
  milliseconds query_backoff{20};    // layer 3: 40, 80 ms
  milliseconds warmup_delay{50};     // the fixed "warm-up delay" before first use
  int health_check_every = 20;       // requests per instance between two health checks
  milliseconds pool_wait{1000};
  milliseconds io_timeout{3000};  // a bound on each driver call, not a design decision

  /// The longest the three nested layers can sleep in one request: each layer waits twice
  /// (2x and 4x its base) around three attempts of the layer inside. Attempts not included.
  constexpr milliseconds worst_case_backoff() const {
    const milliseconds query = 6 * query_backoff;
    const milliseconds data = 6 * data_backoff + 3 * query;
    return 6 * handler_backoff + 3 * data;
  }
};

/// The application's database client: a small pool of connections, connected lazily.
template <driver Driver>
class naive_client {
  using connection = typename Driver::connection;

 public:
  naive_client(Driver& db, const naive_settings& settings, int pool_size)
      : db_(db), settings_(settings), pool_size_(pool_size) {}
  naive_client(const naive_client&) = delete;
  naive_client& operator=(const naive_client&) = delete;
  ~naive_client() { disconnect(); }

  /// A connection lent to one caller; given back when destroyed.
  class borrowed {
   public:
    borrowed(naive_client& owner, std::unique_ptr<connection> held)
        : owner_(&owner), held_(std::move(held)) {}
    borrowed(borrowed&& other) noexcept
        : owner_(std::exchange(other.owner_, nullptr)),
          held_(std::move(other.held_)),
          broken_(other.broken_) {}
    borrowed& operator=(borrowed&&) = delete;
    ~borrowed() {
      if (owner_ != nullptr) owner_->give_back(std::move(held_), broken_);
    }
    connection& operator*() const { return *held_; }
    void mark_broken() { broken_ = true; }

   private:
    naive_client* owner_;
    std::unique_ptr<connection> held_;
    bool broken_ = false;
  };

  borrowed borrow() {
    std::unique_lock lock(mutex_);
    const bool ready = freed_.wait_for(
        lock, settings_.pool_wait, [&] { return closed_ || !idle_.empty() || open_ < pool_size_; });
    if (!ready) throw pool_timeout();
    if (closed_) {
      throw pg::error(std::string(pg::connection_does_not_exist), "the client was disconnected");
    }
    if (!idle_.empty()) {
      auto held = std::move(idle_.back());
      idle_.pop_back();
      return borrowed(*this, std::move(held));
    }
    ++open_;  // reserved while connecting, outside the lock
    lock.unlock();
    try {
      return borrowed(*this, db_.connect(clock_type::now() + settings_.io_timeout));
    } catch (...) {
      lock.lock();
      --open_;
      freed_.notify_one();
      throw;
    }
  }

  void disconnect() {
    std::vector<std::unique_ptr<connection>> closing;
    {
      std::lock_guard lock(mutex_);
      closed_ = true;
      open_ -= static_cast<int>(idle_.size());
      closing.swap(idle_);
      freed_.notify_all();
    }  // the connections close here, outside the lock; lent ones close when given back
  }

 private:
  void give_back(std::unique_ptr<connection> held, bool broken) {
    std::unique_ptr<connection> closing;
    std::lock_guard lock(mutex_);
    if (closed_ || broken) {
      --open_;
      closing = std::move(held);
    } else {
      idle_.push_back(std::move(held));
    }
    freed_.notify_one();
  }

  Driver& db_;
  const naive_settings& settings_;
  const int pool_size_;
  std::mutex mutex_;
  std::condition_variable freed_;
  std::vector<std::unique_ptr<connection>> idle_;
  int open_ = 0;
  bool closed_ = false;
};

template <driver Driver>
class naive_app {
  using client = naive_client<Driver>;

 public:
  naive_app(Driver& db, int instances, naive_settings settings) : db_(db), settings_(settings) {
    for (int i = 0; i < instances; ++i) instances_.push_back(std::make_unique<instance_state>());
  }
  naive_app(const naive_app&) = delete;
  naive_app& operator=(const naive_app&) = delete;
  ~naive_app() {
    for (auto& in : instances_) {
      if (in->current) in->current->disconnect();
      for (auto& lost : in->abandoned) lost->disconnect();
    }
  }

  /// One request, as the application's handler runs it: layer 1 retries the whole request.
  /// Worst case: 3 x 3 x 3 = 27 inserts, and worst_case_backoff() of sleeping.
  void write(int instance, std::int64_t key) {
    instance_state& in = *instances_[static_cast<std::size_t>(instance)];
    for (int attempt = 1;; ++attempt) {
      try {
        with_client(in, instance, key);
        return;
      } catch (const std::exception&) {
        if (attempt == 3) throw;
        std::this_thread::sleep_for(settings_.handler_backoff * (1 << attempt));
      }
    }
  }

  /// Clients built and warmed (each: a connection and the fixed warm-up delay).
  long warmups() const { return warmups_.load(); }
  long health_checks() const { return health_checks_.load(); }
  std::string summary() const {
    return std::to_string(warmups()) + " clients built (each: a connection, then a fixed " +
           std::to_string(settings_.warmup_delay.count()) + " ms delay), " +
           std::to_string(abandoned_clients()) +
           " of them left behind by the cold-start race with their connections open, " +
           std::to_string(health_checks()) + " health checks, each on a connection of its own";
  }
  long abandoned_clients() const {
    long total = 0;
    for (const auto& in : instances_) {
      std::lock_guard lock(in->mutex);
      total += static_cast<long>(in->abandoned.size());
    }
    return total;
  }

 private:
  struct instance_state {
    mutable std::mutex mutex;
    std::shared_ptr<client> current;
    std::vector<std::shared_ptr<client>> abandoned;  // never disconnected until shutdown
    std::atomic<long> requests{0};
  };

  static bool connection_trouble(const pg::error& e) {
    return e.connection_lost() || e.sqlstate().starts_with("08") || e.sqlstate().starts_with("57P");
  }

  // Layer 2, the data layer: retries connection trouble, reconnecting first.
  void with_client(instance_state& in, int instance, std::int64_t key) {
    for (int attempt = 1;; ++attempt) {
      try {
        std::shared_ptr<client> current = get_client(in);
        if (++in.requests % settings_.health_check_every == 0) health_check();
        auto held = current->borrow();
        try {
          insert_with_retry(*held, instance, key);
          return;
        } catch (const pg::error& e) {
          if (connection_trouble(e)) held.mark_broken();
          throw;
        }
      } catch (const pg::error& e) {
        if (connection_trouble(e)) reconnect(in);
        if (attempt == 3) throw;
        auto wait = settings_.data_backoff * (1 << attempt);
        if (e.sqlstate() == pg::too_many_connections) wait = jittered(wait);  // "pool exhaustion"
        std::this_thread::sleep_for(wait);
      } catch (const pool_timeout&) {
        if (attempt == 3) throw;
        std::this_thread::sleep_for(settings_.data_backoff * (1 << attempt));
      }
    }
  }

  // Layer 3, the query helper: retries serialization failures and deadlocks.
  void insert_with_retry(typename Driver::connection& c, int instance, std::int64_t key) {
    for (int attempt = 1;; ++attempt) {
      try {
        db_.insert(c, key, instance, write_mode::plain, clock_type::now() + settings_.io_timeout);
        return;
      } catch (const pg::error& e) {
        const bool retryable =
            e.sqlstate() == pg::serialization_failure || e.sqlstate() == pg::deadlock_detected;
        if (!retryable || attempt == 3) throw;
        std::this_thread::sleep_for(settings_.query_backoff * (1 << attempt));
      }
    }
  }

  // The cold-start race: every concurrent caller that finds no client builds one. The losers'
  // clients are kept but never used or disconnected: their connections stay open.
  std::shared_ptr<client> get_client(instance_state& in) {
    {
      std::lock_guard lock(in.mutex);
      if (in.current) return in.current;
    }
    auto fresh = std::make_shared<client>(db_, settings_, settings_.connections_per_instance);
    warmups_.fetch_add(1);
    {
      auto first = fresh->borrow();                         // connects
      std::this_thread::sleep_for(settings_.warmup_delay);  // "warm-up delay", a guess
    }
    std::lock_guard lock(in.mutex);
    if (!in.current) {
      in.current = fresh;
    } else {
      in.abandoned.push_back(fresh);
    }
    return in.current;
  }

  // The post-mortem's bug: the health check runs on a client of its own, not the queries' one,
  // so it can say "healthy" while the queries' client is broken, and it costs a connection.
  void health_check() {
    health_checks_.fetch_add(1);
    client probe(db_, settings_, 1);
    try {
      auto held = probe.borrow();
      (void)db_.ping(*held, clock_type::now() + settings_.io_timeout);
    } catch (const std::exception&) {  // the answer was never used anyway
    }
  }

  // No generation counter: each concurrent failure drops whatever client is current, even one
  // another thread made a moment ago, and everyone still holding the old one fails next.
  void reconnect(instance_state& in) {
    std::shared_ptr<client> old;
    {
      std::lock_guard lock(in.mutex);
      old = std::move(in.current);
    }
    if (old) old->disconnect();
  }

  static milliseconds jittered(milliseconds wait) {
    thread_local std::minstd_rand rng{std::random_device{}()};
    return milliseconds(std::uniform_int_distribution<long>(wait.count() / 2, wait.count())(rng));
  }

  Driver& db_;
  const naive_settings settings_;
  std::vector<std::unique_ptr<instance_state>> instances_;
  std::atomic<long> warmups_{0};
  std::atomic<long> health_checks_{0};
};

}  // namespace storm
