#!/bin/sh
# FerryMQ replication benchmark (docs/REPLICATION.md, docs/CONTROLLER.md): what a slave costs a
# master's send throughput, and how long a failover takes. Run by bench/bench_e2e.sh (so by
# `make bench-e2e`) unless FERRY_BENCH_REPL=0, or on its own. Everything runs on this machine,
# on loopback, every store in its own directory under FERRY_BENCH_DIR.
#
# 1. Throughput. One mqnamesrv and five mqbrokers, all SYNC_FLUSH (acknowledged after the local
#    fdatasync), 256 MiB CommitLog segments:
#      single        bench-single  ASYNC_MASTER, no slave, no haSecret (the baseline)
#      sync_master   bench-sync    SYNC_MASTER + a SLAVE (SYNC_FLUSH, haSecret, haMasterAddress):
#                                  a send is answered once the slave fsynced it too
#      async_master  bench-async   ASYNC_MASTER + a SLAVE likewise: the slave follows, nobody waits
#    each with its own topic (8 queues, created on its master only). mqbench (libferry) drives
#      send_sync    50 threads in ferry_send_sync (one producer)
#      send_async   50 producers (own connections) x 16 sends in flight (ferry_send_async)
#    with FERRY_BENCH_SIZES bodies. For each case, FERRY_BENCH_RUNS rounds each run single, then
#    sync_master, then async_master, back to back (a noisy machine drifts; the per-round ratios
#    compare neighbours); after each run the script waits until the slave holds the master's
#    whole CommitLog and every store dispatched it, so no run pays for its predecessor. Printed:
#
#      RESULT bench=sync_master_<mode>_<size>B value=<msg/s> unit=msg/s baseline=<msg/s> ratio=<r>
#      RESULT bench=async_master_<mode>_<size>B ...
#
#    value: the median of the replicated runs; baseline: the median of the single-node runs
#    (SYNC_FLUSH, no slave) - for both pairings: the only difference between a replicated set
#    and the baseline is the slave (and, for sync_master, the wait for it), so the ratio is what
#    replication costs (target for sync_master: >= 0.70). ASYNC_FLUSH would not do as the
#    baseline of async_master: the replicated master fsyncs too. An INFO line per case gives
#    the per-round throughputs and ratios and the median p50/p99 latencies.
#
# 2. Failover time. FERRY_BENCH_CONTROLLERS (default 3) mqcontrollers (scanNotActiveBrokerInterval
#    500, controllerHeartBeatTimeoutMills 3000 = the lease), the same name server, and two
#    mqbrokers of one set in controller mode (brokerHeartbeatInterval 200, ASYNC_MASTER flavour,
#    SYNC_FLUSH; with two brokers a SYNC_MASTER flavour would answer SLAVE_NOT_AVAILABLE after
#    the failover: its sync state set has no slave left). bench/bench_failover.js (Node, the
#    tests' remoting client) sends continuously with two loops of synchronous sends, each to the
#    master the route names, re-resolved after any failure (retries paced by 20 ms). Each
#    round: steady sending for 1 s, kill -9 of the master, failover time = the first SEND_OK
#    from the other broker - the kill (wall clock ms of both); then the killed broker restarts
#    (same config and store), comes back as a slave and the script waits until the controllers
#    have it in the sync state set again. FERRY_BENCH_RUNS rounds (the master alternates),
#
#      RESULT bench=failover value=<median ms> unit=ms baseline=3000 ratio=<r>
#
#    baseline: the configured lease (no election can come before it), so the ratio says how far
#    beyond the lease the failover takes. Needs node; skipped (SKIP line) without it.
#
#   bench/bench_repl.sh [builddir]          builddir defaults to build
#
# Environment (as bench_e2e.sh): FERRY_BENCH_SECS (5), FERRY_BENCH_RUNS (3), FERRY_BENCH_DIR
# (bench/out; a real disk), FERRY_BENCH_SIZES ("128 1024"), FERRY_BENCH_MODES ("send_sync
# send_async"), FERRY_BENCH_NOBUILD, FERRY_BENCH_KEEP; and
#   FERRY_BENCH_REPL_THROUGHPUT=0   skip part 1
#   FERRY_BENCH_FAILOVER=0          skip part 2
#   FERRY_BENCH_CONTROLLERS=n       controllers in part 2 (1 is a valid group; default 3)
#   FERRY_BENCH_SLAVE_DIR=dir       where the part 1 slaves' stores go (default: FERRY_BENCH_DIR);
#                                   another disk, or /dev/shm to see the run without the slaves'
#                                   writes and fsyncs on the master's disk
# Every process started here is stopped on exit, also on Ctrl-C.
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
nctl=${FERRY_BENCH_CONTROLLERS:-3}
conns=50
inflight=16
lease=3000
secret=bench-repl-secret

