// expect: at most one each of: an observer
// A retry given two observers does not compile, naming what a retry takes; with one, it does.
#include <stockade/events.hpp>
#include <stockade/retry.hpp>

struct first_observer {
  void on(const stockade::retry_scheduled& /*unused*/) {}
  void on(const stockade::retry_gave_up& /*unused*/) {}
};
struct second_observer : first_observer {};

#ifdef STOCKADE_FIXED
const stockade::retry policy{{.max_attempts = 2}, first_observer{}};
#else
const stockade::retry policy{{.max_attempts = 2}, first_observer{}, second_observer{}};
#endif

int main() { return policy.options().max_attempts == 2 ? 0 : 1; }
