// expect: constexpr[^ ]* function.*throw_invalid_config
// A constinit bulkhead with no slots does not compile; with one slot, it does.
#include <stockade/bulkhead.hpp>

#ifdef STOCKADE_FIXED
constexpr std::size_t slots = 1;
#else
constexpr std::size_t slots = 0;
#endif

constinit stockade::bulkhead<> shared{{.max_concurrent = slots}};

int main() { return shared.options().max_concurrent == 1 ? 0 : 1; }
