// counted_slot under forced preemption: readers never get a node whose count already reached
// zero, and every node published is freed exactly once. Nodes are never really freed during a
// test: when the last reference goes they are marked dead and stay in the test's graveyard, so
// a reader that reaches one afterwards is counted as a violation even without a sanitizer.
// Bounded by iteration counts, never by wall time.
#include <stockade/detail/counted_slot.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using stockade::detail::counted_slot;
using stockade::detail::slot_step;

constexpr std::uint32_t alive = 0xA11CEu;
constexpr std::uint32_t dead = 0xDEADu;

struct node {
  std::atomic<std::int64_t> refs{1};  // the creator's, then the slot's
  std::atomic<std::uint32_t> canary{alive};
  std::size_t id = 0;
};

/// Owns every node of a test until its end, and counts what must never happen.
class graveyard {
 public:
  explicit graveyard(std::size_t count) {
    for (std::size_t i = 0; i < count; ++i) {
      nodes_.push_back(std::make_unique<node>());
      nodes_.back()->id = i;
    }
  }
  node* at(std::size_t i) const { return nodes_.at(i).get(); }
  std::size_t size() const { return nodes_.size(); }

  /// What every reader checks right after acquire(): the node it counted was not dead.
  void check_acquired(const node* got) {
    if (got == nullptr) return;
    if (got->canary.load() != alive || got->id >= nodes_.size()) counted_dead.fetch_add(1);
  }
  /// Drops one reference; the last one "frees" the node (marks it dead).
  void release(node* held) {
    if (held == nullptr) return;
    const std::int64_t before = held->refs.fetch_sub(1, std::memory_order_acq_rel);
    if (before == 1 && held->canary.exchange(dead) != alive) freed_twice.fetch_add(1);
    if (before < 1) freed_twice.fetch_add(1);
  }

  std::atomic<std::uint64_t> counted_dead{0};
  std::atomic<std::uint64_t> freed_twice{0};

 private:
  std::vector<std::unique_ptr<node>> nodes_;
};

// ---------------------------------------------------------------------------------------------
// Random preemption: at any step, a thread may yield or spin for a random short time.

struct random_preemption {
  static inline thread_local std::mt19937* engine = nullptr;  // null: this thread is not preempted

  static void point(slot_step step) noexcept {
    if (engine == nullptr) return;
    const auto draw = static_cast<std::uint32_t>((*engine)());
    // The reader's steps between reading the phase and counting the node are the ones a
    // wrong protocol is weakest at: stall them longer and more often.
    const bool reader_window =
        step == slot_step::reader_has_phase || step == slot_step::reader_has_node;
    const std::uint32_t kind = draw % 16U;
    if (kind < 3U) {
      std::this_thread::yield();
    } else if (kind < 5U) {
      spin((draw >> 8U) % (reader_window ? 20000U : 2000U));
    } else if (kind < (reader_window ? 8U : 6U)) {
      for (std::uint32_t i = 0; i < 1U + (draw >> 8U) % 8U; ++i) std::this_thread::yield();
    }
  }
  static void spin(std::uint32_t times) noexcept {
    for (std::uint32_t i = 0; i < times; ++i) std::atomic_signal_fence(std::memory_order_seq_cst);
  }
};

/// Gives the calling thread its own seeded engine for as long as it lives.
class preempted_thread {
 public:
  explicit preempted_thread(std::uint32_t seed) : engine_(seed) {
    random_preemption::engine = &engine_;
  }
  preempted_thread(const preempted_thread&) = delete;
  preempted_thread& operator=(const preempted_thread&) = delete;
  ~preempted_thread() { random_preemption::engine = nullptr; }

 private:
  std::mt19937 engine_;
};

using stressed_slot = counted_slot<node, random_preemption>;

struct stress_shape {
  int readers;
  int writers;             // serialised by a mutex, as counted_slot requires
  std::size_t exchanges;   // in all, shared by the writers
  std::size_t null_every;  // every n-th exchange publishes null (as resource's detach does)
  std::uint32_t seed;
};

struct stress_result {
  std::uint64_t counted_dead;
  std::uint64_t freed_twice;
  std::uint64_t leaked;  // published nodes with a reference left at the end
  std::uint64_t reads;
};

