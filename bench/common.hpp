// What every benchmark file shares: the callee that stands for "the dependency", kept out of
// line so the raw call and every policy stack pay for the same real call.
#pragma once

namespace stockade_bench {

[[gnu::noinline]] inline int dependency(int x) noexcept {
  asm volatile("" : : "r"(x) : "memory");  // the optimizer cannot see through or drop the call
  return x + 1;
}

}  // namespace stockade_bench