command -v ss >/dev/null 2>&1 || { echo "bench_repl.sh: ss (iproute2) is required" >&2; exit 2; }

prog=bench_repl
# shellcheck source=bench/lib.sh
. "$here/lib.sh"
cd "$root"
bench_build mqnamesrv mqbroker mqcontroller mqbench mqadmin
mqnamesrv=$build/tools/mqnamesrv
mqbroker=$build/tools/mqbroker
mqcontroller=$build/tools/mqcontroller

out=${FERRY_BENCH_DIR:-$root/bench/out}
mkdir -p "$out"
dir=$(mktemp -d "$out/bench_repl.XXXXXX")
sdir=$dir # the part 1 slaves' stores
where=$dir
if [ -n "${FERRY_BENCH_SLAVE_DIR:-}" ]; then
    mkdir -p "$FERRY_BENCH_SLAVE_DIR"
    sdir=$(mktemp -d "$FERRY_BENCH_SLAVE_DIR/bench_repl_slaves.XXXXXX")
    where="$dir (the slaves' stores under $sdir)"
fi

# Every process started here: "pid pid ..." (stopped by cleanup); the failover brokers' pids
# are also in fo_pid1 / fo_pid2, the sender's in sender_pid.
pids=""
fo_pid1=""
fo_pid2=""
sender_pid=""
cleanup() {
    stop_pid "$sender_pid"
    for p in $fo_pid1 $fo_pid2 $pids; do
        stop_pid "$p"
    done
    pids=""
    if [ "${FERRY_BENCH_KEEP:-0}" = 1 ]; then
        echo "bench_repl: kept $where"
    else
        rm -rf "$dir" "$sdir"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- processes --------------------------------------------------------------------------------

# Starts "$@" in the background, output appended to $dir/<name>.log; sets last_pid.
launch() { # name command...
    name=$1
    shift
    "$@" >>"$dir/$name.log" 2>&1 &
    last_pid=$!
}

# Runs "$@" (quietly) every 0.1 s until it succeeds; fails the script after <secs> seconds or
# when process <pid> exits (the last lines of <log> are printed).
wait_for() { # secs what pid log command...
    w_secs=$1 w_what=$2 w_pid=$3 w_log=$4
    shift 4
    w_i=0
    until "$@" >/dev/null 2>&1; do
        if [ -n "$w_pid" ] && ! kill -0 "$w_pid" 2>/dev/null; then
            echo "$prog: the process exited while waiting for $w_what" >&2
            tail -20 "$w_log" >&2
            exit 1
        fi
        w_i=$((w_i + 1))
        if [ $w_i -ge $((w_secs * 10)) ]; then
            echo "$prog: timed out after $w_secs s waiting for $w_what" >&2
            tail -20 "$w_log" >&2
            exit 1
        fi
        sleep 0.1
    done
}

listening() { # port
    ss -Htln "sport = :$1" | grep -q .
}

# mqadmin brokerStatus value of one key (empty when the broker does not answer).
status_of() { # addr key
    "$mqadmin" brokerStatus -b "$1" 2>/dev/null | awk -v k="$2" '$1 == k { sub(/^[^:]*: /, ""); print; exit }'
}

# Writes a broker config; further key=value arguments are appended.
broker_conf() { # file cluster brokerName brokerId port store [key=value...]
    f=$1
    cat >"$f" <<EOF
brokerClusterName=$2
brokerName=$3
brokerId=$4
listenPort=$5
bindAddress=127.0.0.1
brokerIP1=127.0.0.1
namesrvAddr=$namesrv
autoCreateTopicEnable=true
storePathRootDir=$6
flushDiskType=SYNC_FLUSH
mappedFileSizeCommitLog=268435456
maxHashSlotNum=500000
maxIndexNum=2000000
EOF
    shift 6
    for kv in "$@"; do
        echo "$kv" >>"$f"
    done
}

start_namesrv() {
    ns_port=$(free_port)
    namesrv=127.0.0.1:$ns_port
    cat >"$dir/namesrv.conf" <<EOF
listenAddress=127.0.0.1
listenPort=$ns_port
kvConfigPath=$dir/namesrv/kvConfig.json
EOF
    launch namesrv "$mqnamesrv" -c "$dir/namesrv.conf"
    pids="$pids $last_pid"
    wait_for 20 "the name server" "$last_pid" "$dir/namesrv.log" listening "$ns_port"
}

# ---- part 1: throughput -----------------------------------------------------------------------

# Starts the broker(s) of a setup (single, sync, async) and creates its topic (8 queues, on the
# master only); sets <setup>_addr (master) and, for a pair, <setup>_slave.
start_setup() { # setup
    s=$1
    port=$(free_port)
    ha=$(free_port)
    addr=127.0.0.1:$port
    case $s in
    single) set -- brokerRole=ASYNC_MASTER ;;
    sync) set -- brokerRole=SYNC_MASTER haSecret=$secret haListenPort="$ha" ;;
    async) set -- brokerRole=ASYNC_MASTER haSecret=$secret haListenPort="$ha" ;;
    esac
    broker_conf "$dir/$s-m.conf" BenchRepl bench-"$s" 0 "$port" "$dir/store-$s-m" "$@"
    launch "$s-m" "$mqbroker" -c "$dir/$s-m.conf"
    pids="$pids $last_pid"
    wait_for 30 "the $s master" "$last_pid" "$dir/$s-m.log" \
        "$mqadmin" updateTopic -n "$namesrv" -t "$(topic_of "$s")" -r 8 -w 8 -b "$addr"
    eval "${s}_addr=$addr"
    [ "$s" != single ] || return 0
    sport=$(free_port)
    broker_conf "$dir/$s-s.conf" BenchRepl bench-"$s" 1 "$sport" "$sdir/store-$s-s" brokerRole=SLAVE \
        haSecret=$secret haMasterAddress=127.0.0.1:"$ha"
    launch "$s-s" "$mqbroker" -c "$dir/$s-s.conf"
    pids="$pids $last_pid"
    eval "${s}_slave=127.0.0.1:$sport"
    wait_for 30 "the $s slave" "$last_pid" "$dir/$s-s.log" listening "$sport"
}

