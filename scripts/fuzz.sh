#!/bin/sh
# Run the libFuzzer targets of tests/fuzz (see tests/fuzz/README.md) one after the other.
#   scripts/fuzz.sh <clang build dir> <seconds per target> [target ...]
# Targets: frame msg batch msgdec conf store (default: all). Each runs for <seconds> on a
# scratch corpus <build dir>/fuzz-corpus/<target> (new inputs go there) plus the committed
# seeds tests/fuzz/corpus/<target> (read only). A crash, sanitizer report, leak or timeout
# stops that target and leaves the input in <build dir>/fuzz-artifacts/ (replay it with
# <build dir>/tests/fuzz/fuzz_<target> <file>); the script goes on with the next target and
# exits 1 if any failed. Environment: JOBS (build parallelism, default 2), FUZZ_FLAGS (extra
# libFuzzer flags).
set -eu

if [ $# -lt 2 ]; then
    echo "usage: $0 <clang build dir> <seconds per target> [target ...]" >&2
    exit 2
fi
build=$1
secs=$2
shift 2
targets=${*:-frame msg batch msgdec conf store}
src=$(cd "$(dirname "$0")/.." && pwd)

if ! grep -q '^CMAKE_C_COMPILER_ID:.*Clang\|^CMAKE_C_COMPILER:.*clang' "$build/CMakeCache.txt" 2>/dev/null; then
    echo "$0: $build is not a clang build (cmake -S . -B $build -DCMAKE_C_COMPILER=clang)" >&2
    exit 2
fi
build_targets=""
for t in $targets; do
    build_targets="$build_targets --target fuzz_$t"
done
# shellcheck disable=SC2086
cmake --build "$build" -j "${JOBS:-2}" $build_targets

mkdir -p "$build/fuzz-artifacts"
failed=""
for t in $targets; do
    mkdir -p "$build/fuzz-corpus/$t"
    extra=""
    case $t in
    store) extra="-max_len=512" ;; # a few dozen damage operations; each run costs ms
    esac
    log="$build/fuzz-artifacts/$t.log"
    start=$(date +%s)
    # shellcheck disable=SC2086
    if "$build/tests/fuzz/fuzz_$t" -max_total_time="$secs" -timeout=20 -print_final_stats=1 \
        -artifact_prefix="$build/fuzz-artifacts/$t-" $extra ${FUZZ_FLAGS:-} \
        "$build/fuzz-corpus/$t" "$src/tests/fuzz/corpus/$t" >"$log" 2>&1; then
        status=ok
    else
        status=FAILED
        failed="$failed $t"
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
    echo "fuzz_$t: $status, ${runs:-?} runs in $(($(date +%s) - start)) s, $cov (log: $log)"
    if [ $status = FAILED ]; then
        grep -E 'ERROR|runtime error|SUMMARY|fuzz_[a-z]*: |Test unit written' "$log" | head -20
    fi
done
if [ -n "$failed" ]; then
    echo "fuzz: failed:$failed" >&2
    exit 1
fi
