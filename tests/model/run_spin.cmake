# Runs a SPIN model check: cmake -DMODEL=<file.pml> -DWORK_DIR=<dir> -DEXPECT=holds|violated
#   [-DCONFIGS=<configs>] [-DDEFINES=<defines>] -P run_spin.cmake
# CONFIGS: configurations separated by "|", each a comma-separated list of NAME=VALUE passed to
# spin as -D options (default: one run with the model's own defaults); DEFINES: more -D
# options for every run, comma-separated (e.g. OLD_PROTOCOL).
# EXPECT=holds: for every configuration, a full safety search (assertions, invalid end states)
# and an acceptance-cycle search of the model's ltl formula under weak fairness both report
# 0 errors. EXPECT=violated: the safety search of the first configuration finds the assertion
# violation given by VIOLATION (a regular expression); its shortest counterexample is printed.
# Without spin or a C compiler the check is skipped (prints "SKIPPED: spin is wanted"), unless
# the environment variable CI is "true": then it fails.
cmake_minimum_required(VERSION 3.21)

foreach(required MODEL WORK_DIR EXPECT)
  if(NOT DEFINED ${required})
    message(FATAL_ERROR "run_spin.cmake: -D${required}=... is required")
  endif()
endforeach()

find_program(SPIN spin)
find_program(C_COMPILER NAMES cc gcc clang)
if(NOT SPIN OR NOT C_COMPILER)
  if("$ENV{CI}" STREQUAL "true")
    message(FATAL_ERROR "the model check needs spin (Debian package spin) and a C compiler, "
                        "and CI is true: install them")
  endif()
  message("SKIPPED: spin is wanted for this model check (Debian package spin, and a C compiler)")
  return()
endif()

if(NOT DEFINED CONFIGS OR CONFIGS STREQUAL "")
  set(CONFIGS "defaults")
endif()
string(REPLACE "|" ";" configs "${CONFIGS}")
set(common_defines "")
if(DEFINED DEFINES AND NOT DEFINES STREQUAL "")
  string(REPLACE "," ";" common_defines "${DEFINES}")
endif()

# Runs a command in `dir`, prints its output, fails the check if it cannot run at all.
function(run_in dir out_var)
  execute_process(COMMAND ${ARGN} WORKING_DIRECTORY ${dir} RESULT_VARIABLE result
                  OUTPUT_VARIABLE output ERROR_VARIABLE output)
  message("+ ${ARGN}\n${output}")
  if(NOT result MATCHES "^[0-9]+$")
    message(FATAL_ERROR "could not run: ${ARGN} (${result})")
  endif()
  set(${out_var} "${output}" PARENT_SCOPE)
endfunction()

get_filename_component(model_name ${MODEL} NAME)
set(index 0)
foreach(config IN LISTS configs)
  math(EXPR index "${index} + 1")
  set(dir ${WORK_DIR}/${index})
  file(REMOVE_RECURSE ${dir})
  file(MAKE_DIRECTORY ${dir})
  configure_file(${MODEL} ${dir}/${model_name} COPYONLY)  # pan writes its trail next to it

  set(spin_defines "")
  if(NOT config STREQUAL "defaults")
    string(REPLACE "," ";" config_defines "${config}")
  else()
    set(config_defines "")
  endif()
  foreach(define IN LISTS common_defines config_defines)
    list(APPEND spin_defines -D${define})
  endforeach()
  message("=== ${model_name} [${config}] ${common_defines}")

  run_in(${dir} output ${SPIN} ${spin_defines} -a ${model_name})
  if(NOT EXISTS ${dir}/pan.c)
    message(FATAL_ERROR "spin -a did not write pan.c")
  endif()
  # Safety: assertions and invalid end states (a wait that blocks for good), no never claim.
  # -m: the depth bound (the model's runs are a few hundred steps); -w: the hash table.
  run_in(${dir} output ${C_COMPILER} -O2 -DSAFETY -DNOCLAIM -o pan_safety pan.c)
  if(EXPECT STREQUAL "violated")
    run_in(${dir} safety ${dir}/pan_safety -m20000 -w22 -i)  # -i: the shortest counterexample
  else()
    run_in(${dir} safety ${dir}/pan_safety -m20000 -w22)
  endif()

  if(EXPECT STREQUAL "violated")
    if(NOT DEFINED VIOLATION)
      set(VIOLATION "assertion violated")
    endif()
    if(NOT safety MATCHES "${VIOLATION}")
      message(FATAL_ERROR "expected the check to find '${VIOLATION}', it did not")
    endif()
    run_in(${dir} trail ${SPIN} ${spin_defines} -t -p ${model_name})
    message("the model check found the violation, as it must for this protocol")
    return()
  endif()

  if(NOT safety MATCHES "errors: 0\n")
    message(FATAL_ERROR "the safety check found an error (counterexample above)")
  endif()
  if(safety MATCHES "max search depth too small|Search not completed")
    message(FATAL_ERROR "the safety search was truncated: raise -m")
  endif()

  # Liveness: the model's ltl formula (the first, if several), as acceptance cycles under weak
  # fairness.
  run_in(${dir} output ${C_COMPILER} -O2 -o pan_liveness pan.c)
  run_in(${dir} liveness ${dir}/pan_liveness -a -f -m20000 -w22)
  if(NOT liveness MATCHES "errors: 0\n")
    message(FATAL_ERROR "the liveness check found an error (counterexample above)")
  endif()
  if(liveness MATCHES "max search depth too small|Search not completed")
    message(FATAL_ERROR "the liveness search was truncated: raise -m")
  endif()
endforeach()
if(EXPECT STREQUAL "violated")
  message(FATAL_ERROR "no configuration to run")
endif()
message("the model check holds")
