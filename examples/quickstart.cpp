// Quickstart: a flaky call, retried with backoff within a deadline. Five lines of stockade: the
// include, the policy (three lines) and the call; the rest stands in for your dependency.
#include <stockade/stockade.hpp>

#include <cstdio>
#include <stdexcept>

using namespace std::chrono_literals;

int main(int /*argc*/, char** /*argv*/) {  // accepts and ignores --quick: it is quick anyway
  int calls = 0;
  const auto flaky_query = [&] {  // fails twice, then answers
    if (++calls < 3) throw std::runtime_error("connection reset by peer");
    return 42;
  };

  const auto policy = stockade::pipeline{
      stockade::timeout{2s},  // the whole call, every retry included
      stockade::retry{{.backoff = stockade::exponential{10ms, 2.0, 100ms}}}};  // 4 attempts
  const int answer = policy(flaky_query);

  std::printf("answer %d after %d calls\n", answer, calls);
  return answer == 42 && calls == 3 ? 0 : 1;
}
