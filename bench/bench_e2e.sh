#!/bin/sh
# FerryMQ end-to-end benchmark: mqbench (tools/mqbench.c, libferry) against `ferrymq` (name
# server + broker in one process), with Redis Streams as the baseline measured in the same run on
# the same machine, disk, payload size and concurrency:
#
#   ferrymq flushDiskType   vs  redis-server --appendonly yes --save '' --appendfsync
#   SYNC_FLUSH                  always     (both acknowledge only after the fsync)
#   ASYNC_FLUSH                 everysec   (both acknowledge once in the page cache)
#
# For each pairing, 128 B and 1 KiB bodies:
#   send_sync    50 threads in ferry_send_sync (one producer)    vs  redis-benchmark -c 50 -P 1
#   send_async   50 producers (own connections) x 16 in flight    vs  redis-benchmark -c 50 -P 16
#                with ferry_send_async
# where redis-benchmark runs `XADD bench '*' f <payload of the size>`. The cases alternate
# (Redis run, FerryMQ run) FERRY_BENCH_RUNS times and the medians are printed as
#
#   RESULT bench=<name> value=<msgs/s> unit=msg/s baseline=<redis msgs/s> ratio=<ours/redis>
#
# plus an INFO line with the median p50/p99 latencies of both. Then, with ASYNC_FLUSH, the
# consumer case, FERRY_BENCH_RUNS rounds: a backlog of FERRY_BENCH_DRAIN messages (128 B) is
# produced (async) to a fresh topic and a new push-consumer group drains it (mqbench consumer);
# its RESULT has the median drain rate as value and the median producer rate of those backlogs
# as baseline. Then the replication phase, bench/bench_repl.sh (unless FERRY_BENCH_REPL=0):
# SYNC_MASTER and ASYNC_MASTER sets of a master and a slave against a single node, and the
# failover time of a controller-mode set. Nothing is asserted.
#
#   bench/bench_e2e.sh [builddir]          builddir defaults to build
#
# Environment:
#   FERRY_BENCH_SECS=s      seconds per run (default 5)
#   FERRY_BENCH_RUNS=n      runs per case, medians printed (default 3)
#   FERRY_BENCH_DIR=dir     where stores and the Redis AOF go (default bench/out; must be a
#                           real disk for the fsync numbers to mean anything)
#   FERRY_BENCH_SIZES="..." body sizes in bytes (default "128 1024")
#   FERRY_BENCH_MODES="..." any of send_sync send_async (default both)
#   FERRY_BENCH_FLUSH="..." any of SYNC_FLUSH ASYNC_FLUSH (default both)
#   FERRY_BENCH_DRAIN=n     backlog of the consumer case (default 300000; 0 skips it)
#   FERRY_BENCH_NOBUILD=1   use the binaries already in builddir (do not run the build)
#   FERRY_BENCH_KEEP=1      keep the run's directory (logs, stores) under FERRY_BENCH_DIR
#   FERRY_BENCH_NODE=1      afterwards, also run the older protocol-level driver bench/bench_e2e.js
#                           (Node; send and PULL_MESSAGE rates against a loopback echo server,
#                           bench_e2e_echo.c, as its baseline)
#   FERRY_BENCH_REPL=0      skip the replication phase that follows: bench/bench_repl.sh
#                           (SYNC_MASTER / ASYNC_MASTER with one slave against a single node, both
#                           SYNC_FLUSH, and the controller-mode failover time; see its header)
#
# Needs redis-server and redis-benchmark (`scripts/install-deps.sh --bench`, which
# `make bench-e2e` runs). Every process started here is stopped on exit, also on Ctrl-C.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
build=${1:-build}
case $build in
/*) ;;
*) build=$root/$build ;;
esac
secs=${FERRY_BENCH_SECS:-5}
runs=${FERRY_BENCH_RUNS:-3}
sizes=${FERRY_BENCH_SIZES:-128 1024}
modes=${FERRY_BENCH_MODES:-send_sync send_async}
flushes=${FERRY_BENCH_FLUSH:-SYNC_FLUSH ASYNC_FLUSH}
drain=${FERRY_BENCH_DRAIN:-300000}
conns=50
inflight=16

for tool in redis-server redis-benchmark redis-cli ss; do
    command -v $tool >/dev/null 2>&1 || {
        echo "bench_e2e.sh: $tool is required (scripts/install-deps.sh --bench)" >&2
        exit 2
    }
done

prog=bench_e2e
# shellcheck source=bench/lib.sh
. "$here/lib.sh"
cd "$root"
bench_build ferrymq mqbench mqadmin

out=${FERRY_BENCH_DIR:-$root/bench/out}
mkdir -p "$out"
dir=$(mktemp -d "$out/bench_e2e.XXXXXX")
fm_pid=""
redis_pid=""

cleanup() {
    stop_pid "$fm_pid"
    stop_pid "$redis_pid"
    fm_pid=""
    redis_pid=""
    if [ "${FERRY_BENCH_KEEP:-0}" = 1 ]; then
        echo "bench_e2e: kept $dir"
    else
        rm -rf "$dir"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# One fill of $drain messages into a new topic, then a new push-consumer group drains it; prints
# "fill_tps drain_tps backlog consumed first_msg_ms p50_ms p99_ms", or nothing (SKIP printed).
drain_once() { # run
    topic=BenchDrain$1
    "$mqadmin" updateTopic -n "$namesrv" -t "$topic" -r 8 -w 8 -c BenchCluster >/dev/null
    line=$("$mqbench" producer -n "$namesrv" -t "$topic" -a -p $conns -i $inflight -s 128 -c "$drain" | grep '^SUMMARY')
    ok=$(echo "$line" | field ok)
    set +e
    cline=$("$mqbench" consumer -n "$namesrv" -t "$topic" -g "GID_bench_drain$1" -c "$ok" -d 600 2>"$dir/consumer.err")
    rc=$?
    set -e
    if [ $rc = 3 ]; then
        echo "SKIP bench=e2e_consume_drain_128B: $(cat "$dir/consumer.err")" >&2
        return
    fi
    cline=$(echo "$cline" | grep '^SUMMARY' || true)
    if [ -z "$cline" ]; then
        echo "bench_e2e: the consumer failed (exit $rc): $(cat "$dir/consumer.err")" >&2
        return
    fi
    echo "$(echo "$line" | field tps) $(echo "$cline" | field drain_tps) $ok $(echo "$cline" | field ok)" \
        "$(echo "$cline" | field first_msg_after_ms) $(echo "$cline" | field p50_ms) $(echo "$cline" | field p99_ms)"
}

# The drain rate against the fill rate, medians of $runs rounds (each its own topic and group).
consumer_case() {
    : >"$dir/drain"
    run=0
    while [ $run -lt "$runs" ]; do
        drain_once $run >>"$dir/drain"
        run=$((run + 1))
    done
    [ -s "$dir/drain" ] || return 0
    result e2e_consume_drain_128B "$(cut -d' ' -f2 "$dir/drain" | median)" "$(cut -d' ' -f1 "$dir/drain" | median)"
    echo "INFO bench=e2e_consume_drain_128B backlog=$(head -1 "$dir/drain" | cut -d' ' -f3)" \
        "consumed=$(cut -d' ' -f4 "$dir/drain" | tr '\n' ' ' | sed 's/ $//')" \
        "first_msg_after_ms=$(cut -d' ' -f5 "$dir/drain" | median)" \
        "e2e_p50_ms=$(cut -d' ' -f6 "$dir/drain" | median) e2e_p99_ms=$(cut -d' ' -f7 "$dir/drain" | median)" \
        "drain_runs=\"$(cut -d' ' -f2 "$dir/drain" | tr '\n' ' ' | sed 's/ $//')\"" \
        "fill_runs=\"$(cut -d' ' -f1 "$dir/drain" | tr '\n' ' ' | sed 's/ $//')\""
}

echo "bench_e2e: ferrymq and mqbench from $build, data under $dir, $(nproc) cores," \
    "$runs x $secs s per case, redis $(redis-server --version | awk '{ sub("v=", "", $3); print $3 }')"
for flush in $flushes; do
    case $flush in
    SYNC_FLUSH) fsync=always ;;
    ASYNC_FLUSH) fsync=everysec ;;
    *) echo "bench_e2e: unknown flush type $flush" >&2; exit 2 ;;
    esac
    start_ferrymq "$flush"
    start_redis "$fsync"
    # Warm-up: the first sends fetch routes and open connections.
    "$mqbench" producer -n "$namesrv" -t BenchTopic -a -p $conns -i $inflight -d 1 >/dev/null
    for size in $sizes; do
        for mode in $modes; do
            if [ "$mode" = send_sync ]; then pipe=1; else pipe=$inflight; fi
            name=e2e_${mode}_${size}B_$(echo "$flush" | tr 'A-Z' 'a-z')
            redis_rate=""
            : >"$dir/r" && : >"$dir/f"
            run=0
            while [ $run -lt "$runs" ]; do
                redis_case $pipe "$size" >>"$dir/r"
                ferry_case "$mode" "$size" >>"$dir/f"
                run=$((run + 1))
            done
            result "$name" "$(cut -d' ' -f1 "$dir/f" | median)" "$(cut -d' ' -f1 "$dir/r" | median)"
            echo "INFO bench=$name ferry_p50_ms=$(cut -d' ' -f2 "$dir/f" | median)" \
                "ferry_p99_ms=$(cut -d' ' -f3 "$dir/f" | median)" \
                "redis_p50_ms=$(cut -d' ' -f2 "$dir/r" | median)" \
                "redis_p99_ms=$(cut -d' ' -f3 "$dir/r" | median)" \
                "ferry_runs=\"$(cut -d' ' -f1 "$dir/f" | tr '\n' ' ' | sed 's/ $//')\"" \
                "redis_runs=\"$(cut -d' ' -f1 "$dir/r" | awk '{ printf "%s%.0f", (NR > 1 ? " " : ""), $1 }')\""
        done
    done
    if [ "$flush" = ASYNC_FLUSH ] && [ "$drain" -gt 0 ]; then
        consumer_case
    fi
    stop_pid "$fm_pid"
    stop_pid "$redis_pid"
    fm_pid=""
    redis_pid=""
done

if [ "${FERRY_BENCH_REPL:-1}" != 0 ]; then
    "$here/bench_repl.sh" "$build"
fi

if [ "${FERRY_BENCH_NODE:-0}" = 1 ]; then
    command -v node >/dev/null 2>&1 || { echo "bench_e2e.sh: node is required for FERRY_BENCH_NODE=1" >&2; exit 2; }
    echo_bin=$build/bench/bench_e2e_echo
    mkdir -p "$build/bench"
    if [ ! -x "$echo_bin" ] || [ "$here/bench_e2e_echo.c" -nt "$echo_bin" ]; then
        ${CC:-cc} -O2 -Wall -Wextra -Werror -o "$echo_bin" "$here/bench_e2e_echo.c"
    fi
    FERRY_FERRYMQ_BIN=$ferrymq FERRY_BENCH_ECHO_BIN=$echo_bin FERRY_BENCH_DIR=$dir \
        FERRY_BENCH_SECS=$secs FERRY_BENCH_RUNS=$runs node "$here/bench_e2e.js"
fi