topic_of() { # setup
    case $1 in
    single) echo BenchSingle ;;
    sync) echo BenchSync ;;
    async) echo BenchAsync ;;
    esac
}

# True once the setup is idle: its slave holds the master's whole CommitLog and every broker of
# it dispatched everything (dispatchBehindBytes 0).
settled() { # setup
    m=$(eval echo "\$${1}_addr")
    [ "$(status_of "$m" dispatchBehindBytes)" = 0 ] || return 1
    [ "$1" != single ] || return 0
    sl=$(eval echo "\$${1}_slave")
    mmax=$(status_of "$m" commitLogMaxOffset)
    [ -n "$mmax" ] && [ "$(status_of "$sl" commitLogMaxOffset)" = "$mmax" ] &&
        [ "$(status_of "$sl" dispatchBehindBytes)" = 0 ]
}

# One mqbench run against a setup: "tps p50_ms p99_ms", then waits until it settled.
setup_run() { # setup mode size
    bench_topic=$(topic_of "$1")
    ferry_case "$2" "$3"
    wait_for 120 "the $1 brokers to settle" "" "$dir/$1-m.log" settled "$1"
}

throughput() {
    for s in single sync async; do
        start_setup $s
    done
    # Warm-up: routes, connections, the slaves' first reports (a SYNC_MASTER answers
    # SLAVE_NOT_AVAILABLE until its slave streams: wait until a send is acknowledged).
    wait_for 30 "the sync slave to stream" "" "$dir/sync-s.log" \
        sh -c "'$mqadmin' sendMessage -n '$namesrv' -t BenchSync -p warmup | grep -q SEND_OK"
    for s in single sync async; do
        bench_topic=$(topic_of $s)
        "$mqbench" producer -n "$namesrv" -t "$bench_topic" -a -p $conns -i $inflight -d 1 >/dev/null
        wait_for 120 "the $s brokers to settle" "" "$dir/$s-m.log" settled $s
    done
    for size in $sizes; do
        for mode in $modes; do
            : >"$dir/single" && : >"$dir/sync" && : >"$dir/async"
            run=0
            while [ $run -lt "$runs" ]; do
                for s in single sync async; do
                    setup_run $s "$mode" "$size" >>"$dir/$s"
                done
                run=$((run + 1))
            done
            for s in sync async; do
                name=${s}_master_${mode}_${size}B
                result "$name" "$(cut -d' ' -f1 "$dir/$s" | median)" "$(cut -d' ' -f1 "$dir/single" | median)"
                echo "INFO bench=$name p50_ms=$(cut -d' ' -f2 "$dir/$s" | median)" \
                    "p99_ms=$(cut -d' ' -f3 "$dir/$s" | median)" \
                    "baseline_p50_ms=$(cut -d' ' -f2 "$dir/single" | median)" \
                    "baseline_p99_ms=$(cut -d' ' -f3 "$dir/single" | median)" \
                    "runs=\"$(cut -d' ' -f1 "$dir/$s" | tr '\n' ' ' | sed 's/ $//')\"" \
                    "baseline_runs=\"$(cut -d' ' -f1 "$dir/single" | tr '\n' ' ' | sed 's/ $//')\"" \
                    "round_ratios=\"$(paste -d' ' "$dir/$s" "$dir/single" |
                        awk '{ printf "%s%.3f", (NR > 1 ? " " : ""), ($4 > 0 ? $1 / $4 : 0) }')\""
            done
        done
    done
}

