#!/usr/bin/env bash
# Install what is missing, build, and run every test gate:
#   release   unit, conformance, stress, lifecycle, workloads, bench and matrix smoke, install
#   asan      the unit suite under AddressSanitizer + UndefinedBehaviorSanitizer
#   tsan      the unit suite under ThreadSanitizer
#   valgrind  memcheck over the suite, helgrind and DRD over the concurrency tests
#   fuzz      the whole tree built with clang -Werror and its unit tests, then the
#             libFuzzer harness (clang, ASan+UBSan) for a bounded number of runs
#   lint      clang-format, one-way includes in lib/, docs/findings.md and the
#             README's results table up to date, cppcheck and clang-tidy
# Usage: scripts/test.sh [GATE...]   (default: all gates, in that order)
# Exits non-zero if any gate fails.  CI (.ci/run) calls this script.
#
# Every test has its own timeout (at least 5x its time on a slow machine of
# our kind; docs/testing.md).  The summary at the end lists each gate's five
# slowest tests, so that a machine slower than ours shows where time goes;
# the full ctest logs stay in build/test-logs/.
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh --bench || exit 1

jobs=2
gates=("$@")
if ((${#gates[@]} == 0)); then gates=(release asan tsan valgrind fuzz lint); fi
failed=()
logs=build/test-logs
mkdir -p "$logs"
rm -f "$logs"/*.log

# ctest ARGS...: run ctest, keeping its output in $logs/<gate>.log for the
# summary (the gate being run is in $gate).
run_ctest() {
  ctest "$@" 2>&1 | tee -a "$logs/$gate.log"
  return "${PIPESTATUS[0]}"
}

# The five slowest tests of a gate's log, slowest first.
slowest() { # log
  sed -nE 's/^ *[0-9]+\/[0-9]+ Test +#[0-9]+: ([^ ]+) \.*[^0-9]*([0-9.]+) sec$/\2 \1/p' "$1" |
    sort -rn | head -5 | awk '{ printf "    %8.1f s  %s\n", $1, $2 }'
}

build() { # preset
  cmake --preset "$1" >"build-$1.log" 2>&1 || { cat "build-$1.log"; return 1; }
  cmake --build --preset "$1" -j"$jobs" 2>&1 | grep -E "error|warning|Error" ; return "${PIPESTATUS[0]}"
}

gate_release() { build release && run_ctest --preset release -j"$jobs"; }
gate_asan() { build asan && run_ctest --preset asan -j"$jobs"; }
gate_tsan() {
  # tests/tsan.supp: liburcu is not instrumented (see the file)
  build tsan && TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$PWD/tests/tsan.supp" \
    run_ctest --preset tsan -j"$jobs"
}
gate_valgrind() { build valgrind && run_ctest --preset valgrind -j"$jobs"; }
gate_fuzz() {
  # First the whole tree with clang, warnings as errors, and its unit tests:
  # GCC's warnings are the release gate's, clang warns of things GCC does
  # not, and the inline hit path must hold under either compiler.
  CC=clang CXX=clang++ cmake -S . -B build/clang -DCMAKE_BUILD_TYPE=Release -DZP_WERROR=ON \
    >build-clang.log 2>&1 || { cat build-clang.log; return 1; }
  cmake --build build/clang -j"$jobs" 2>&1 | grep -E "error|warning"
  ((PIPESTATUS[0] == 0)) || return 1
  run_ctest --test-dir build/clang -L unit -j"$jobs" --output-on-failure || return 1
  local dir=build/fuzz
  CC=clang cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DZP_FUZZ=ON -DZP_WERROR=ON \
    -DZP_BUILD_BENCH=OFF -DZP_BUILD_WORKLOADS=OFF \
    "-DCMAKE_C_FLAGS=-fsanitize=address,undefined -fno-sanitize-recover=all" >build-fuzz.log 2>&1 ||
    { cat build-fuzz.log; return 1; }
  cmake --build "$dir" -j"$jobs" --target fuzz_pool 2>&1 | grep -E "error|warning"
  ((PIPESTATUS[0] == 0)) || return 1
  run_ctest --test-dir "$dir" -L fuzz --output-on-failure
}
gate_lint() {
  local files
  files=$(git ls-files '*.c' '*.h' '*.cc')
  # shellcheck disable=SC2086
  clang-format --dry-run -Werror $files || return 1
  python3 scripts/check_layers.py || return 1
  python3 analysis/findings.py --check || return 1
  python3 analysis/readme_table.py --check || return 1
  # cppcheck reads no system header: it is given <sys/queue.h>, whose list
  # macros the library uses, as a forced include.
  local queue_h
  queue_h=$(echo '#include <sys/queue.h>' | cpp -H -o /dev/null 2>&1 | awk '/queue\.h/ { print $2; exit }')
  cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
    --inline-suppr --std=c11 -D__GNUC__ ${queue_h:+"--include=$queue_h"} \
    -I lib/include -I lib -I build/release/lib/include \
    lib locked $( [[ -d lockfree ]] && echo lockfree ) uring || return 1
  [[ -f build/release/compile_commands.json ]] || build release || return 1
  # shellcheck disable=SC2046
  clang-tidy --quiet -p build/release $(git ls-files 'lib/*.c' 'locked/*.c' 'lockfree/*.c' uring/zp_uring.c) || return 1
  echo "lint: clang-format, layers, findings, README table, cppcheck and clang-tidy clean"
}

total_start=$SECONDS
summary=()
for gate in "${gates[@]}"; do
  echo "=== gate: $gate"
  start=$SECONDS
  if "gate_$gate"; then
    verdict=passed
  else
    verdict=FAILED
    failed+=("$gate")
  fi
  echo "=== gate $gate $verdict ($((SECONDS - start)) s)"
  summary+=("$gate $verdict $((SECONDS - start))")
done
rm -f build-*.log
echo "=== summary ($((SECONDS - total_start)) s in all)"
for line in "${summary[@]}"; do
  read -r gate verdict secs <<<"$line"
  echo "  $gate: $verdict in $secs s"
  [[ -f "$logs/$gate.log" ]] && slowest "$logs/$gate.log"
done
if ((${#failed[@]})); then echo "failed gates: ${failed[*]}"; fi
echo "gates: $((${#gates[@]} - ${#failed[@]})) passed, ${#failed[@]} failed"
((${#failed[@]} == 0))
