#!/bin/sh
# FerryMQ end-to-end benchmark driver: builds ferrymq if needed and runs bench/bench_e2e.js
# (a Node load generator speaking the remoting protocol over loopback) against it with
# ASYNC_FLUSH and SYNC_FLUSH, 128 B and 1 KiB messages, 1 and 32 concurrent senders.
# Prints one `RESULT bench=... value=... unit=... baseline=... ratio=...` line per result; the
# baseline is a trivial loopback request/response server (bench_e2e_echo.c) measured right
# before each case with the same client (see bench_e2e.js). It asserts nothing.
#
#   bench/bench_e2e.sh [builddir]          builddir defaults to build
#
# Environment:
#   FERRY_BENCH_SECS=s   seconds per run of a case (default 3)
#   FERRY_BENCH_RUNS=n   runs per send case, medians printed (default 3)
#   FERRY_BENCH_DIR=dir  where the temporary store goes (default bench/out; must be a real disk
#                        for SYNC_FLUSH numbers to mean anything)
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
build=${1:-build}
case $build in
/*) ;;
*) build=$root/$build ;;
esac

command -v node >/dev/null 2>&1 || { echo "bench_e2e.sh: node is required (scripts/install-deps.sh)" >&2; exit 2; }

cd "$root"
if [ ! -f "$build/CMakeCache.txt" ]; then
    if command -v ninja >/dev/null 2>&1; then
        cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
    else
        cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo
    fi
fi
cmake --build "$build" --target ferrymq
btype=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$build/CMakeCache.txt")
sanitize=$(sed -n 's/^FERRY_SANITIZE:[A-Z]*=//p' "$build/CMakeCache.txt")
case "$btype:$sanitize" in
Release:OFF | RelWithDebInfo:OFF | Release: | RelWithDebInfo:) ;;
*) echo "bench_e2e.sh: WARNING: $build is a '$btype' build (FERRY_SANITIZE=$sanitize); numbers are not representative" ;;
esac

# The baseline server: one C file with no dependencies, built with the system compiler (it is
# not part of the CMake build).
echo_bin=$build/bench/bench_e2e_echo
mkdir -p "$build/bench"
if [ ! -x "$echo_bin" ] || [ "$here/bench_e2e_echo.c" -nt "$echo_bin" ]; then
    ${CC:-cc} -O2 -Wall -Wextra -Werror -o "$echo_bin" "$here/bench_e2e_echo.c"
fi

out=${FERRY_BENCH_DIR:-$root/bench/out}
mkdir -p "$out"
echo "bench_e2e: ferrymq from $build, store under $out, $(nproc) cores, ${FERRY_BENCH_RUNS:-3} x ${FERRY_BENCH_SECS:-3} s per case"
FERRY_FERRYMQ_BIN="$build/tools/ferrymq" FERRY_BENCH_ECHO_BIN="$echo_bin" FERRY_BENCH_DIR="$out" \
    exec node "$here/bench_e2e.js"