# ---- part 2: failover time --------------------------------------------------------------------

fo_conf() { # id
    fo_port=$(free_port)
    broker_conf "$dir/fo-$1.conf" BenchFoCluster bench-fo "$1" "$fo_port" "$dir/store-fo-$1" \
        enableControllerMode=true controllerAddr="$ctl_addrs" \
        brokerRole=ASYNC_MASTER haSecret=$secret haListenPort="$(free_port)" \
        brokerHeartbeatInterval=200 checkSyncStateSetPeriod=500 \
        controllerHeartBeatTimeoutMills=$lease haSendHeartbeatInterval=500
    eval "fo_addr$1=127.0.0.1:$fo_port"
}

fo_start() { # id
    launch "fo-$1" "$mqbroker" -c "$dir/fo-$1.conf"
    eval "fo_pid$1=$last_pid"
}

# Prints the master once the controllers have <n> alive members in its sync state set.
wait_sync() { # n
    node "$here/bench_failover.js" wait-sync "$ctl_addrs" bench-fo "$1" 60000
}

failover() {
    ctl_addrs=""
    peers=""
    i=0
    while [ $i -lt "$nctl" ]; do
        peers="$peers${peers:+;}n$i-127.0.0.1:$(free_port)"
        i=$((i + 1))
    done
    i=0
    while [ $i -lt "$nctl" ]; do
        cport=$(free_port)
        cat >"$dir/ctl-$i.conf" <<EOF
controllerPeers=$peers
controllerSelfId=n$i
controllerStorePath=$dir/ctl-$i
listenPort=$cport
scanNotActiveBrokerInterval=500
controllerHeartBeatTimeoutMills=$lease
EOF
        launch "ctl-$i" "$mqcontroller" -c "$dir/ctl-$i.conf"
        pids="$pids $last_pid"
        wait_for 20 "controller n$i" "$last_pid" "$dir/ctl-$i.log" listening "$cport"
        ctl_addrs="$ctl_addrs${ctl_addrs:+;}127.0.0.1:$cport"
        i=$((i + 1))
    done
    fo_conf 1
    fo_conf 2
    # The first broker registered is master; the topic is created on it before the second
    # starts, so the second copies it with its first metadata sync.
    fo_start 1
    master=$(wait_sync 1)
    # shellcheck disable=SC2154 # fo_addr1 / fo_addr2 are set by fo_conf (eval)
    [ "$master" = "$fo_addr1" ] || { echo "$prog: broker 1 is not the first master ($master)" >&2; exit 1; }
    wait_for 30 "the failover topic" "$fo_pid1" "$dir/fo-1.log" \
        "$mqadmin" updateTopic -n "$namesrv" -t BenchFailover -r 4 -w 4 -b "$fo_addr1"
    fo_start 2
    wait_sync 2 >/dev/null
    : >"$dir/failover"
    run=0
    while [ $run -lt "$runs" ]; do
        master=$(wait_sync 2)
        # shellcheck disable=SC2154
        if [ "$master" = "$fo_addr1" ]; then victim=1; else victim=2; fi
        sends=$dir/fo-sender.$run
        node "$here/bench_failover.js" send "$namesrv" BenchFailover bench-fo 2 >"$sends" 2>&1 &
        sender_pid=$!
        wait_for 20 "sends acknowledged by $master" "$sender_pid" "$sends" grep -q "^ACK .* $master\$" "$sends"
        sleep 1 # steady sending before the kill
        vpid=$(eval echo "\$fo_pid$victim")
        t_kill=$(date +%s%3N)
        kill -9 "$vpid"
        wait "$vpid" 2>/dev/null || true
        eval "fo_pid$victim="
        wait_for 60 "a SEND_OK from another broker than $master" "$sender_pid" "$sends" \
            sh -c "grep '^ACK ' '$sends' | grep -qv ' $master\$'"
        t_ok=$(grep '^ACK ' "$sends" | grep -v " $master\$" | head -1 | cut -d' ' -f2)
        stop_pid "$sender_pid"
        sender_pid=""
        echo "$((t_ok - t_kill))" >>"$dir/failover"
        echo "INFO bench=failover round=$run killed=$master ms=$((t_ok - t_kill))" \
            "new_master=$(grep '^ACK ' "$sends" | grep -v " $master\$" | head -1 | cut -d' ' -f3)" \
            "$(grep '^SENT ' "$sends" || true)"
        # The killed broker comes back as a slave and rejoins the sync state set.
        fo_start $victim
        wait_sync 2 >/dev/null
        run=$((run + 1))
    done
    awk -v v="$(median <"$dir/failover")" -v b=$lease 'BEGIN {
        printf "RESULT bench=failover value=%.0f unit=ms baseline=%.0f ratio=%.3f\n", v, b, v / b }'
    echo "INFO bench=failover runs=\"$(tr '\n' ' ' <"$dir/failover" | sed 's/ $//')\"" \
        "controllers=$nctl lease_ms=$lease scanNotActiveBrokerInterval=500 brokerHeartbeatInterval=200"
}

# ---- main -------------------------------------------------------------------------------------

echo "bench_repl: brokers from $build, data under $where, $(nproc) cores," \
    "$runs x $secs s per case, load average $(cut -d' ' -f1-3 /proc/loadavg)"
start_namesrv
if [ "${FERRY_BENCH_REPL_THROUGHPUT:-1}" != 0 ]; then
    throughput
fi
if [ "${FERRY_BENCH_FAILOVER:-1}" != 0 ]; then
    if command -v node >/dev/null 2>&1; then
        failover
    else
        echo "SKIP bench=failover: node is required (bench/bench_failover.js)" >&2
    fi
fi
