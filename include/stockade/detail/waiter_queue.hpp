// An intrusive first-in-first-out list of waiters whose nodes live with the waiters themselves
// (a thread's stack, later a coroutine's frame), so queueing a waiter allocates nothing and the
// order of arrival is the order served.
// Invariant: every operation runs under the owner's mutex, and a waiter unlinks its node (or is
// unlinked by whoever serves it) before its frame ends. Whoever serves a waiter marks it served
// and resumes it under that same mutex, so the waiter cannot leave in between.
#pragma once

#include <cstddef>

namespace stockade::detail {

/// Base of a node that can sit in a waiter_queue; the node type derives from it.
class waiter_hook {
 public:
  waiter_hook() noexcept = default;
  waiter_hook(const waiter_hook&) = delete;
  waiter_hook& operator=(const waiter_hook&) = delete;
  ~waiter_hook() = default;

  bool linked() const noexcept { return linked_; }

 private:
  template <class Node>
  friend class waiter_queue;
  waiter_hook* prev_ = nullptr;
  waiter_hook* next_ = nullptr;
  bool linked_ = false;
};

/// A doubly linked FIFO of `Node`s (each derived from waiter_hook): O(1) push, pop and removal
/// from the middle (a waiter that gives up leaves its place without disturbing the order).
template <class Node>
class waiter_queue {
 public:
  waiter_queue() noexcept = default;
  waiter_queue(const waiter_queue&) = delete;
  waiter_queue& operator=(const waiter_queue&) = delete;
  ~waiter_queue() = default;

  bool empty() const noexcept { return head_ == nullptr; }
  std::size_t size() const noexcept { return size_; }

  void push_back(Node& node) noexcept {
    waiter_hook& hook = node;
    hook.prev_ = tail_;
    hook.next_ = nullptr;
    hook.linked_ = true;
    if (tail_ != nullptr) {
      tail_->next_ = &hook;
    } else {
      head_ = &hook;
    }
    tail_ = &hook;
    ++size_;
  }

  /// The oldest waiter; the queue must not be empty.
  Node& front() const noexcept { return static_cast<Node&>(*head_); }

  /// Unlinks and returns the oldest waiter; the queue must not be empty.
  Node& pop_front() noexcept {
    Node& oldest = front();
    erase(oldest);
    return oldest;
  }

  /// Unlinks `node` wherever it is; a node that is not linked is left alone.
  void erase(Node& node) noexcept {
    waiter_hook& hook = node;
    if (!hook.linked_) return;
    if (hook.prev_ != nullptr) {
      hook.prev_->next_ = hook.next_;
    } else {
      head_ = hook.next_;
    }
    if (hook.next_ != nullptr) {
      hook.next_->prev_ = hook.prev_;
    } else {
      tail_ = hook.prev_;
    }
    hook.prev_ = hook.next_ = nullptr;
    hook.linked_ = false;
    --size_;
  }

 private:
  waiter_hook* head_ = nullptr;
  waiter_hook* tail_ = nullptr;
  std::size_t size_ = 0;
};

/// A waiter that whoever serves it resumes: a blocked thread's parking spot (parking.hpp), later
/// a coroutine. Policies queue these, or nodes derived from them.
struct waiter : waiter_hook {
  using resume_action = void (*)(void* target) noexcept;

  /// Under the owner's mutex, after unlinking it: marks it served and resumes it.
  void serve() noexcept {
    served = true;
    if (resume != nullptr) resume(target);
  }

  bool served = false;  // under the owner's mutex
  resume_action resume = nullptr;
  void* target = nullptr;
};

/// Under the owner's mutex: serves every waiter queued, oldest first.
inline void serve_all(waiter_queue<waiter>& queue) noexcept {
  while (!queue.empty()) queue.pop_front().serve();
}

}  // namespace stockade::detail
