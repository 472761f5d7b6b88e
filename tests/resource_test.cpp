#include <stockade/resource.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <barrier>
#include <chrono>
#include <functional>
#include <latch>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include <stockade/classifier.hpp>
#include <stockade/manual_clock.hpp>
#include <stockade/pipeline.hpp>

namespace {

using namespace std::chrono_literals;
using stockade::context;
using stockade::errc;
using stockade::event_kind;
using stockade::resource;
using stockade::resource_hooks;
using stockade::resource_options;
using stockade::retire_reason;
using stockade::verdict;
using stockade::testing::manual_clock;

/// A stand-in for a database client: an id, so tests can tell which instance did what.
struct client {
  int id;
};

struct broken_connection : std::runtime_error {
  broken_connection() : std::runtime_error("server closed the connection unexpectedly") {}
};

/// What happened to which client, in order.
class ledger {
 public:
  int create() {
    std::lock_guard lock(mutex_);
    created_.push_back(static_cast<int>(created_.size()) + 1);
    return created_.back();
  }
  void warmed(const client& c) { note(warmed_, c.id); }
  void probed(const client& c) { note(probed_, c.id); }
  void queried(const client& c) { note(queried_, c.id); }
  void closed(const client& c) { note(closed_, c.id); }

  std::vector<int> created() const { return copy(created_); }
  std::vector<int> warmed() const { return copy(warmed_); }
  std::vector<int> probed() const { return copy(probed_); }
  std::vector<int> queried() const { return copy(queried_); }
  std::vector<int> closed() const { return copy(closed_); }

