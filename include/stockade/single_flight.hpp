// Single flight: one caller (the leader) runs some work, every caller that arrives while it runs
// waits for it and gets a copy of the same result or the same exception.
// Invariant: a caller's own give-up (its deadline or stop token) never reaches another caller; a
// leader that gives up hands the work to a waiter, which runs it again under its own deadline.
#pragma once

#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <type_traits>
#include <unordered_map>
#include <utility>

#include "context.hpp"
#include "detail/waiter_queue.hpp"
#include "errors.hpp"
#include "policy.hpp"
#include "runtime.hpp"

namespace stockade {

namespace detail {

/// One run of the work, shared by its leader and its waiters. Guarded by the owner's mutex.
template <class R>
struct flight_run {
  waiter_queue<waiter> followers;  // served when done or when the leader leaves
  bool done = false;
  bool has_leader = true;
  std::size_t waiters = 0;
  std::optional<R> value;
  std::exception_ptr failure;
};

/// True once this caller no longer waits: its stop token fired or its deadline passed.
inline bool caller_gave_up(context& ctx) {
  return ctx.caller_stop_token().stop_requested() || ctx.expired();
}

[[noreturn]] inline void throw_give_up(context& ctx, errc wait_exceeded) {
  if (ctx.caller_stop_token().stop_requested()) throw error(errc::cancelled);
  throw error(wait_exceeded);
}

// The decisions of single flight, written once for every way of waiting, each made under the
// owner's lock: arrive, then (for a follower, each time its wait ends) after_wait, and for the
// leader leader_succeeded or leader_failed. `slot` finds, installs and forgets the run in
// progress (a member, or a map entry). join_or_lead below is the blocking driver; a coroutine
// driver suspends where it waits instead.
enum class flight_step {
  lead,         // run the work (a new run, or one its leader left), then report how it ended
  follow,       // wait for the run in progress (counted among its waiters)
  take_result,  // the run is done: its value or its failure is this caller's
  give_up,      // this caller's deadline or stop ended its wait: its own rejection
};

/// A caller arrives at `run` (the one in progress, or null). Never starts (or takes over) work
/// it could not wait for; reads its give-up only when it would lead.
template <class R, class Slot>
flight_step arrive(Slot& slot, std::shared_ptr<flight_run<R>>& run, context& ctx) {
  if (run && run->has_leader) {
    ++run->waiters;
    return flight_step::follow;
  }
  if (caller_gave_up(ctx)) {
    if (run && run->waiters == 0) slot.forget(run);
    return flight_step::give_up;
  }
  if (!run) {
    run = std::make_shared<flight_run<R>>();
    slot.install(run);
  }
  run->has_leader = true;
  return flight_step::lead;
}

/// A follower's wait ended (`served`: woken by the run, rather than its own deadline or stop).
/// A run whose leader left is taken over by a waiter that has not given up.
template <class R, class Slot>
flight_step after_wait(Slot& slot, const std::shared_ptr<flight_run<R>>& run, context& ctx,
                       bool served) {
  if (run->done) {
    --run->waiters;
    return flight_step::take_result;
  }
  const bool gave_up = !served || caller_gave_up(ctx);
  if (!gave_up && !run->has_leader) {
    --run->waiters;
    run->has_leader = true;
    return flight_step::lead;
  }
  if (gave_up) {
    --run->waiters;
    if (!run->has_leader && run->waiters == 0) slot.forget(run);
    return flight_step::give_up;
  }
  return flight_step::follow;
}

/// The leader's work returned `value`: every waiter gets a copy (a copy that throws fails the
/// waiters only, not the leader).
template <class R, class Slot>
void leader_succeeded(Slot& slot, const std::shared_ptr<flight_run<R>>& run, const R& value) {
  try {
    run->value.emplace(value);
  } catch (...) {
    run->failure = std::current_exception();
  }
  run->done = true;
  slot.forget(run);
  serve_all(run->followers);
}

/// The leader's work threw `failure`; `gave_up` (decided by the driver as the work ended): the
/// leader's own deadline or stop, which is never another caller's, so the run waits for a
/// waiter to take it over. Any other failure is the run's answer for every waiter.
template <class R, class Slot>
void leader_failed(Slot& slot, const std::shared_ptr<flight_run<R>>& run,
                   std::exception_ptr failure, bool gave_up) {
  if (gave_up) {
    run->has_leader = false;
    if (run->waiters == 0) slot.forget(run);
  } else {
    run->failure = std::move(failure);
    run->done = true;
    slot.forget(run);
  }
  serve_all(run->followers);
}

/// What a caller does once its wait is over (`step` is not follow), written once for both
/// drivers: takes the run's result, gives up, or leads (runs `work` with `lock` released, then
/// reports how it ended). `lock` holds the owner's mutex on entry and on a normal return.
template <class R, class Slot, class Work>
R finish_flight(std::unique_lock<std::mutex>& lock, Slot& slot,
                const std::shared_ptr<flight_run<R>>& run, flight_step step, context& ctx,
                Work& work, errc wait_exceeded) {
  if (step == flight_step::take_result) {
    if (run->failure) std::rethrow_exception(run->failure);
    return *run->value;
  }
  if (step == flight_step::give_up) throw_give_up(ctx, wait_exceeded);

  lock.unlock();
  std::optional<R> value;
  try {
    value.emplace(std::invoke(work, ctx));
  } catch (...) {
    const bool gave_up = caller_gave_up(ctx);  // decided once, here
    lock.lock();
    leader_failed(slot, run, std::current_exception(), gave_up);
    throw;
  }
  lock.lock();
  leader_succeeded(slot, run, *value);
  return std::move(*value);
}

/// The blocking driver behind flight<R> and single_flight<Key, R>: `lock` holds the owner's
/// mutex; a follower blocks this thread until the run serves it or its deadline or stop comes.
template <class R, class Slot, class Work>
R join_or_lead(std::unique_lock<std::mutex>& lock, Slot& slot, context& ctx, Work& work,
               errc wait_exceeded) {
  std::shared_ptr<flight_run<R>> run = slot.current();
  flight_step step = arrive<R>(slot, run, ctx);
  while (step == flight_step::follow) {
    const bool served = ctx.wait_until(lock, run->followers, no_deadline,
                                       [&] { return run->done || !run->has_leader; });
    step = after_wait(slot, run, ctx, served);
  }
  return finish_flight<R>(lock, slot, run, step, ctx, work, wait_exceeded);
}

/// A follower's place among a run's followers, given up if its wait does not end normally (the
/// wait threw, or the coroutine was destroyed while it waited): it leaves the queue and stops
/// counting as a waiter, as a follower that gave up would. `lock` may or may not be held.
template <class R, class Slot>
class follower_place {
 public:
  follower_place(Slot& slot, const std::shared_ptr<flight_run<R>>& run,
                 std::unique_lock<std::mutex>& lock, waiter& self) noexcept
      : slot_(&slot), run_(run), lock_(lock), self_(self) {}
  follower_place(const follower_place&) = delete;
  follower_place& operator=(const follower_place&) = delete;
  ~follower_place() {
    if (slot_ == nullptr) return;
    if (!lock_.owns_lock()) lock_.lock();
    run_->followers.erase(self_);
    --run_->waiters;
    if (!run_->done && !run_->has_leader && run_->waiters == 0) slot_->forget(run_);
  }
  void settled() noexcept { slot_ = nullptr; }

