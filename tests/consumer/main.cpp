// A consumer's whole program: include the umbrella header, run a call through a pipeline.
#include <stockade/stockade.hpp>

int main() {
  const auto policy = stockade::pipeline{stockade::pass_through{}};
  return policy([] { return 42; }) == 42 ? 0 : 1;
}
