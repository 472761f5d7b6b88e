// A pointer that readers take a counted reference to without a lock, and that one writer at a
// time swaps (the resource's current instance).
// Invariant: a writer returns the old node only once no reader can still reach it uncounted.
#pragma once

#include <atomic>
#include <cstdint>
#include <thread>

namespace stockade::detail {

/// A pointer that readers take a counted reference to without a lock, and that a writer swaps.
/// Readers announce themselves on one of two counters; a writer flips the side and waits for
/// the old side to empty, after which no reader can still hold the old pointer uncounted. The
/// wait lasts a few instructions of each reader that was mid-way, never a whole call.
template <class Node>
class counted_slot {
 public:
  /// The current node with one more reference (Node::refs), or null.
  Node* acquire() noexcept {
    auto& readers = readers_[phase_.load() & 1U];
    readers.fetch_add(1);
    Node* node = current_.load();
    if (node != nullptr) node->refs.fetch_add(1, std::memory_order_relaxed);
    readers.fetch_sub(1);
    return node;
  }
  /// Publishes `next` and returns the old node, whose slot reference the caller now owns.
  /// Writers must be serialised by the caller.
  Node* exchange(Node* next) noexcept {
    Node* old = current_.exchange(next);
    auto& readers = readers_[phase_.fetch_add(1) & 1U];
    while (readers.load() != 0) std::this_thread::yield();
    return old;
  }
  Node* peek() const noexcept { return current_.load(); }

 private:
  std::atomic<Node*> current_{nullptr};
  std::atomic<std::uint64_t> phase_{0};
  std::atomic<std::int64_t> readers_[2] = {};
};

}  // namespace stockade::detail
