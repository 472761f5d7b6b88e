// A pointer that readers take a counted reference to without a lock, and that one writer at a
// time swaps (the resource's current instance).
// Invariant: a writer returns the old node only once every reader that loaded it has counted it
// (Node::refs); a reader never counts a node whose count may already have reached zero.
#pragma once

#include <atomic>
#include <cstdint>
#include <thread>

namespace stockade::detail {

/// The places between counted_slot's steps where a test may preempt the thread.
enum class slot_step : std::uint8_t {
  reader_has_phase,  ///< read the phase, not yet announced on that side
  reader_announced,  ///< announced, not yet re-checked the phase
  reader_has_node,   ///< loaded the node, not yet counted it
  reader_counted,    ///< counted the node, not yet withdrawn
  writer_published,  ///< swapped the new node in, not yet flipped the phase
  writer_flipped,    ///< flipped the phase, not yet looked at the old side
  writer_waits,      ///< saw a reader on the old side (once per look)
};

/// counted_slot's default hook: does nothing and inlines away.
struct no_preemption {
  static void point(slot_step /*step*/) noexcept {}
};

/// A pointer that readers take a counted reference to without a lock, and that a writer swaps.
///
/// Readers announce themselves on one of two counters, chosen by the phase's parity, then
/// re-read the phase: if a writer flipped it meanwhile, they withdraw and retry on the new
/// side. A writer publishes the new node, flips the phase and waits for the side it flipped
/// away from to empty. Every operation is seq_cst: the reader's "announce, then read the phase"
/// against the writer's "flip the phase, then read the announcements" is Dekker's pattern, so
/// either the writer sees the reader and waits, or the reader sees the flip and retries.
///
/// Why no reader can count a node after it was returned (and possibly freed). The phase
/// starts at 0, so the k-th writer does E_k (swaps `current_`, getting O_k, the node it
/// returns), F_k (moves the phase from k-1 to k) and W_k (waits until side (k-1)&1 reads 0).
/// Take a reader R that counts a node: its last round read phase p, announced A on side p&1,
/// re-read C == p, loaded L, counted the node, withdrew D.
///  1. All of these are seq_cst, so they lie in one total order that agrees with each
///     thread's program order, each atomic's modification order and happens-before (hence
///     with the caller's serialisation of the writers).
///  2. C saw p, so E_p < F_p < C < L: L returns O_{p+1} (what writer p published) or newer
///     (for p = 0: the first node or newer).
///  3. C did not see p+1, so A < C < F_{p+1} < every look of W_{p+1}, which looks at side p&1:
///     R's side counts at least R from A to D, so writer p+1 cannot return before D.
///  4. Writers are serialised, so E_{p+2} follows writer p+1's return, which follows D > L:
///     L returns O_{p+1} or O_{p+2}, and writers p+1 and p+2 return those only after D.
///  5. Until its writer returns a node, the slot holds a reference on it, so R counted a node
///     whose count was at least 1. A reader that withdraws after a failed re-check touched none.
/// The writer's wait ends: a reader announces on the old side at most once per flip (its
/// re-check then sends it to the new side), so the wait lasts a few steps of each reader that
/// was mid-way, never a whole call.
///
/// `Preempt::point(slot_step)` runs between the steps (tests use it to force interleavings);
/// the default, no_preemption, costs nothing.
template <class Node, class Preempt = no_preemption>
class counted_slot {
 public:
  /// The current node with one more reference (Node::refs), or null. No lock, no allocation;
  /// retries only if a writer flipped the phase under it.
  Node* acquire() noexcept {
    std::uint64_t phase = phase_.load();
    for (;;) {
      Preempt::point(slot_step::reader_has_phase);
      auto& readers = readers_[phase & 1U];
      readers.fetch_add(1);
      Preempt::point(slot_step::reader_announced);
      // Without this re-check a reader delayed after reading the phase announces on a side a
      // writer has already drained, and the next writer drains only the other side.
      const std::uint64_t now = phase_.load();
      if (now == phase) [[likely]] {
        Node* node = current_.load();
        Preempt::point(slot_step::reader_has_node);
        // Relaxed: the node was published by current_'s seq_cst exchange, and the writer that
        // will return it sees this increment through its wait on `readers`.
        if (node != nullptr) node->refs.fetch_add(1, std::memory_order_relaxed);
        Preempt::point(slot_step::reader_counted);
        readers.fetch_sub(1);
        return node;
      }
      readers.fetch_sub(1);  // the flip may have missed us: retry on the side it points to now
      phase = now;
    }
  }
  /// Publishes `next` and returns the old node, whose slot reference the caller now owns.
  /// Writers must be serialised by the caller.
  Node* exchange(Node* next) noexcept {
    Node* old = current_.exchange(next);
    Preempt::point(slot_step::writer_published);
    // Readers that read the phase after this flip load `next` or newer and announce on the
    // other side; those that read it before may hold `old` uncounted, and are on this side.
    auto& readers = readers_[phase_.fetch_add(1) & 1U];
    Preempt::point(slot_step::writer_flipped);
    while (readers.load() != 0) {
      Preempt::point(slot_step::writer_waits);
      std::this_thread::yield();
    }
    return old;
  }
  Node* peek() const noexcept { return current_.load(); }

 private:
  std::atomic<Node*> current_{nullptr};
  std::atomic<std::uint64_t> phase_{0};
  std::atomic<std::int64_t> readers_[2] = {};
};

}  // namespace stockade::detail
