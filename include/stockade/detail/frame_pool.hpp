// Memory for coroutine frames, recycled per thread by size class, so a task that is started and
// finished over and over allocates only until each thread has a few frames of each size.
// Invariant: a block is returned to the pool of whichever thread frees it (a task may finish on
// another thread than it started on); each pool keeps at most `kept_per_class` blocks of a class
// and frees the rest, so no thread hoards memory it no longer uses.
#pragma once

#include <array>
#include <cstddef>
#include <new>

namespace stockade::detail {

class frame_pool {
 public:
  static constexpr std::size_t granule = 64;
  static constexpr std::size_t classes = 64;  // frames up to 4 KiB are recycled
  static constexpr std::size_t kept_per_class = 32;

  static void* allocate(std::size_t size) {
    const std::size_t index = class_of(size);
    if (index < classes && !pool_gone()) {
      if (void* kept = local().take(index)) return kept;
    }
    // Rounded up to its class, so that whichever thread frees it can keep it.
    return ::operator new(index < classes ? (index + 1) * granule : size);
  }

  static void deallocate(void* block, std::size_t size) noexcept {
    const std::size_t index = class_of(size);
    if (index < classes && !pool_gone() && local().keep(index, block)) return;
    ::operator delete(block);
  }

 private:
  struct free_block {
    free_block* next;
  };

  struct lists {
    lists() = default;
    lists(const lists&) = delete;
    lists& operator=(const lists&) = delete;
    ~lists() {
      pool_gone() = true;  // a frame freed later in this thread's exit goes to the heap
      for (free_block*& head : heads) {
        while (head != nullptr) {
          free_block* next = head->next;
          ::operator delete(head);
          head = next;
        }
      }
    }
    void* take(std::size_t index) noexcept {
      free_block* block = heads[index];
      if (block == nullptr) return nullptr;
      heads[index] = block->next;
      --counts[index];
      return block;
    }
    bool keep(std::size_t index, void* memory) noexcept {
      if (counts[index] >= kept_per_class) return false;
      heads[index] = ::new (memory) free_block{heads[index]};
      ++counts[index];
      return true;
    }
    std::array<free_block*, classes> heads{};
    std::array<std::size_t, classes> counts{};
  };

  static constexpr std::size_t class_of(std::size_t size) noexcept {
    return size == 0 ? 0 : (size - 1) / granule;
  }
  // Trivially destructible, so it can be read for the whole of the thread's exit.
  static bool& pool_gone() noexcept {
    thread_local bool gone = false;
    return gone;
  }
  static lists& local() noexcept {
    thread_local lists pool;
    return pool;
  }
};

}  // namespace stockade::detail