 private:
  Slot* slot_;
  const std::shared_ptr<flight_run<R>>& run_;
  std::unique_lock<std::mutex>& lock_;
  waiter& self_;
};

/// The coroutine driver of join_or_lead: a follower suspends (Runtime::wait_for_turn) until the
/// run serves it or its deadline or stop comes; the leader runs `work` on its own thread.
template <class Runtime, class R, class Slot, class Work>
typename Runtime::template task<R> join_or_lead_async(std::mutex& mutex, Slot slot, context& ctx,
                                                      Work work, errc wait_exceeded) {
  std::unique_lock lock(mutex);
  std::shared_ptr<flight_run<R>> run = slot.current();
  flight_step step = arrive<R>(slot, run, ctx);
  while (step == flight_step::follow) {
    const auto ready = [&] { return run->done || !run->has_leader; };
    while (!ready()) {
      waiter self;
      run->followers.push_back(self);
      follower_place<R, Slot> place(slot, run, lock, self);
      const bool served = co_await Runtime::wait_for_turn(ctx, lock, self, no_deadline);
      place.settled();
      if (!served) {
        run->followers.erase(self);
        break;
      }
    }
    step = after_wait(slot, run, ctx, ready());
  }
  co_return finish_flight<R>(lock, slot, run, step, ctx, work, wait_exceeded);
}

template <class F, class R>
concept flight_work = std::is_invocable_v<F&, context&> &&
    std::is_convertible_v<std::invoke_result_t<F&, context&>, R>;

}  // namespace detail

/// A single slot of single flight, without keys: e.g. "the" warm-up or "the" health probe.
///   stockade::flight<config> refresh;
///   config c = refresh.run(ctx, [&](stockade::context& c) { return load_config(c); });
/// R must be copyable: every waiter gets its own copy (use a shared_ptr for large results).
/// A waiter whose deadline passes throws stockade::error(wait_exceeded) (errc::timeout unless
/// told otherwise); one whose stop token fires throws stockade::error(errc::cancelled).
template <class R>
class flight {
  static_assert(std::is_copy_constructible_v<R>, "stockade::flight: R must be copyable");

