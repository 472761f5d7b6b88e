#include <stockade/single_flight.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <exception>
#include <latch>
#include <memory>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include <stockade/manual_clock.hpp>

namespace {

using namespace std::chrono_literals;
using stockade::context;
using stockade::errc;
using stockade::testing::manual_clock;

/// What one caller's run() came to.
struct call_result {
  std::optional<int> value;
  std::exception_ptr failure;

  errc code() const {
    try {
      std::rethrow_exception(failure);
    } catch (const stockade::error& e) {
      return e.code();
    } catch (...) {
    }
    ADD_FAILURE() << "expected a stockade::error";
    return errc::injected_fault;
  }
};

template <class Flight, class Work>
call_result call(Flight& flight, context& ctx, Work work) {
  call_result result;
  try {
    result.value = flight.run(ctx, work);
  } catch (...) {
    result.failure = std::current_exception();
  }
  return result;
}

/// Work that the test holds inside until it lets go, so waiters can line up behind it.
struct held_work {
  std::latch entered{1};
  std::latch release{1};
  std::atomic<int> runs{0};

  int operator()(context& /*unused*/) {
    runs.fetch_add(1);
    entered.count_down();
    release.wait();
    return 42;
  }
};

template <class Flights, class Key>
call_result call_keyed(Flights& flights, context& ctx, const Key& key, held_work& work) {
  call_result result;
  try {
    result.value = flights.run(ctx, key, [&](context& c) { return work(c); });
  } catch (...) {
    result.failure = std::current_exception();
  }
  return result;
}

TEST(SingleFlight, ConcurrentCallersShareTheLeadersResult) {
  manual_clock clock;
  stockade::flight<int> flight;
  held_work work;
  constexpr int waiters = 8;
  std::vector<call_result> results(waiters + 1);
  std::vector<std::thread> threads;
  threads.emplace_back([&] {
    context ctx{clock};
    results[0] = call(flight, ctx, [&](context& c) { return work(c); });
  });
  work.entered.wait();
  for (int i = 1; i <= waiters; ++i) {
    threads.emplace_back([&, i] {
      context ctx{clock};
      results[static_cast<std::size_t>(i)] =
          call(flight, ctx, [&](context& c) { return work(c) + 1000; });
    });
  }
  ASSERT_TRUE(clock.await_waiting(waiters));
  EXPECT_EQ(flight.waiting(), static_cast<std::size_t>(waiters));
  work.release.count_down();
  for (auto& t : threads) t.join();

  EXPECT_EQ(work.runs.load(), 1);
  for (const auto& r : results) EXPECT_EQ(r.value, 42);
  EXPECT_FALSE(flight.in_flight());
}

TEST(SingleFlight, ConcurrentCallersShareTheLeadersException) {
  manual_clock clock;
  stockade::flight<int> flight;
  std::latch entered{1};
  std::latch release{1};
  std::atomic<int> runs{0};
  const auto failing = [&](context&) -> int {
    runs.fetch_add(1);
    entered.count_down();
    release.wait();
    throw std::runtime_error("connection refused");
  };
  call_result leader;
  call_result waiter;
  std::thread first([&] {
    context ctx{clock};
    leader = call(flight, ctx, failing);
  });
  entered.wait();
  std::thread second([&] {
    context ctx{clock};
    waiter = call(flight, ctx, failing);
  });
  ASSERT_TRUE(clock.await_waiting(1));
  release.count_down();
  first.join();
  second.join();

  EXPECT_EQ(runs.load(), 1);
  for (const auto* r : {&leader, &waiter}) {
    ASSERT_TRUE(r->failure);
    EXPECT_THROW(std::rethrow_exception(r->failure), std::runtime_error);
  }
}

TEST(SingleFlight, WorkRunsAgainOnceTheFlightHasLanded) {
  manual_clock clock;
  stockade::flight<int> flight;
  context ctx{clock};
  int runs = 0;
  const auto work = [&](context&) { return ++runs; };
  EXPECT_EQ(flight.run(ctx, work), 1);
  EXPECT_EQ(flight.run(ctx, work), 2);
  EXPECT_FALSE(flight.in_flight());
}

TEST(SingleFlight, WaiterGivesUpAtItsDeadlineWhileOthersStillGetTheResult) {
  manual_clock clock;
  stockade::flight<int> flight;
  held_work work;
  call_result leader;
  call_result impatient;
  call_result patient;
  std::thread first([&] {
    context ctx{clock};
    leader = call(flight, ctx, [&](context& c) { return work(c); });
  });
  work.entered.wait();
  std::thread second([&] {
    context ctx{clock};
    ctx.set_timeout(1s);
    impatient = call(flight, ctx, [&](context& c) { return work(c); });
  });
  std::thread third([&] {
    context ctx{clock};
    patient = call(flight, ctx, [&](context& c) { return work(c); });
  });
  ASSERT_TRUE(clock.await_waiting(2));
  clock.advance(2s);
  second.join();  // gave up while the work still runs
  EXPECT_EQ(impatient.code(), errc::timeout);
  EXPECT_TRUE(flight.in_flight());
  work.release.count_down();
  first.join();
  third.join();

  EXPECT_EQ(work.runs.load(), 1);
  EXPECT_EQ(leader.value, 42);
  EXPECT_EQ(patient.value, 42);
}

TEST(SingleFlight, WaiterWhoseStopTokenFiresIsCancelledAlone) {
  manual_clock clock;
  stockade::flight<int> flight;
  held_work work;
  std::stop_source stop;
  call_result leader;
  call_result cancelled;
  std::thread first([&] {
    context ctx{clock};
    leader = call(flight, ctx, [&](context& c) { return work(c); });
  });
  work.entered.wait();
  std::thread second([&] {
    context ctx{clock};
    ctx.set_stop_token(stop.get_token());
    cancelled = call(flight, ctx, [&](context& c) { return work(c); });
  });
  ASSERT_TRUE(clock.await_waiting(1));
  stop.request_stop();
  second.join();
  EXPECT_EQ(cancelled.code(), errc::cancelled);
  work.release.count_down();
  first.join();
  EXPECT_EQ(leader.value, 42);
  EXPECT_EQ(work.runs.load(), 1);
}

TEST(SingleFlight, LeaderThatGivesUpHandsTheWorkToAWaiter) {
  manual_clock clock{manual_clock::sleeps::wait_for_advance};
  stockade::flight<int> flight;
  std::atomic<int> runs{0};
  // The first run waits on the dependency until its caller's deadline cuts it short; the next
  // run gets an answer at once.
  const auto work = [&](context& c) -> int {
    if (runs.fetch_add(1) == 0 && !c.sleep_for(10s)) throw std::runtime_error("gave up");
    return 42;
  };
  call_result leader;
  call_result waiter;
  std::thread first([&] {
    context ctx{clock};
    ctx.set_timeout(1s);
    leader = call(flight, ctx, work);
  });
  ASSERT_TRUE(clock.await_waiting(1));  // the leader sleeps inside the work
  std::thread second([&] {
    context ctx{clock};
    waiter = call(flight, ctx, work);
  });
  ASSERT_TRUE(clock.await_waiting(2));
  clock.advance(1s);
  first.join();
  second.join();

  ASSERT_TRUE(leader.failure);  // the leader's own give-up reaches the leader only
  EXPECT_THROW(std::rethrow_exception(leader.failure), std::runtime_error);
  EXPECT_EQ(waiter.value, 42);
  EXPECT_EQ(runs.load(), 2);
}

TEST(SingleFlight, LeaderThatGivesUpAloneLeavesNothingInFlight) {
  manual_clock clock;
  stockade::flight<int> flight;
  context late{clock};
  late.set_timeout(1s);
  const auto gives_up = [&](context&) -> int {
    clock.advance(2s);  // the dependency took longer than the caller's deadline
    throw std::runtime_error("too late");
  };
  EXPECT_THROW(flight.run(late, gives_up), std::runtime_error);
  EXPECT_FALSE(flight.in_flight());
  context next{clock};
  EXPECT_EQ(flight.run(next, [](context&) { return 7; }), 7);
}

TEST(SingleFlight, ResultArrivingAfterTheLeadersDeadlineIsStillShared) {
  manual_clock clock;
  stockade::flight<int> flight;
  held_work work;
  call_result leader;
  call_result waiter;
  std::thread first([&] {
    context ctx{clock};
    ctx.set_timeout(1s);
    leader = call(flight, ctx, [&](context& c) { return work(c); });
  });
  work.entered.wait();
  std::thread second([&] {
    context ctx{clock};
    waiter = call(flight, ctx, [&](context& c) { return work(c); });
  });
  ASSERT_TRUE(clock.await_waiting(1));
  clock.advance(5s);  // past the leader's deadline, but the work does answer
  work.release.count_down();
  first.join();
  second.join();
  EXPECT_EQ(leader.value, 42);
  EXPECT_EQ(waiter.value, 42);
  EXPECT_EQ(work.runs.load(), 1);
}

TEST(SingleFlight, CallerWhoseDeadlineHasPassedDoesNotStartTheWork) {
  manual_clock clock;
  stockade::flight<int> flight;
  context ctx{clock};
  ctx.set_timeout(1s);
  clock.advance(1s);
  ctx.forget_now();
  int runs = 0;
  const auto result = call(flight, ctx, [&](context&) { return ++runs; });
  EXPECT_EQ(result.code(), errc::timeout);
  EXPECT_EQ(runs, 0);
}

TEST(SingleFlight, WaitExceededCodeIsTheOneGiven) {
  manual_clock clock;
  stockade::flight<int> flight{errc::warmup_wait_exceeded};
  context ctx{clock};
  ctx.set_timeout(1s);
  clock.advance(1s);
  ctx.forget_now();
  EXPECT_EQ(call(flight, ctx, [](context&) { return 1; }).code(), errc::warmup_wait_exceeded);
}

TEST(SingleFlightByKey, CallersWithTheSameKeyShareOneRun) {
  manual_clock clock;
  stockade::single_flight<std::string, int> flights;
  held_work work;
  call_result leader;
  call_result waiter;
  std::thread first([&] {
    context ctx{clock};
    leader = call_keyed(flights, ctx, "db", work);
  });
  work.entered.wait();
  std::thread second([&] {
    context ctx{clock};
    waiter = call_keyed(flights, ctx, "db", work);
  });
  ASSERT_TRUE(clock.await_waiting(1));
  EXPECT_EQ(flights.waiting("db"), 1U);
  work.release.count_down();
  first.join();
  second.join();
  EXPECT_EQ(work.runs.load(), 1);
  EXPECT_EQ(leader.value, 42);
  EXPECT_EQ(waiter.value, 42);
}

TEST(SingleFlightByKey, DifferentKeysRunIndependently) {
  manual_clock clock;
  stockade::single_flight<std::string, int> flights;
  held_work db;
  held_work cache;
  call_result db_result;
  call_result cache_result;
  std::thread first([&] {
    context ctx{clock};
    db_result = call_keyed(flights, ctx, "db", db);
  });
  std::thread second([&] {
    context ctx{clock};
    cache_result = call_keyed(flights, ctx, "cache", cache);
  });
  db.entered.wait();
  cache.entered.wait();  // both run at once: neither waits for the other
  EXPECT_EQ(flights.size(), 2U);
  db.release.count_down();
  cache.release.count_down();
  first.join();
  second.join();
  EXPECT_EQ(db_result.value, 42);
  EXPECT_EQ(cache_result.value, 42);
}

TEST(SingleFlightByKey, KeyIsForgottenWhenItsRunEnds) {
  manual_clock clock;
  stockade::single_flight<int, int> flights;
  context ctx{clock};
  EXPECT_EQ(flights.run(ctx, 1, [](context&) { return 10; }), 10);
  EXPECT_THROW(flights.run(ctx, 2, [](context&) -> int { throw std::runtime_error("no"); }),
               std::runtime_error);
  EXPECT_EQ(flights.size(), 0U);
}

// --- the decisions, driven by hand: no thread waits, as a coroutine driver would drive them ----

/// The slot of one run, as flight<R> keeps it.
struct one_run {
  std::shared_ptr<stockade::detail::flight_run<int>> current;
  void install(std::shared_ptr<stockade::detail::flight_run<int>> run) { current = std::move(run); }
  void forget(const std::shared_ptr<stockade::detail::flight_run<int>>& run) {
    if (current == run) current.reset();
  }
};

using stockade::detail::flight_step;

/// One slot on a manual clock, a leader, and one waiter that start_with_one_waiter() puts in
/// place.
class FlightDecisions : public ::testing::Test {
 protected:
  void start_with_one_waiter() {
    ASSERT_EQ(stockade::detail::arrive<int>(slot, run, leader), flight_step::lead);
    waiter_run = slot.current;
    ASSERT_EQ(stockade::detail::arrive<int>(slot, waiter_run, waiter), flight_step::follow);
  }

