// Placeholder until the cold-start storm lands (issue 7): runs one call through a pipeline.
#include <cstdio>
#include <stockade/stockade.hpp>

int main() {
  const auto policy = stockade::pipeline{stockade::pass_through{}};
  std::printf("cold_start_storm: %d\n", policy([] { return 42; }));
  return 0;
}