 public:
  explicit flight(errc wait_exceeded = errc::timeout) noexcept : wait_exceeded_(wait_exceeded) {}
  flight(const flight&) = delete;
  flight& operator=(const flight&) = delete;

  /// Runs `work(ctx)` if no run is in progress (this caller leads), or waits for the one in
  /// progress and returns its result. The leader's work sees the leader's context.
  template <detail::flight_work<R> Work>
  R run(context& ctx, Work&& work) {
    std::unique_lock lock(mutex_);
    slot self{this};
    return detail::join_or_lead<R>(lock, self, ctx, work, wait_exceeded_);
  }

  /// run() on the coroutine path of `Runtime`: a waiter is a suspended coroutine, served by
  /// the run like a blocked thread; the leader runs `work` on its own thread.
  template <class Runtime, detail::flight_work<R> Work>
  typename Runtime::template task<R> run_async(context& ctx, Work work) {
    return detail::join_or_lead_async<Runtime, R>(mutex_, slot{this}, ctx, std::move(work),
                                                  wait_exceeded_);
  }

  /// True while a run is in progress (or waits for a waiter to take it over).
  bool in_flight() const {
    std::lock_guard lock(mutex_);
    return current_ != nullptr;
  }
  /// Callers waiting for the run in progress (not counting its leader).
  std::size_t waiting() const {
    std::lock_guard lock(mutex_);
    return current_ ? current_->waiters : 0;
  }

 private:
  struct slot {
    flight* owner;
    std::shared_ptr<detail::flight_run<R>> current() const { return owner->current_; }
    void install(std::shared_ptr<detail::flight_run<R>> run) { owner->current_ = std::move(run); }
    void forget(const std::shared_ptr<detail::flight_run<R>>& run) {
      if (owner->current_ == run) owner->current_.reset();
    }
  };

  mutable std::mutex mutex_;
  std::shared_ptr<detail::flight_run<R>> current_;
  errc wait_exceeded_;
};

/// Single flight by key: concurrent callers with equal keys share one run; different keys run
/// independently. A key is forgotten as soon as its run ends, so the map holds only runs in
/// progress.
///   stockade::single_flight<std::string, user> users;
///   user u = users.run(ctx, id, [&](stockade::context& c) { return db.load_user(id, c); });
template <class Key, class R, class Hash = std::hash<Key>, class KeyEqual = std::equal_to<Key>>
class single_flight {
  static_assert(std::is_copy_constructible_v<R>, "stockade::single_flight: R must be copyable");

 public:
  explicit single_flight(errc wait_exceeded = errc::timeout) : wait_exceeded_(wait_exceeded) {}
  single_flight(const single_flight&) = delete;
  single_flight& operator=(const single_flight&) = delete;

  template <detail::flight_work<R> Work>
  R run(context& ctx, const Key& key, Work&& work) {
    std::unique_lock lock(mutex_);
    slot self{this, key};
    return detail::join_or_lead<R>(lock, self, ctx, work, wait_exceeded_);
  }

  /// Keys with a run in progress.
  std::size_t size() const {
    std::lock_guard lock(mutex_);
    return runs_.size();
  }
  std::size_t waiting(const Key& key) const {
    std::lock_guard lock(mutex_);
    const auto found = runs_.find(key);
    return found == runs_.end() ? 0 : found->second->waiters;
  }

 private:
  struct slot {
    single_flight* owner;
    const Key& key;
    std::shared_ptr<detail::flight_run<R>> current() const {
      const auto found = owner->runs_.find(key);
      return found == owner->runs_.end() ? nullptr : found->second;
    }
    void install(std::shared_ptr<detail::flight_run<R>> run) {
      owner->runs_.insert_or_assign(key, std::move(run));
    }
    void forget(const std::shared_ptr<detail::flight_run<R>>& run) {
      const auto found = owner->runs_.find(key);
      if (found != owner->runs_.end() && found->second == run) owner->runs_.erase(found);
    }
  };

  mutable std::mutex mutex_;
  std::unordered_map<Key, std::shared_ptr<detail::flight_run<R>>, Hash, KeyEqual> runs_;
  errc wait_exceeded_;
};

}  // namespace stockade