  manual_clock clock;
  one_run slot;
  context leader{clock};
  context waiter{clock};
  std::shared_ptr<stockade::detail::flight_run<int>> run;         // as the leader sees it
  std::shared_ptr<stockade::detail::flight_run<int>> waiter_run;  // as the waiter sees it
};

TEST_F(FlightDecisions, ALeaderThatGivesUpHandsTheRunToAWaiterWhoseResultEveryoneShares) {
  context first{clock};
  context second{clock};
  ASSERT_EQ(stockade::detail::arrive<int>(slot, run, leader), flight_step::lead);
  auto first_run = slot.current;
  auto second_run = slot.current;
  EXPECT_EQ(stockade::detail::arrive<int>(slot, first_run, first), flight_step::follow);
  EXPECT_EQ(stockade::detail::arrive<int>(slot, second_run, second), flight_step::follow);
  EXPECT_EQ(run->waiters, 2U);

  // The leader's own give-up: the run stays, leaderless, and its waiters are woken.
  stockade::detail::leader_failed(slot, run, std::make_exception_ptr(std::runtime_error("late")),
                                  /*gave_up=*/true);
  EXPECT_FALSE(run->has_leader);
  EXPECT_EQ(slot.current, run);
  EXPECT_EQ(stockade::detail::after_wait(slot, first_run, first, /*served=*/true),
            flight_step::lead);
  EXPECT_EQ(stockade::detail::after_wait(slot, second_run, second, /*served=*/true),
            flight_step::follow);  // the first waiter took it over: wait again

  stockade::detail::leader_succeeded(slot, first_run, 7);
  EXPECT_EQ(slot.current, nullptr);  // done: the next caller starts a new run
  EXPECT_EQ(stockade::detail::after_wait(slot, second_run, second, /*served=*/true),
            flight_step::take_result);
  EXPECT_EQ(second_run->value, 7);
  EXPECT_EQ(second_run->waiters, 0U);
}

TEST_F(FlightDecisions, TheLastWaiterToGiveUpOnALeaderlessRunForgetsIt) {
  start_with_one_waiter();
  stockade::detail::leader_failed(slot, run, nullptr, /*gave_up=*/true);
  // Its wait ended by its own deadline, not by the run: it gives up, and nobody is left.
  EXPECT_EQ(stockade::detail::after_wait(slot, waiter_run, waiter, /*served=*/false),
            flight_step::give_up);
  EXPECT_EQ(slot.current, nullptr);
}

TEST_F(FlightDecisions, ACallerPastItsDeadlineNeverLeads) {
  context late{clock};
  late.set_deadline(clock.now());
  EXPECT_EQ(stockade::detail::arrive<int>(slot, run, late), flight_step::give_up);
  EXPECT_EQ(slot.current, nullptr);
}

TEST_F(FlightDecisions, AFailureOfTheWorkIsEveryWaitersAnswer) {
  start_with_one_waiter();
  stockade::detail::leader_failed(slot, run, std::make_exception_ptr(std::runtime_error("down")),
                                  /*gave_up=*/false);
  EXPECT_EQ(slot.current, nullptr);
  EXPECT_EQ(stockade::detail::after_wait(slot, waiter_run, waiter, /*served=*/true),
            flight_step::take_result);
  EXPECT_THROW(std::rethrow_exception(waiter_run->failure), std::runtime_error);
}

}  // namespace
