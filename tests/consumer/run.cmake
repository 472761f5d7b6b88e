# Builds and runs tests/consumer as a separate project that takes stockade one way:
#   fetchcontent  FetchContent_Declare(SOURCE_DIR <this tree>) + FetchContent_MakeAvailable
#   subdirectory  add_subdirectory(<this tree>)
#   find_package  cmake --install into a temporary prefix, then find_package(stockade CONFIG)
# Usage: cmake -DMODE=... -DSOURCE_DIR=... -DWORK_DIR=... -DCXX=... -DGENERATOR=... -P run.cmake
foreach(var MODE SOURCE_DIR WORK_DIR CXX GENERATOR)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "run.cmake: ${var} is not set")
  endif()
endforeach()

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE failed)
  if(failed)
    string(REPLACE ";" " " shown "${ARGN}")
    message(FATAL_ERROR "consumer (${MODE}): failed: ${shown}")
  endif()
endfunction()

file(REMOVE_RECURSE ${WORK_DIR})
set(extra)
if(MODE STREQUAL "find_package")
  run(${CMAKE_COMMAND} -S ${SOURCE_DIR} -B ${WORK_DIR}/library -G ${GENERATOR}
      -DCMAKE_CXX_COMPILER=${CXX} -DSTOCKADE_BUILD_TESTS=OFF -DSTOCKADE_BUILD_BENCHMARKS=OFF
      -DSTOCKADE_BUILD_EXAMPLES=OFF)
  run(${CMAKE_COMMAND} --install ${WORK_DIR}/library --prefix ${WORK_DIR}/prefix)
  set(extra -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix)
endif()
run(${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/consumer -B ${WORK_DIR}/build -G ${GENERATOR}
    -DCMAKE_CXX_COMPILER=${CXX} -DSTOCKADE_CONSUME=${MODE} -DSTOCKADE_SOURCE=${SOURCE_DIR}
    -DFETCHCONTENT_FULLY_DISCONNECTED=ON ${extra})
run(${CMAKE_COMMAND} --build ${WORK_DIR}/build)
run(${WORK_DIR}/build/consumer)