stress_result hammer(const stress_shape& shape) {
  graveyard yard(shape.exchanges + 1);
  stressed_slot slot;
  slot.exchange(yard.at(0));
  std::vector<bool> published(yard.size(), false);
  published[0] = true;

  std::atomic<bool> writing_done{false};
  std::atomic<int> writers_left{shape.writers};
  std::atomic<std::uint64_t> reads{0};
  std::mutex writer_mutex;
  std::size_t next_exchange = 1;  // guarded by writer_mutex

  std::vector<std::thread> threads;
  for (int r = 0; r < shape.readers; ++r) {
    threads.emplace_back([&, r] {
      preempted_thread preempted(shape.seed * 1000U + static_cast<std::uint32_t>(r));
      std::uint64_t mine = 0;
      while (!writing_done.load()) {
        node* got = slot.acquire();
        yard.check_acquired(got);
        random_preemption::point(slot_step::reader_counted);  // hold it a little while
        yard.release(got);
        ++mine;
      }
      reads.fetch_add(mine);
    });
  }
  for (int w = 0; w < shape.writers; ++w) {
    threads.emplace_back([&, w] {
      preempted_thread preempted(shape.seed * 1000U + 500U + static_cast<std::uint32_t>(w));
      for (;;) {
        node* old = nullptr;
        {
          std::lock_guard lock(writer_mutex);
          if (next_exchange > shape.exchanges) break;
          const std::size_t i = next_exchange++;
          node* next = i % shape.null_every == 0 ? nullptr : yard.at(i);
          published[i] = next != nullptr;
          old = slot.exchange(next);
        }
        yard.release(old);  // outside the lock, as resource does
        random_preemption::point(slot_step::writer_published);  // and between exchanges
      }
      if (writers_left.fetch_sub(1) == 1) writing_done.store(true);
    });
  }
  for (auto& thread : threads) thread.join();

  yard.release(slot.exchange(nullptr));
  stress_result result{yard.counted_dead.load(), yard.freed_twice.load(), 0, reads.load()};
  for (std::size_t i = 0; i < yard.size(); ++i) {
    if (published[i] && yard.at(i)->refs.load() != 0) ++result.leaked;
  }
  return result;
}

TEST(CountedSlot, ReadersPreemptedAtRandomNeverGetAFreedNode) {
  for (std::uint32_t seed = 1; seed <= 4; ++seed) {
    const stress_result result = hammer({.readers = 3,
                                         .writers = 1,
                                         .exchanges = 10000,
                                         .null_every = 1000000,  // never
                                         .seed = seed});
    EXPECT_EQ(result.counted_dead, 0U) << "seed " << seed;
    EXPECT_EQ(result.freed_twice, 0U) << "seed " << seed;
    EXPECT_EQ(result.leaked, 0U) << "seed " << seed;
    EXPECT_GT(result.reads, 0U);
  }
}

TEST(CountedSlot, ReadersNeverGetAFreedNodeWhileSerialisedWritersSwapAndEmptyTheSlot) {
  for (std::uint32_t seed = 11; seed <= 14; ++seed) {
    const stress_result result =
        hammer({.readers = 2, .writers = 2, .exchanges = 10000, .null_every = 7, .seed = seed});
    EXPECT_EQ(result.counted_dead, 0U) << "seed " << seed;
    EXPECT_EQ(result.freed_twice, 0U) << "seed " << seed;
    EXPECT_EQ(result.leaked, 0U) << "seed " << seed;
  }
}

// ---------------------------------------------------------------------------------------------
// Scripted preemption: threads stepped in a fixed order through flags, never by sleeping.

enum class role : std::uint8_t { other, reader, writer };
inline thread_local role my_role = role::other;

/// Waits (yielding) until one of the flags is set. Gives up after 30 s, which only a script
/// that cannot happen does: the test then fails instead of hanging.
bool await_either(const std::atomic<bool>& one, const std::atomic<bool>& other) {
  const auto give_up = std::chrono::steady_clock::now() + 30s;
  while (!one.load() && !other.load()) {
    if (std::chrono::steady_clock::now() > give_up) {
      ADD_FAILURE() << "the script stalled";
      return false;
    }
    std::this_thread::yield();
  }
  return true;
}
bool await(const std::atomic<bool>& flag) { return await_either(flag, flag); }

/// The interleaving of the defect: the reader reads the phase and stops; writer 1 publishes
/// n1, flips and drains; the reader announces on the old side and loads n1, and stops before
/// counting it; writer 2 publishes n2 and either waits for the reader (the fix) or returns n1,
/// which the test frees, before the reader counts it (the defect).
struct defect_script {
  static inline std::atomic<int> rounds{0};  // how many times the reader had a phase
  static inline std::atomic<bool> reader_has_phase{false};
  static inline std::atomic<bool> writer1_done{false};
  static inline std::atomic<bool> reader_has_node{false};
  static inline std::atomic<bool> writer2_started{false};
  static inline std::atomic<bool> writer2_waits{false};
  static inline std::atomic<bool> writer2_done{false};