 private:
  void note(std::vector<int>& list, int id) {
    std::lock_guard lock(mutex_);
    list.push_back(id);
  }
  std::vector<int> copy(const std::vector<int>& list) const {
    std::lock_guard lock(mutex_);
    return list;
  }
  mutable std::mutex mutex_;
  std::vector<int> created_, warmed_, probed_, queried_, closed_;
};

/// Hooks that record everything in `log`; `healthy` decides what the probe says.
resource_hooks<client> recorded(ledger& log, const std::atomic<bool>* healthy = nullptr) {
  resource_hooks<client> hooks{
      .create = [&log] { return client{log.create()}; },
      .warm_up = [&log](client& c) { log.warmed(c); },
      .close = [&log](client& c) { log.closed(c); },
  };
  if (healthy != nullptr) {
    hooks.check_health = [&log, healthy](client& c) {
      log.probed(c);
      return healthy->load();
    };
  }
  return hooks;
}

constexpr resource_options quick{
    .max_age = 5min,
    .health = {.max_age = 10s, .unhealthy_max_age = 1s, .probe_timeout = 1s},
    .cool_down = stockade::constant{2s},
    .cool_down_jitter = stockade::jitter::none()};

const auto fatal_on_broken =
    stockade::classifier{stockade::on<broken_connection, verdict::fatal>{}};

/// The stockade::error a call ended in (fails the test if it ended otherwise).
template <class F>
stockade::error error_of(F&& f) {
  try {
    std::forward<F>(f)();
  } catch (const stockade::error& e) {
    return e;
  } catch (...) {
    ADD_FAILURE() << "threw something other than stockade::error";
    return stockade::error(errc::injected_fault);
  }
  ADD_FAILURE() << "did not throw";
  return stockade::error(errc::injected_fault);
}

TEST(Resource, IsMadeOnFirstUseAndThenReused) {
  manual_clock clock;
  ledger log;
  resource<client> db{recorded(log), quick, clock};
  EXPECT_TRUE(log.created().empty());
  context ctx{clock};
  const auto first = db.acquire(ctx);
  const auto second = db.acquire(ctx);
  EXPECT_EQ(first->id, 1);
  EXPECT_EQ(second.get(), first.get());
  EXPECT_EQ(first.generation(), 1U);
  EXPECT_EQ(log.created(), std::vector<int>{1});
  EXPECT_EQ(log.warmed(), std::vector<int>{1});
}

TEST(Resource, ConcurrentFirstCallersShareOneCreation) {
  manual_clock clock;
  ledger log;
  std::latch entered{1};
  std::latch release{1};
  auto hooks = recorded(log);
  hooks.create = [&] {
    const int id = log.create();
    entered.count_down();
    release.wait();
    return client{id};
  };
  resource<client> db{std::move(hooks), quick, clock};
  constexpr int callers = 8;
  std::vector<int> seen(callers, 0);
  std::vector<std::thread> threads;
  for (int i = 0; i < callers; ++i) {
    threads.emplace_back([&, i] {
      context ctx{clock};
      seen[static_cast<std::size_t>(i)] = db.acquire(ctx)->id;
    });
  }
  entered.wait();
  ASSERT_TRUE(clock.await_waiting(callers - 1));
  release.count_down();
  for (auto& t : threads) t.join();
  EXPECT_EQ(log.created(), std::vector<int>{1});
  EXPECT_EQ(seen, std::vector<int>(callers, 1));
}

TEST(Resource, PipelineHandsTheLeasedObjectToTheCallable) {
  manual_clock clock;
  ledger log;
  resource<client> db{recorded(log), quick, clock};
  const auto policy = stockade::pipeline{std::ref(db)};
  context ctx{clock};
  const int id = policy(ctx, [](context& c) { return c.resource<client>().id; });
  EXPECT_EQ(id, 1);
  EXPECT_EQ(ctx.find_resource<client>(), nullptr);  // handed back when the call ended
}

TEST(Resource, WarmUpProbeAndCallsAlwaysUseTheSameInstance) {
  manual_clock clock;
  ledger log;
  const std::atomic<bool> healthy{true};
  resource<client> db{recorded(log, &healthy), quick, clock};
  const auto policy = stockade::pipeline{std::ref(db)}.classify_with(fatal_on_broken);
  const auto query = [&](context& c) { log.queried(c.resource<client>()); };

  context first{clock};
  policy(first, query);
  context broken{clock};
  EXPECT_THROW(policy(broken,
                      [&](context& c) {
                        query(c);
                        throw broken_connection();
                      }),
               broken_connection);
  context second{clock};
  policy(second, query);
  clock.advance(10s);  // health result ages out: the probe runs on the current client
  context third{clock};
  policy(third, query);

  EXPECT_EQ(log.warmed(), (std::vector<int>{1, 2}));
  EXPECT_EQ(log.probed(), (std::vector<int>{1, 2, 2}));  // verification, then by age
  EXPECT_EQ(log.queried(), (std::vector<int>{1, 1, 2, 2}));
}

TEST(Resource, IsReplacedOnceOlderThanMaxAge) {
  manual_clock clock;
  ledger log;
  stockade::counters events;
  resource<client, stockade::observer_ref<stockade::counters>> db{recorded(log), quick, clock,
                                                                  stockade::observer_ref{events}};
  context first{clock};
  EXPECT_EQ(db.acquire(first)->id, 1);
  clock.advance(5min - 1ns);
  context before{clock};
  EXPECT_EQ(db.acquire(before)->id, 1);
  clock.advance(1ns);
  context after{clock};
  EXPECT_EQ(db.acquire(after)->id, 2);
  EXPECT_EQ(log.closed(), std::vector<int>{1});
  EXPECT_EQ(events.count(event_kind::resource_created), 2U);
  EXPECT_EQ(events.count(event_kind::resource_retired), 1U);
}

TEST(Resource, OldLeaseKeepsItsInstanceOpenUntilItEnds) {
  manual_clock clock;
  ledger log;
  resource<client> db{recorded(log), quick, clock};
  context ctx{clock};
  auto old = db.acquire(ctx);
  clock.advance(5min);
  context later{clock};
  const auto fresh = db.acquire(later);
  EXPECT_EQ(fresh->id, 2);
  EXPECT_EQ(old->id, 1);  // still usable: the call that holds it finishes first
  EXPECT_TRUE(log.closed().empty());
  EXPECT_EQ(db.live_instances(), 2U);
  old = {};
  EXPECT_EQ(log.closed(), std::vector<int>{1});
  EXPECT_EQ(db.live_instances(), 1U);
}

TEST(Resource, FatalVerdictReplacesTheInstance) {
  manual_clock clock;
  ledger log;
  std::vector<retire_reason> reasons;
  auto observer = stockade::callback_observer{[&](const auto& e) {
    if constexpr (std::is_same_v<std::decay_t<decltype(e)>, stockade::resource_retired>) {
      reasons.push_back(e.reason);
    }
  }};
  resource<client, decltype(observer)> db{recorded(log), quick, clock, observer};
  const auto policy = stockade::pipeline{std::ref(db)}.classify_with(fatal_on_broken);
  context ctx{clock};
  EXPECT_THROW(policy(ctx, [] { throw broken_connection(); }), broken_connection);
  EXPECT_EQ(db.generation(), 2U);
  context next{clock};
  EXPECT_EQ(policy(next, [](context& c) { return c.resource<client>().id; }), 2);
  EXPECT_EQ(reasons, std::vector<retire_reason>{retire_reason::fatal});
  EXPECT_EQ(log.closed(), std::vector<int>{1});
}

TEST(Resource, TransientFailuresKeepTheInstance) {
  manual_clock clock;
  ledger log;
  resource<client> db{recorded(log), quick, clock};
  const auto policy = stockade::pipeline{std::ref(db)}.classify_with(fatal_on_broken);
  context ctx{clock};
  EXPECT_THROW(policy(ctx, [] { throw std::runtime_error("lock timeout"); }), std::runtime_error);
  context next{clock};
  EXPECT_EQ(policy(next, [](context& c) { return c.resource<client>().id; }), 1);
}

TEST(Resource, ConcurrentFatalFailuresOfOneGenerationReplaceItOnce) {
  manual_clock clock;
  ledger log;
  stockade::counters events;
  resource<client, stockade::observer_ref<stockade::counters>> db{recorded(log), quick, clock,
                                                                  stockade::observer_ref{events}};
  const auto policy = stockade::pipeline{std::ref(db)}.classify_with(fatal_on_broken);
  constexpr int callers = 10;
  std::barrier all_inside{callers};
  std::vector<std::thread> threads;
  for (int i = 0; i < callers; ++i) {
    threads.emplace_back([&] {
      context ctx{clock};
      EXPECT_THROW(policy(ctx,
                          [&] {
                            all_inside.arrive_and_wait();
                            throw broken_connection();
                          }),
                   broken_connection);
    });
  }
  for (auto& t : threads) t.join();
  context next{clock};
  db.acquire(next);
  EXPECT_EQ(log.created(), (std::vector<int>{1, 2}));
  EXPECT_EQ(events.count(event_kind::gate_reset), 1U);
  EXPECT_EQ(events.count(event_kind::resource_retired), 1U);
}

TEST(Resource, UnhealthyInstanceIsRefusedAndReplaced) {
  manual_clock clock;
  ledger log;
  std::atomic<bool> healthy{true};
  resource<client> db{recorded(log, &healthy), quick, clock};
  context first{clock};
  EXPECT_EQ(db.acquire(first)->id, 1);
  healthy = false;
  clock.advance(10s);
  context refused{clock};
  const auto e = error_of([&] { db.acquire(refused); });
  EXPECT_EQ(e.code(), errc::unhealthy);
  EXPECT_EQ(e.retry_after(), 0s);  // a new instance is made at the next call
  healthy = true;
  context next{clock};
  EXPECT_EQ(db.acquire(next)->id, 2);
  EXPECT_EQ(log.closed(), std::vector<int>{1});
}

TEST(Resource, UnhealthyInstanceIsKeptWhenReplacementIsOff) {
  manual_clock clock;
  ledger log;
  std::atomic<bool> healthy{true};
  auto options = quick;
  options.replace_when_unhealthy = false;
  resource<client> db{recorded(log, &healthy), options, clock};
  context first{clock};
  db.acquire(first);
  healthy = false;
  clock.advance(10s);
  context refused{clock};
  const auto e = error_of([&] { db.acquire(refused); });
  EXPECT_EQ(e.code(), errc::unhealthy);
  EXPECT_EQ(e.retry_after(), 1s);  // the unhealthy result's max age
  healthy = true;
  clock.advance(1s);
  context next{clock};
  EXPECT_EQ(db.acquire(next)->id, 1);
}

TEST(Resource, FailedVerificationFailsTheWarmUpAndClosesTheNewInstance) {
  manual_clock clock;
  ledger log;
  std::atomic<bool> healthy{false};
  resource<client> db{recorded(log, &healthy), quick, clock};
  context ctx{clock};
  const auto e = error_of([&] { db.acquire(ctx); });
  EXPECT_EQ(e.code(), errc::warmup_failed);
  EXPECT_EQ(e.retry_after(), 2s);
  EXPECT_EQ(log.closed(), std::vector<int>{1});
  EXPECT_EQ(db.generation(), 1U);  // nothing was retired: no call ever used it

  healthy = true;
  clock.advance(2s);
  context later{clock};
  EXPECT_EQ(db.acquire(later)->id, 2);
}

TEST(Resource, FactoryFailureCoolsDownBeforeTheNextAttempt) {
  manual_clock clock;
  int attempts = 0;
  resource<client> db{{.create = [&]() -> client {
                        ++attempts;
                        throw std::runtime_error("too many clients");
                      }},
                      quick,
                      clock};
  context first{clock};
  EXPECT_EQ(error_of([&] { db.acquire(first); }).code(), errc::warmup_failed);
  clock.advance(1s);
  context during{clock};
  const auto e = error_of([&] { db.acquire(during); });
  EXPECT_EQ(e.retry_after(), 1s);
  EXPECT_EQ(attempts, 1);
}

TEST(Resource, FactoryMayReturnAUniquePtr) {
  manual_clock clock;
  resource<client> db{
      {.create = [](context&) { return std::make_unique<client>(client{7}); }}, quick, clock};
  context ctx{clock};
  EXPECT_EQ(db.acquire(ctx)->id, 7);
}

TEST(Resource, ShutdownClosesTheInstanceAndRefusesNewCalls) {
  manual_clock clock;
  ledger log;
  resource<client> db{recorded(log), quick, clock};
  context ctx{clock};
  db.acquire(ctx);
  db.shutdown();
  EXPECT_EQ(log.closed(), std::vector<int>{1});
  context after{clock};
  const auto e = error_of([&] { db.acquire(after); });
  EXPECT_EQ(e.code(), errc::resource_closed);
  EXPECT_EQ(stockade::default_rules::classify_stockade_error(e).kind, verdict::permanent);
  EXPECT_EQ(log.created(), std::vector<int>{1});
}

TEST(Resource, ShutdownWaitsForLeasesUntilItsDeadline) {
  manual_clock clock;
  ledger log;
  resource<client> db{recorded(log), quick, clock};
  context ctx{clock};
  auto held = db.acquire(ctx);
  bool drained = true;
  std::thread closer([&] {
    context bounded{clock};
    bounded.set_timeout(1s);
    drained = db.shutdown(bounded);
  });
  ASSERT_TRUE(clock.await_waiting(1));
  clock.advance(1s);
  closer.join();
  EXPECT_FALSE(drained);
  EXPECT_TRUE(log.closed().empty());

  std::thread waiter([&] {
    context patient{clock};
    drained = db.shutdown(patient);
  });
  ASSERT_TRUE(clock.await_waiting(1));
  held = {};
  waiter.join();
  EXPECT_TRUE(drained);
  EXPECT_EQ(log.closed(), std::vector<int>{1});
}

TEST(Resource, LeaseMayOutliveTheResource) {
  manual_clock clock;
  ledger log;
  resource<client>::lease held;
  {
    resource<client> db{recorded(log), quick, clock};
    context ctx{clock};
    held = db.acquire(ctx);
  }
  EXPECT_EQ(held->id, 1);
  EXPECT_TRUE(log.closed().empty());
  held = {};
  EXPECT_EQ(log.closed(), std::vector<int>{1});
}

TEST(Resource, RetireIgnoresAStaleLease) {
  manual_clock clock;
  ledger log;
  resource<client> db{recorded(log), quick, clock};
  context ctx{clock};
  auto old = db.acquire(ctx);
  EXPECT_TRUE(db.retire(old));
  context next{clock};
  EXPECT_EQ(db.acquire(next)->id, 2);
  EXPECT_FALSE(db.retire(old));  // a late report about generation 1
  context again{clock};
  EXPECT_EQ(db.acquire(again)->id, 2);
}

template <auto make>
concept valid_constexpr_options = requires {
  typename std::integral_constant<bool, (make().validate(), true)>;
};

TEST(ResourceOptions, DefaultsFollowThePostMortemsAgeLimit) {
  static_assert(valid_constexpr_options<[] { return resource_options{}; }>);
  EXPECT_EQ(resource_options{}.max_age, 5min);
}

TEST(ResourceOptions, BadValuesFailToCompileWhenConstexpr) {
  static_assert(!valid_constexpr_options<[] { return resource_options{.max_age = 0s}; }>);
  static_assert(
      !valid_constexpr_options<[] { return resource_options{.health = {.max_age = 0s}}; }>);
  static_assert(!valid_constexpr_options<[] {
    return resource_options{.cool_down = stockade::linear{.initial = 2s, .max_delay = 1s}};
  }>);
}

TEST(ResourceOptions, BadValuesAreRefusedNamingTheField) {
  manual_clock clock;
  const auto refusal = [&](resource_hooks<client> hooks, resource_options options) {
    try {
      resource<client> db{std::move(hooks), options, clock};
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  const resource_hooks<client> hooks{.create = [] { return client{1}; }};
  EXPECT_NE(refusal(hooks, {.max_age = -1s}).find("resource: max_age"), std::string::npos);
  EXPECT_NE(refusal(hooks, {.health = {.probe_timeout = 0s}}).find("probe_timeout"),
            std::string::npos);
  EXPECT_NE(
      refusal(hooks, {.cool_down_jitter = stockade::jitter::proportional(3.0)}).find("spread"),
      std::string::npos);
  EXPECT_NE(refusal({}, {}).find("create"), std::string::npos);
}

}  // namespace
