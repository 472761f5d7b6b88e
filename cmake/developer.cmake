# Settings for stockade's own tests, benchmarks and examples. Nothing here reaches users:
# warnings and sanitizers go on these targets only, never on the stockade target.

set(STOCKADE_WARNINGS_AS_ERRORS OFF CACHE BOOL "Treat warnings as errors in stockade's own targets")
set(STOCKADE_SANITIZE "" CACHE STRING "Sanitizers for stockade's own targets, e.g. address,undefined or thread")

add_library(stockade_developer_flags INTERFACE)
target_compile_options(stockade_developer_flags INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wconversion
  $<$<BOOL:${STOCKADE_WARNINGS_AS_ERRORS}>:-Werror>)
if(STOCKADE_SANITIZE)
  target_compile_options(stockade_developer_flags INTERFACE
    -fsanitize=${STOCKADE_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  target_link_options(stockade_developer_flags INTERFACE -fsanitize=${STOCKADE_SANITIZE})
endif()
target_link_libraries(stockade_developer_flags INTERFACE stockade::stockade)