  static void point(slot_step step) noexcept {
    if (my_role == role::reader) {
      if (step == slot_step::reader_has_phase && rounds.fetch_add(1) == 0) {
        reader_has_phase.store(true);
        await(writer1_done);
      } else if (step == slot_step::reader_has_node) {
        reader_has_node.store(true);
        await_either(writer2_waits, writer2_done);
      }
    } else if (my_role == role::writer) {
      if (step == slot_step::writer_waits && writer2_started.load()) writer2_waits.store(true);
    }
  }
};

TEST(CountedSlot, ReaderPreemptedAcrossTwoWritersNeverGetsAFreedNode) {
  graveyard yard(3);
  counted_slot<node, defect_script> slot;
  slot.exchange(yard.at(0));
  node* got = nullptr;

  std::thread reader([&] {
    my_role = role::reader;
    got = slot.acquire();
    yard.check_acquired(got);
  });
  std::thread writer([&] {
    my_role = role::writer;
    if (!await(defect_script::reader_has_phase)) return;
    yard.release(slot.exchange(yard.at(1)));  // frees n0: no reader announced yet
    defect_script::writer1_done.store(true);
    if (!await(defect_script::reader_has_node)) return;
    defect_script::writer2_started.store(true);
    yard.release(slot.exchange(yard.at(2)));  // the defect: frees n1 under the reader
    defect_script::writer2_done.store(true);
  });
  reader.join();
  writer.join();

  EXPECT_EQ(yard.counted_dead.load(), 0U) << "the reader counted a node already freed";
  EXPECT_EQ(got, yard.at(1));
  EXPECT_EQ(defect_script::rounds.load(), 2) << "the reader should have retried once";
  EXPECT_TRUE(defect_script::writer2_waits.load()) << "writer 2 should have waited for it";
  yard.release(got);
  yard.release(slot.exchange(nullptr));
  EXPECT_EQ(yard.freed_twice.load(), 0U);
  for (std::size_t i = 0; i < yard.size(); ++i) EXPECT_EQ(yard.at(i)->canary.load(), dead) << i;
}

/// The ordinary case: a reader that loaded the old node but has not counted it yet holds the
/// writer back until it has.
struct holds_writer_script {
  static inline std::atomic<bool> reader_has_node{false};
  static inline std::atomic<bool> writer_waits{false};

  static void point(slot_step step) noexcept {
    if (my_role == role::reader && step == slot_step::reader_has_node) {
      reader_has_node.store(true);
      await(writer_waits);
    } else if (my_role == role::writer && step == slot_step::writer_waits) {
      writer_waits.store(true);
    }
  }
};

TEST(CountedSlot, WriterWaitsForAReaderThatLoadedTheOldNodeUncounted) {
  graveyard yard(2);
  counted_slot<node, holds_writer_script> slot;
  slot.exchange(yard.at(0));
  node* got = nullptr;
  std::int64_t refs_when_returned = 0;

  std::thread reader([&] {
    my_role = role::reader;
    got = slot.acquire();
  });
  std::thread writer([&] {
    my_role = role::writer;
    if (!await(holds_writer_script::reader_has_node)) return;
    node* old = slot.exchange(yard.at(1));
    refs_when_returned = old->refs.load();
    yard.release(old);
  });
  reader.join();
  writer.join();

  EXPECT_EQ(got, yard.at(0));
  EXPECT_TRUE(holds_writer_script::writer_waits.load());
  EXPECT_EQ(refs_when_returned, 2) << "the slot's reference and the reader's";
  EXPECT_EQ(got->canary.load(), alive);
  yard.release(got);
  yard.release(slot.exchange(nullptr));
  EXPECT_EQ(yard.freed_twice.load(), 0U);
}

TEST(CountedSlot, AcquireCountsTheCurrentNodeAndExchangeHandsBackTheOld) {
  graveyard yard(2);
  counted_slot<node> slot;
  EXPECT_EQ(slot.acquire(), nullptr);
  EXPECT_EQ(slot.exchange(yard.at(0)), nullptr);
  EXPECT_EQ(slot.peek(), yard.at(0));
  node* got = slot.acquire();
  EXPECT_EQ(got, yard.at(0));
  EXPECT_EQ(got->refs.load(), 2);
  EXPECT_EQ(slot.exchange(yard.at(1)), yard.at(0));
  yard.release(got);
  yard.release(yard.at(0));
  EXPECT_EQ(yard.at(0)->canary.load(), dead);
  EXPECT_EQ(slot.acquire(), yard.at(1));
  EXPECT_EQ(yard.at(1)->refs.load(), 2);
}

}  // namespace
