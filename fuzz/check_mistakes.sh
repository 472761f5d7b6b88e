#!/usr/bin/env bash
# Checks that breaker_time_window_fuzzer finds each mistake planted in its model (the table at
# the top of fuzz/breaker_time_window_fuzzer.cpp): builds the fuzzer once per mistake
# (-DSTOCKADE_FUZZ_MISTAKE=N, targets breaker_time_window_fuzzer_mistake_N in build/fuzz-mistakes,
# configured as the `fuzz` preset), runs each from an empty corpus with -seed=1 for at most
# MISTAKE_SECONDS (default 60) and expects it to stop on a model mismatch that the model without
# the mistake (breaker_time_window_fuzzer, built alongside) does not report on the same input:
# a library that disagrees with the unmutated model would otherwise "catch" every mistake.
# Prints one line per mistake and exits non-zero if any was not caught. Arguments: mistake
# numbers (default 1 to 7). Logs: build/fuzz-mistakes/mistake-N.log.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${MISTAKE_SECONDS:-60}
build_dir=build/fuzz-mistakes

# As numbered in the table in fuzz/breaker_time_window_fuzzer.cpp.
names=(
  ""
  "the window one slice long"
  "\"slow\" as at-least"
  "a ratio as strictly-above"
  "a call in the wrong slice"
  "a call at its start time"
  "wrong growth of the open time"
  "no epoch check"
)
if (($#)); then mistakes=("$@"); else mistakes=(1 2 3 4 5 6 7); fi
for n in "${mistakes[@]}"; do
  if ! [[ $n =~ ^[1-7]$ ]]; then
    echo "no mistake $n: the mistakes are 1 to 7" >&2
    exit 2
  fi
done

run() { printf '+ %s\n' "$*"; "$@"; }
now() { printf '%s' "${EPOCHREALTIME/,/.}"; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

start=$(now)
run cmake --preset fuzz -B "$build_dir" -DSTOCKADE_FUZZ_MISTAKES=ON --log-level=WARNING
targets=(breaker_time_window_fuzzer)
for n in "${mistakes[@]}"; do targets+=("breaker_time_window_fuzzer_mistake_$n"); done
run cmake --build "$build_dir" --target "${targets[@]}"
echo "built in $(since "$start") s"

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
baseline="$build_dir/fuzz/breaker_time_window_fuzzer"
missed=0
for n in "${mistakes[@]}"; do
  fuzzer="$build_dir/fuzz/breaker_time_window_fuzzer_mistake_$n"
  log="$build_dir/mistake-$n.log"
  mkdir -p "$scratch/$n/corpus"
  began=$(now)
  status=0
  "$fuzzer" -seed=1 -max_total_time="$seconds" -artifact_prefix="$scratch/$n/" \
    "$scratch/$n/corpus" >"$log" 2>&1 || status=$?
  took=$(since "$began")
  crash=$(find "$scratch/$n" -maxdepth 1 -name 'crash-*' -print -quit)
  if ((status == 0)) || ! grep -q '^\*\*\* model mismatch' "$log" || [ -z "$crash" ]; then
    echo "mistake $n (${names[n]}): NOT caught (exit $status after $took s; see $log)"
    missed=1
  elif ! "$baseline" "$crash" >>"$log" 2>&1; then
    echo "mistake $n (${names[n]}): NOT caught (the model without it fails on the same input" \
         "too, after $took s; see $log)"
    missed=1
  else
    echo "mistake $n (${names[n]}): caught after $took s"
  fi
done
echo "total $(since "$start") s, builds included"
exit "$missed"
