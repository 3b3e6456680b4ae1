#!/bin/sh
# `make bench`: every FerryMQ benchmark side by side with its peers (Redis Streams XADD; NATS
# JetStream in the size series) and its ceilings (raw disk, loopback), each figure measured in the same run as its baseline and
# printed as
#
#   RESULT bench=<name> value=<n> unit=<u> baseline=<n> ratio=<value/baseline>
#
# then written to docs/BENCHMARKS.md with PNG plots in docs/bench/ (gnuplot). Series:
#
#   size       ASYNC_FLUSH, mqbench -a -p 16 -i 16 (16 producers x 16 sends in flight) with
#              128 B .. 64 KiB bodies  vs  redis-benchmark -c 16 -P 16 XADD (appendfsync
#              everysec), NATS JetStream (bench/nats/natsbench.go -a -p 16 -i 16: 16
#              connections x 16 PublishAsync acks in flight, file storage; it fsyncs every
#              2 min), raw disk (append + fdatasync every 500 ms) and loopback (16
#              connections x 16 requests in flight to bench_e2e_echo)
#   producers  SYNC_FLUSH, mqbench -w N (N threads in ferry_send_sync, one producer), 1 KiB,
#              N = 1 4 16 64 128  vs  redis-benchmark -c N -P 1 (appendfsync always), raw disk
#              (write N records + fdatasync: a perfect group commit) and loopback (1
#              connection, N requests in flight); no NATS: JetStream 2.9 cannot fsync each
#              write, so it has no SYNC_FLUSH counterpart
#   latency    p50/p99/p999 of mqbench -w 16 -s 1024 under SYNC_FLUSH and ASYNC_FLUSH  vs
#              redis-benchmark -c 16 -P 1 (always / everysec)
#   recovery   fill a fresh store with N MiB, kill -9 ferrymq, time from its restart until a
#              pull (example_pull_consumer) returns the first message  vs  read() of the same
#              CommitLog bytes
#   memory     VmHWM of ferrymq vs redis-server at the end of the size and producers series
#
#   bench/bench_all.sh [builddir]          builddir defaults to build
#
# Environment:
#   FERRY_BENCH_QUICK=1     development: 1 run x 2 s per point, small recovery sizes
#   FERRY_BENCH_RUNS=n      runs per point, medians kept (default 3; quick 1)
#   FERRY_BENCH_SECS=s      seconds per run (default 4; quick 2)
#   FERRY_BENCH_RECOVERY_MIB="..."  CommitLog sizes (default "256 1024 2048"; quick "16 64 128")
#   FERRY_BENCH_SERIES="..."  any of size producers latency recovery (default all; memory comes
#                           with size and producers)
#   FERRY_BENCH_DIR=dir     where the stores, the AOF and the disk ceiling's file go (default
#                           bench/out; tmpfs is refused)
#   FERRY_BENCH_DOC=file    the report (default docs/BENCHMARKS.md; plots go to
#                           <its dir>/bench/*.png)
#   FERRY_BENCH_NOBUILD=1   use the binaries already in builddir
#   FERRY_BENCH_KEEP=1      keep the run's directory
#
# Needs redis-server, redis-benchmark and gnuplot (`scripts/install-deps.sh --bench`), and for
# the NATS column nats-server, golang-go and golang-github-nats-io-go-nats-dev (same script;
# without them NATS is skipped with a note). Every process started here is stopped on exit, also
# on Ctrl-C; the temporary directory is removed.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
build=${1:-build}
case $build in
/*) ;;
*) build=$root/$build ;;
esac
prog=bench_all
if [ "${FERRY_BENCH_QUICK:-0}" = 1 ]; then
    runs=${FERRY_BENCH_RUNS:-1}
    secs=${FERRY_BENCH_SECS:-2}
    rec_sizes=${FERRY_BENCH_RECOVERY_MIB:-16 64 128}
    mode=quick
else
    runs=${FERRY_BENCH_RUNS:-3}
    secs=${FERRY_BENCH_SECS:-4}
    rec_sizes=${FERRY_BENCH_RECOVERY_MIB:-256 1024 2048}
    mode=full
fi
series=${FERRY_BENCH_SERIES:-size producers latency recovery}
doc=${FERRY_BENCH_DOC:-$root/docs/BENCHMARKS.md}
case $doc in
/*) ;;
*) doc=$(pwd)/$doc ;;
esac
plotdir=$(dirname "$doc")/bench
sizes="128 1024 4096 16384 65536"
threads="1 4 16 64 128"
size_prod=16 # size series: producers (connections) ...
size_infl=16 # ... each with this many sends in flight
lat_threads=16
conns=16
inflight=16

for tool in redis-server redis-benchmark redis-cli ss gnuplot; do
    command -v $tool >/dev/null 2>&1 || {
        echo "bench_all.sh: $tool is required (scripts/install-deps.sh --bench)" >&2
        exit 2
    }
done

# shellcheck source=bench/lib.sh
. "$here/lib.sh"
cd "$root"
t_start=$(date +%s)
bench_build ferrymq mqbench mqadmin example_pull_consumer
pull=$build/src/client/example_pull_consumer
[ -x "$pull" ] || pull=$(find "$build" -name example_pull_consumer -type f -perm -u+x | head -1)
mkdir -p "$build/bench"
ceiling=$build/bench/bench_ceiling
echo_bin=$build/bench/bench_e2e_echo
for b in bench_ceiling bench_e2e_echo; do
    if [ ! -x "$build/bench/$b" ] || [ "$here/$b.c" -nt "$build/bench/$b" ]; then
        ${CC:-cc} -std=gnu11 -O2 -Wall -Wextra -Werror -o "$build/bench/$b" "$here/$b.c"
    fi
done
# NATS JetStream, the size series' second peer: measured when nats-server and natsbench are there.
if nats_missing=$(nats_build 2>&1 >/dev/null); then
    nats_missing=""
else
    nats_missing=$(echo "${nats_missing:-natsbench did not build}" | tail -1)
    echo "bench_all: NATS JetStream skipped: $nats_missing" >&2
fi
natsbench=$build/bench/natsbench

# ---- the run's directory, on a real disk ----------------------------------------------------
out=${FERRY_BENCH_DIR:-$root/bench/out}
mkdir -p "$out"
fstype=$(stat -f -c %T "$out" 2>/dev/null || echo unknown)
case $fstype in
tmpfs | ramfs)
    echo "bench_all.sh: $out is on $fstype, not a disk (set FERRY_BENCH_DIR)" >&2
    exit 2
    ;;
esac
dir=$(mktemp -d "$out/bench_all.XXXXXX")
fm_pid=""
redis_pid=""
nats_pid=""
echo_pid=""
cleanup() {
    stop_pid "$fm_pid"
    stop_pid "$redis_pid"
    stop_pid "$nats_pid"
    stop_pid "$echo_pid"
    fm_pid=""
    redis_pid=""
    nats_pid=""
    echo_pid=""
    if [ "${FERRY_BENCH_KEEP:-0}" = 1 ]; then
        echo "bench_all: kept $dir"
    else
        rm -rf "$dir"
        rmdir "$out" 2>/dev/null || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
res=$dir/results # one line per figure: series x name value unit baseline ratio what-baseline

# ---- machine ------------------------------------------------------------------------------
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
mem=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
dev=$(df -P "$out" | awk 'NR == 2 { print $1 }')
mfs=$(awk -v d="$dev" '$1 == d { print $3; exit }' /proc/mounts)
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null | wc -l)
load0=$(cut -d' ' -f1-3 /proc/loadavg)
echo "bench_all: $mode mode, $runs run(s) x $secs s per point; data under $dir (${mfs:-$fstype})"
echo "bench_all: $(nproc) cores ($cpu), $mem, Linux $(uname -r), commit $commit, load $load0"

# ---- helpers --------------------------------------------------------------------------------
# Records a figure: prints its RESULT line and appends it to $res.
emit() { # series x name value unit baseline what-baseline
    line=$(awk -v n="$3" -v v="$4" -v u="$5" -v b="$6" 'BEGIN {
        printf "RESULT bench=%s value=%.6g unit=%s baseline=%.6g ratio=%.3f", n, v, u, b, (b > 0 ? v / b : 0) }')
    echo "$line"
    echo "$1 $2 $3 $4 $5 $6 $(echo "$line" | sed 's/.*ratio=//') $7" >>"$res"
}

# One redis-benchmark XADD run of about $secs seconds: prints "rps p50_ms p99_ms p999_ms". The
# stream is capped at about 256 MiB (XADD MAXLEN ~) so that 64 KiB bodies cannot fill the RAM.
rrate=""
redis_point() { # clients pipeline size
    payload=$(head -c "$3" /dev/zero | tr '\0' r)
    cap=$((268435456 / $3))
    if [ -z "$rrate" ]; then
        rrate=$(redis_xadd "$1" "$2" "$payload" "$cap" $((2000 * $2 + 2000)) | cut -d' ' -f1)
    fi
    r=$(redis_xadd "$1" "$2" "$payload" "$cap" "$(awk -v r="$rrate" -v s="$secs" 'BEGIN { printf "%d", r * s + 100 }')")
    rrate=$(echo "$r" | cut -d' ' -f1)
    echo "$r"
}
redis_xadd() { # clients pipeline payload maxlen count
    redis-cli -p "$redis_port" del bench >/dev/null
    redis-benchmark -p "$redis_port" -c "$1" -P "$2" -n "$5" XADD bench MAXLEN '~' "$4" '*' f "$3" 2>&1 |
        tr '\r' '\n' | awk '
        /^Latency by percentile/ { d = 1 }
        /^Cumulative distribution/ { d = 0 }
        d && /%/ { p = $1; sub("%", "", p); if (p + 0 >= 99.9 && p999 == "") p999 = $3 }
        /throughput summary/ { rps = $3 }
        /avg +min +p50/ { getline; p50 = $3; p99 = $5 }
        END { printf "%s %s %s %s\n", rps, p50, p99, p999 }'
}

start_echo() {
    echo_port=$(free_port)
    "$echo_bin" "$echo_port" >"$dir/echo.out" 2>&1 &
    echo_pid=$!
    i=0
    until grep -q ready "$dir/echo.out"; do
        i=$((i + 1))
        [ $i -lt 100 ] || { echo "bench_all: bench_e2e_echo did not come up" >&2; exit 1; }
        sleep 0.05
    done
}

# The broker's commitLogMaxOffset (mqadmin brokerStatus).
cl_offset() {
    "$mqadmin" brokerStatus -b "127.0.0.1:$br_port" | awk '$1 == "commitLogMaxOffset" { print $3 }'
}

# FerryMQ's CommitLog record of a body of this size on BenchTopic with mqbench's properties,
# for the disk ceiling (fixed fields, topic and properties: 184 B, measured with
# commitLogMaxOffset).
record_of() { echo $(($1 + 184)); }

proc_kb() { # pid field (VmHWM, VmRSS, RssAnon, RssFile): kB
    awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0
}

memory() { # phase
    fh=$(proc_kb "$fm_pid" VmHWM)
    rh=$(proc_kb "$redis_pid" VmHWM)
    emit memory "$1" "mem_hwm_$1" "$fh" KiB "$rh" redis
    [ -z "$nats_pid" ] || echo "INFO bench=mem_hwm_$1 nats_hwm_kb=$(proc_kb "$nats_pid" VmHWM)" \
        "nats_rss_kb=$(proc_kb "$nats_pid" VmRSS) nats_anon_kb=$(proc_kb "$nats_pid" RssAnon)" | tee -a "$dir/info"
    echo "INFO bench=mem_hwm_$1 ferry_rss_kb=$(proc_kb "$fm_pid" VmRSS)" \
        "ferry_anon_kb=$(proc_kb "$fm_pid" RssAnon) ferry_file_kb=$(proc_kb "$fm_pid" RssFile)" \
        "redis_rss_kb=$(proc_kb "$redis_pid" VmRSS) redis_anon_kb=$(proc_kb "$redis_pid" RssAnon)" |
        tee -a "$dir/info"
    echo "$1 $(proc_kb "$fm_pid" RssAnon) $(proc_kb "$fm_pid" RssFile) $(proc_kb "$redis_pid" RssAnon)" >>"$dir/mem"
}

col() { cut -d' ' -f"$1" "$2" | median; }

# A point: $runs rounds of (redis, ferry, [nats,] disk, loopback), medians; a RESULT line per
# baseline. ferry options are the mqbench producer options; disk/loop arguments for
# bench_ceiling; nats options (natsbench) when NATS runs ($nats_pid) and the series has them.
point() { # series x name redis_clients redis_pipeline size "mqbench opts" "disk args" "loop args" ["nats opts"]
    : >"$dir/r" && : >"$dir/f" && : >"$dir/d" && : >"$dir/l" && : >"$dir/b" && : >"$dir/n"
    nopts=""
    [ -z "$nats_pid" ] || nopts=${10:-}
    rrate=""
    run=0
    while [ $run -lt "$runs" ]; do
        redis_point "$4" "$5" "$6" >>"$dir/r"
        off0=$(cl_offset)
        # shellcheck disable=SC2086
        ferry_run $7 >>"$dir/f"
        # CommitLog bytes per message (libferry zlib-compresses bodies of 4 KiB and more).
        tail -1 "$dir/f" | awk -v a="$off0" -v b="$(cl_offset)" '{ printf "%.0f\n", ($5 > 0 ? (b - a) / $5 : 0) }' >>"$dir/b"
        # shellcheck disable=SC2086
        [ -z "$nopts" ] || nats_run $nopts >>"$dir/n"
        # shellcheck disable=SC2086
        "$ceiling" disk "$dir/disk.dat" $8 | field ops >>"$dir/d"
        # shellcheck disable=SC2086
        "$ceiling" loop "$echo_port" $9 | field ops >>"$dir/l"
        run=$((run + 1))
    done
    fv=$(col 1 "$dir/f")
    emit "$1" "$2" "$3_vs_redis" "$fv" msg/s "$(col 1 "$dir/r")" redis
    [ -z "$nopts" ] || emit "$1" "$2" "$3_vs_nats" "$fv" msg/s "$(col 1 "$dir/n")" nats
    emit "$1" "$2" "$3_vs_disk" "$fv" msg/s "$(median <"$dir/d")" disk
    emit "$1" "$2" "$3_vs_loopback" "$fv" msg/s "$(median <"$dir/l")" loopback
    echo "$1 $2 $(median <"$dir/b")" >>"$dir/stored"
    echo "INFO bench=$3 ferry_p50_ms=$(col 2 "$dir/f") ferry_p99_ms=$(col 3 "$dir/f")" \
        "ferry_p999_ms=$(col 4 "$dir/f") redis_p50_ms=$(col 2 "$dir/r") redis_p99_ms=$(col 3 "$dir/r")" \
        "redis_p999_ms=$(col 4 "$dir/r") ferry_stored_bytes_per_msg=$(median <"$dir/b")" \
        "ferry_runs=\"$(cut -d' ' -f1 "$dir/f" | tr '\n' ' ' | sed 's/ $//')\"" \
        "redis_runs=\"$(cut -d' ' -f1 "$dir/r" | awk '{ printf "%s%.0f", (NR > 1 ? " " : ""), $1 }')\"" |
        tee -a "$dir/info"
    [ -z "$nopts" ] || echo "INFO bench=$3 nats_p50_ms=$(col 2 "$dir/n") nats_p99_ms=$(col 3 "$dir/n")" \
        "nats_p999_ms=$(col 4 "$dir/n")" \
        "nats_runs=\"$(cut -d' ' -f1 "$dir/n" | tr '\n' ' ' | sed 's/ $//')\"" | tee -a "$dir/info"
}

latency() { # flushDiskType
    : >"$dir/r" && : >"$dir/f"
    rrate=""
    run=0
    while [ $run -lt "$runs" ]; do
        redis_point $lat_threads 1 1024 >>"$dir/r"
        ferry_run -w $lat_threads -s 1024 >>"$dir/f"
        run=$((run + 1))
    done
    fl=$(echo "$1" | tr 'A-Z' 'a-z')
    emit latency "${fl}_p50" "latency_${fl}_p50" "$(col 2 "$dir/f")" ms "$(col 2 "$dir/r")" redis
    emit latency "${fl}_p99" "latency_${fl}_p99" "$(col 3 "$dir/f")" ms "$(col 3 "$dir/r")" redis
    emit latency "${fl}_p999" "latency_${fl}_p999" "$(col 4 "$dir/f")" ms "$(col 4 "$dir/r")" redis
}

on() { case " $series " in *" $1 "*) return 0 ;; esac; return 1; }
loads=""
phase_load() { loads="$loads $1:$(cut -d' ' -f1 /proc/loadavg)"; }

: >"$res"
: >"$dir/info"
: >"$dir/stored"
: >"$dir/mem"
: >"$dir/recinfo"
start_echo

# ---- size series and ASYNC_FLUSH latency ----------------------------------------------------
if on size || on latency; then
    phase_load async
    start_ferrymq ASYNC_FLUSH
    start_redis everysec
    "$mqbench" producer -n "$namesrv" -t BenchTopic -a -p $size_prod -i $size_infl -d 1 >/dev/null
    if on size; then
        if [ -z "$nats_missing" ]; then
            start_nats size
            "$natsbench" -url "$nats_url" -a -p $size_prod -i $size_infl -d 1 >/dev/null # warm-up
        fi
        for s in $sizes; do
            echo "bench_all: size $s B"
            point size "$s" "size_${s}B_async" $size_prod $size_infl "$s" \
                "-a -p $size_prod -i $size_infl -s $s" \
                "$(record_of "$s") 0 $secs 2048" "$size_prod $size_infl $s $secs" \
                "-a -p $size_prod -i $size_infl -s $s"
        done
        memory async_size_series
        stop_pid "$nats_pid"
        nats_pid=""
        rm -rf "$dir/nats-size"
        if on latency; then
            # A fresh store: the size series leaves ~17 GiB behind, enough to push a small
            # disk over diskSpaceWarningLevelRatio (sends refused: no latency to measure).
            stop_pid "$fm_pid"
            rm -rf "$dir/store-ASYNC_FLUSH"
            start_ferrymq ASYNC_FLUSH
            "$mqbench" producer -n "$namesrv" -t BenchTopic -a -p $size_prod -i $size_infl -d 1 >/dev/null
        fi
    fi
    on latency && latency ASYNC_FLUSH
    stop_pid "$fm_pid"
    stop_pid "$redis_pid"
    fm_pid=""
    redis_pid=""
    rm -rf "$dir/store-ASYNC_FLUSH" "$dir/redis-everysec"
fi

# ---- producers series and SYNC_FLUSH latency ------------------------------------------------
if on producers || on latency; then
    phase_load sync
    start_ferrymq SYNC_FLUSH
    start_redis always
    "$mqbench" producer -n "$namesrv" -t BenchTopic -w 16 -d 1 >/dev/null
    if on producers; then
        for n in $threads; do
            echo "bench_all: $n producer thread(s)"
            point producers "$n" "producers_${n}_sync" "$n" 1 1024 "-w $n -s 1024" \
                "$(record_of 1024) $n $secs 64" "1 $n 1024 $secs"
        done
        memory sync_producers_series
    fi
    on latency && latency SYNC_FLUSH
    stop_pid "$fm_pid"
    stop_pid "$redis_pid"
    fm_pid=""
    redis_pid=""
    rm -rf "$dir/store-SYNC_FLUSH" "$dir/redis-always"
fi
stop_pid "$echo_pid"
echo_pid=""

# ---- recovery -------------------------------------------------------------------------------
# Time from the restart of a kill -9'ed ferrymq until a pull returns the first message; the
# store is filled within the first checkpoint interval, so the scan covers the whole CommitLog.
probe() { # deadline (epoch s): polls until a pull gets a message
    while :; do
        if timeout 10 "$pull" -n "$namesrv" -g "GID_probe_$$" -t BenchTopic --from-first --max 1 \
            >"$dir/probe.out" 2>"$dir/probe.err" && grep -q '^MSG' "$dir/probe.out"; then
            return 0
        fi
        if ! kill -0 "$fm_pid" 2>/dev/null && tail -n 3 "$fm_log" | grep -q 'address already in use'; then
            wait "$fm_pid" 2>/dev/null || true
            return 1 # a port taken between free_port and the bind: the caller restarts
        fi
        if ! kill -0 "$fm_pid" 2>/dev/null || [ "$(date +%s)" -ge "$1" ]; then
            echo "bench_all: no pull served after the restart; the pull's stderr:" >&2
            cat "$dir/probe.err" >&2
            echo "bench_all: the end of $fm_log:" >&2
            tail -n 30 "$fm_log" >&2
            cp "$fm_log" "${TMPDIR:-/tmp}/bench_all_ferrymq_$$.log" 2>/dev/null &&
                echo "bench_all: the whole log: ${TMPDIR:-/tmp}/bench_all_ferrymq_$$.log" >&2
            exit 1
        fi
        sleep 0.02
    done
}
now_ms() { date +%s%3N; }
if on recovery; then
    phase_load recovery
    for mib in $rec_sizes; do
        : >"$dir/rec" && : >"$dir/read"
        retries=0
        run=0
        while [ $run -lt "$runs" ]; do
            rm -rf "$dir/store-ASYNC_FLUSH"
            : >"$dir/ferrymq-ASYNC_FLUSH.log"
            start_ferrymq ASYNC_FLUSH
            # 4000 B bodies: below libferry's compression threshold (4096), stored as they are.
            count=$((mib * 1048576 / $(record_of 4000) + 1))
            "$mqbench" producer -n "$namesrv" -t BenchTopic -a -p 4 -i 16 -s 4000 -c "$count" |
                grep '^SUMMARY' >"$dir/fill"
            kill -9 "$fm_pid"
            wait "$fm_pid" 2>/dev/null || true
            fm_pid=""
            # The restart listens on two new ports: the killed process's sockets may still hold
            # the old ones for a moment (and a busy machine's clients may take them). A start
            # that still finds a port taken is retried (INFO restarts=).
            tries=0
            while :; do
                ferrymq_conf ASYNC_FLUSH
                t0=$(now_ms)
                "$ferrymq" -c "$conf" >>"$fm_log" 2>&1 &
                fm_pid=$!
                probe $(($(date +%s) + 120)) && break
                tries=$((tries + 1))
                echo "bench_all: ferrymq found a port taken; restarting on others" >&2
                [ $tries -lt 3 ] || exit 1
            done
            t1=$(now_ms)
            retries=$((retries + tries))
            # The CommitLog end the recovery found, and the baseline: read() of those bytes.
            end=$(sed -n 's/.*recovery (abnormal): CommitLog \[[0-9]*, \([0-9]*\)).*/\1/p' "$fm_log" | tail -1)
            [ -n "$end" ] || { echo "bench_all: no abnormal recovery in $fm_log" >&2; tail -5 "$fm_log" >&2; exit 1; }
            inner=$(sed -n 's/.*recovery (abnormal):.* in \([0-9]*\) ms.*/\1/p' "$fm_log" | tail -1)
            stop_pid "$fm_pid"
            fm_pid=""
            scanned=$(sed -n 's/.*recovery (abnormal):.* scanned \([0-9]*\) records from \([0-9]*\) .*/\1@\2/p' "$fm_log" | tail -1)
            r0=$(now_ms)
            left=$end
            for seg in $(find "$store/commitlog" -type f | sort); do
                [ "$left" -gt 0 ] || break
                dd if="$seg" of=/dev/null bs=1M count="$left" iflag=count_bytes status=none
                left=$((left - $(stat -c %s "$seg")))
            done
            r1=$(now_ms)
            echo "$((t1 - t0)) $inner $end $scanned" >>"$dir/rec"
            echo "$((r1 - r0))" >>"$dir/read"
            run=$((run + 1))
        done
        emit recovery "$mib" "recovery_${mib}MiB" "$(col 1 "$dir/rec")" ms "$(median <"$dir/read")" read
        echo "$mib $(col 2 "$dir/rec") $(col 3 "$dir/rec") $(cut -d' ' -f4 "$dir/rec" | tail -1)" >>"$dir/recinfo"
        echo "INFO bench=recovery_${mib}MiB commitlog_bytes=$(col 3 "$dir/rec")" \
            "scanned_records@from=\"$(cut -d' ' -f4 "$dir/rec" | tr '\n' ' ' | sed 's/ $//')\"" \
            "store_recovery_ms=$(col 2 "$dir/rec") restarts=$retries fill=\"$(cut -d' ' -f2-6 "$dir/fill")\"" |
            tee -a "$dir/info"
        rm -rf "$dir/store-ASYNC_FLUSH"
    done
fi
phase_load end
t_end=$(date +%s)
echo "bench_all: $((t_end - t_start)) s; load average (1 min) at each phase:$loads"

# ---- plots and docs/BENCHMARKS.md ---------------------------------------------------------
mkdir -p "$plotdir"
# The series as columns: x ferry redis disk loopback (msg/s).
table() { # series
    awk -v s="$1" '$1 == s {
        x = $2; if (!(x in seen)) { seen[x] = 1; xs[++n] = x }
        v[x] = $4; b[x, $8] = $6 }
        END { for (i = 1; i <= n; i++) { x = xs[i]; print x, v[x], b[x, "redis"] + 0, b[x, "disk"] + 0, b[x, "loopback"] + 0, b[x, "nats"] + 0 } }' "$res"
}
plot_series() { # series png title xlabel logx
    table "$1" >"$dir/$1.dat"
    [ -s "$dir/$1.dat" ] || return 0
    nats_plot=""
    awk '$6 > 0 { f = 1 } END { exit !f }' "$dir/$1.dat" && nats_plot=', "" u 1:6 w lp pt 9 t "NATS JetStream"'
    gnuplot <<EOF
set terminal pngcairo size 720,420 font "sans,9" noenhanced
set output "$plotdir/$2"
set title "$3"
set xlabel "$4"
set ylabel "messages/s"
set logscale y
$5
set key outside right
set grid
plot "$dir/$1.dat" u 1:2 w lp lw 2 pt 7 t "FerryMQ", \
     "" u 1:3 w lp pt 5 t "Redis XADD", \
     "" u 1:4 w l dt 2 t "raw disk", \
     "" u 1:5 w l dt 3 t "loopback"$nats_plot
EOF
}
plot_series size size.png "Throughput vs body size (ASYNC_FLUSH, 16 x 16 in flight)" "body bytes" "set logscale x 2"
plot_series producers producers.png "Throughput vs producer threads (SYNC_FLUSH, 1 KiB, sync sends)" "threads" "set logscale x 2"
awk '$1 == "latency" { print $2, $4, $6 }' "$res" >"$dir/lat.dat"
if [ -s "$dir/lat.dat" ]; then
    gnuplot <<EOF
set terminal pngcairo size 720,420 font "sans,9" noenhanced
set output "$plotdir/latency.png"
set title "Send latency, 16 threads, 1 KiB (lower is better)"
set ylabel "ms"
set logscale y
set style data histogram
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set xtics rotate by -30
set grid ytics
plot "$dir/lat.dat" u 2:xtic(1) t "FerryMQ", "" u 3 t "Redis XADD"
EOF
fi
awk '$1 == "recovery" { print $2, $4, $6 }' "$res" >"$dir/rec.dat"
if [ -s "$dir/rec.dat" ]; then
    gnuplot <<EOF
set terminal pngcairo size 720,420 font "sans,9" noenhanced
set output "$plotdir/recovery.png"
set title "Restart after kill -9 until the first pull is served"
set xlabel "CommitLog MiB"
set ylabel "ms"
set key left top
set grid
plot "$dir/rec.dat" u 1:2 w lp lw 2 pt 7 t "FerryMQ restart to first pull", \
     "" u 1:3 w lp pt 5 t "read() of the CommitLog bytes"
EOF
fi

nats_note() {
    if awk '$8 == "nats" { f = 1 } END { exit !f }' "$res"; then
        echo "NATS JetStream $(nats-server --version | awk '{ sub("^v", "", $NF); print $NF }') (Debian's nats-server, \`-js\`, one server) is"
        echo "the second peer of the size series: a stream \`BENCH\` on file storage"
        echo "(replicas 1, capped at 256 MiB with discard old, as Redis's MAXLEN), recreated before"
        echo "each run, driven by bench/nats/natsbench.go (nats.go $nats_go_version from Debian's"
        echo "golang-github-nats-io-go-nats-dev, built offline): \`-a -p $size_prod -i $size_infl -s <size>\`, $size_prod"
        echo "connections each with $size_infl \`js.PublishAsync\` acks in flight, incompressible bodies,"
        echo "latency from the publish call to the stream's ack."
    else
        echo "NATS JetStream was not measured in this run (${nats_missing:-the size series did not run});"
        echo "\`scripts/install-deps.sh --bench\` installs what it needs (nats-server, golang-go,"
        echo "golang-github-nats-io-go-nats-dev)."
    fi
    echo
    echo "Its durability, checked in the nats-server 2.9.10 sources (server/stream.go,"
    echo "server/filestore.go): a stream's file store writes each message to its block file (a"
    echo "write(2) into the page cache) before the ack, and fsyncs the blocks from a timer every"
    echo "2 minutes (\`SyncInterval = 2 * time.Minute\`, not configurable in 2.9). An acknowledged"
    echo "message survives a kill -9 of the server but not a crash of the machine within those 2"
    echo "minutes: weaker than ASYNC_FLUSH (fsync every 500 ms) and Redis everysec (1 s), so the"
    echo "size-series pairing favours NATS. It is left out of the SYNC_FLUSH series (producers,"
    echo "latency): JetStream 2.9 has no way to fsync before the ack, so no figure of it would"
    echo "compare with an fsync per group commit."
}

fmt_rows() { # series [nats] -> markdown rows: x | value | baseline | ratio per kind | stored B/msg
    awk -v s="$1" -v nats="${2:-}" 'FILENAME != ARGV[1] { if ($1 == s) st[$2] = $3; next }
        $1 == s {
        x = $2; if (!(x in seen)) { seen[x] = 1; xs[++n] = x }
        v[x] = $4; b[x, $8] = $6; r[x, $8] = $7 }
        END { for (i = 1; i <= n; i++) { x = xs[i]
            printf "| %s | %.0f | %.0f | %.2f |", x, v[x], b[x, "redis"], r[x, "redis"]
            if (nats) printf " %.0f | %.2f |", b[x, "nats"], r[x, "nats"]
            printf " %.0f | %.2f | %.0f | %.2f | %s |\n", b[x, "disk"], r[x, "disk"], b[x, "loopback"], r[x, "loopback"], st[x] } }' "$res" "$dir/stored"
}

nats_go_version=$(dpkg-query -W -f '${Version}' golang-github-nats-io-go-nats-dev 2>/dev/null | sed 's/-[^-]*$//')
tmpdoc=$dir/BENCHMARKS.md
{
    echo "# FerryMQ benchmarks"
    echo
    echo "Generated by \`make bench\` (bench/bench_all.sh); do not edit by hand, except the"
    echo "Replication section (bench/bench_repl.sh, \`make bench-e2e\`), which \`make bench\` keeps as"
    echo "it is. Every figure was measured in the same run as its baseline (a peer or a ceiling) and"
    echo "is shown with the ratio value / baseline. Throughput medians of $runs run(s) of $secs s per"
    echo "point ($mode mode)."
    echo
    echo "## Machine"
    echo
    echo "| | |"
    echo "|---|---|"
    echo "| date | $(date -u '+%Y-%m-%d %H:%M UTC') |"
    echo "| git commit | $commit$([ "$dirty" -gt 0 ] && echo " (working tree with $dirty modified files)") |"
    echo "| CPU | $(nproc) x $cpu |"
    echo "| RAM | $mem |"
    echo "| kernel | Linux $(uname -r) |"
    echo "| data dir file system | ${mfs:-$fstype} ($dev) |"
    echo "| Redis | $(redis-server --version | awk '{ sub("v=", "", $3); print $3 }') |"
    [ -n "$nats_missing" ] || echo "| NATS | nats-server $(nats-server --version | awk '{ sub("^v", "", $NF); print $NF }'), nats.go $nats_go_version |"
    echo "| load average (1 min) at start, at each phase | $load0 /$loads |"
    echo "| duration | $((t_end - t_start)) s |"
    echo
    echo "The machine is shared (2 cores, other builds and tests running): the load average above"
    echo "says how busy it was, and the figures are noisy accordingly."
    echo
    echo "## Reproduce"
    echo
    echo '```sh'
    echo 'make bench                                     # ~12 min on 2 cores: 3 runs x 4 s per point'
    echo 'FERRY_BENCH_QUICK=1 make bench                 # ~2.7 min: 1 run x 2 s per point'
    echo 'FERRY_BENCH_QUICK=1 bench/bench_all.sh build-bench   # another build directory'
    echo '```'
    echo
    echo "Peers and ceilings: Redis Streams (\`redis-benchmark ... XADD bench MAXLEN ~ <256 MiB /"
    echo "size> '*' f <body>\`, AOF on, appendfsync always for SYNC_FLUSH and everysec for"
    echo "ASYNC_FLUSH, no RDB, no AOF rewrite); raw disk (bench/bench_ceiling.c \`disk\`: pwrite of"
    echo "records of the CommitLog record size, body + 184 B, into a file in the same directory as the"
    echo "stores, then fdatasync); loopback (bench/bench_ceiling.c \`loop\`: RocketMQ remoting"
    echo "request frames of the body size to bench/bench_e2e_echo.c, which answers each at once with"
    echo "a header-only frame). FerryMQ is the standalone \`ferrymq\` (name server + broker in one"
    echo "process) driven by \`mqbench\` (tools/mqbench.c, libferry), BenchTopic with 8 queues."
    echo
    nats_note
    echo
    echo "## Throughput vs body size (ASYNC_FLUSH)"
    echo
    echo "mqbench \`-a -p $size_prod -i $size_infl -s <size>\` ($size_prod producers, each its own"
    echo "connection, $size_infl async sends in flight) vs \`redis-benchmark -c $size_prod -P $size_infl\`; disk"
    echo "ceiling: records appended with an fdatasync every 500 ms (flushIntervalCommitLog); loopback:"
    echo "$size_prod connections x $size_infl requests in flight. msg/s; ratio = FerryMQ / baseline."
    echo
    echo "libferry zlib-compresses bodies of 4096 B and more (\`compressMsgBodyOverHowmuch\`,"
    echo "RocketMQ's default); mqbench's bodies are incompressible printable bytes, so the client pays"
    echo "for a compression attempt and the CommitLog holds about the whole body (last column), as"
    echo "Redis does (its payload is not compressed)."
    echo
    if awk '$1 == "size" && $8 == "nats" { f = 1 } END { exit !f }' "$res"; then
        echo "NATS JetStream: natsbench \`-a -p $size_prod -i $size_infl -s <size>\` (see above; fsync every 2 min)."
        echo
        echo "| body B | FerryMQ | Redis | ratio | NATS | ratio | disk | ratio | loopback | ratio | FerryMQ CommitLog B/msg |"
        echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        fmt_rows size nats
    else
        echo "| body B | FerryMQ | Redis | ratio | disk | ratio | loopback | ratio | FerryMQ CommitLog B/msg |"
        echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        fmt_rows size
    fi
    echo
    [ -f "$plotdir/size.png" ] && echo "![throughput vs size](bench/size.png)" && echo
    echo "## Throughput vs producer threads (SYNC_FLUSH, 1 KiB)"
    echo
    echo "mqbench \`-w <N> -s 1024\` (N threads in ferry_send_sync on one producer) vs"
    echo "\`redis-benchmark -c <N> -P 1\` with appendfsync always; disk ceiling: N records written then"
    echo "one fdatasync (a perfect group commit of N senders; N = 1 is write + fdatasync per record);"
    echo "loopback: 1 connection with N requests in flight. msg/s."
    echo
    echo "| threads | FerryMQ | Redis | ratio | disk | ratio | loopback | ratio | FerryMQ CommitLog B/msg |"
    echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    fmt_rows producers
    echo
    [ -f "$plotdir/producers.png" ] && echo "![throughput vs producers](bench/producers.png)" && echo
    echo "## Latency percentiles (16 threads, sync sends, 1 KiB)"
    echo
    echo "mqbench \`-w 16 -s 1024\` vs \`redis-benchmark -c 16 -P 1\`, medians of the per-run"
    echo "percentiles (mqbench: log-linear histogram, ~3 %; redis-benchmark: its HDR histogram, p999"
    echo "is its first reported percentile >= 99.9). ms; ratio = FerryMQ / Redis (lower is better)."
    echo
    echo "| flush, percentile | FerryMQ ms | Redis ms | ratio |"
    echo "|---|---:|---:|---:|"
    awk '$1 == "latency" { printf "| %s | %.3f | %.3f | %.2f |\n", $2, $4, $6, $7 }' "$res"
    echo
    [ -f "$plotdir/latency.png" ] && echo "![latency](bench/latency.png)" && echo
    echo "## Recovery time vs CommitLog size"
    echo
    echo "A fresh ASYNC_FLUSH store is filled with N MiB (4000 B bodies), ferrymq is killed with"
    echo "SIGKILL and restarted; the figure is the time from the restart until"
    echo "\`example_pull_consumer --from-first --max 1\` (polled) got the first message. The store is"
    echo "filled within its first checkpoint interval, so the abnormal recovery scans the whole"
    echo "CommitLog (docs/STORAGE.md section 7; the last column shows it did). Baseline: \`read()\` of"
    echo "the same CommitLog bytes into a 1 MiB buffer (dd, page cache warm as for the recovery). ms;"
    echo "ratio = FerryMQ / baseline."
    echo
    echo "The last two columns come from the store's own log line (\`recovery (abnormal): CommitLog"
    echo "[0, end) ... in N ms\`): the recovery proper; the rest of the restart-to-pull time is the"
    echo "process start, the name server registration and the polling client's start and route"
    echo "lookup."
    echo
    echo "| CommitLog MiB | FerryMQ restart to pull ms | read ms | ratio | store recovery ms | CommitLog bytes | records scanned @ from offset |"
    echo "|---:|---:|---:|---:|---:|---:|---:|"
    awk 'FILENAME == ARGV[1] { inner[$1] = $2; bytes[$1] = $3; sc[$1] = $4; next }
        $1 == "recovery" { printf "| %s | %.0f | %.0f | %.2f | %s | %s | %s |\n", $2, $4, $6, $7, inner[$2], bytes[$2], sc[$2] }' "$dir/recinfo" "$res"
    echo
    [ -f "$plotdir/recovery.png" ] && echo "![recovery](bench/recovery.png)" && echo
    echo "## Memory"
    echo
    echo "Peak resident set (VmHWM) of ferrymq and of redis-server at the end of each series, both"
    echo "having served the same load; then the current split into anonymous memory and mapped files."
    echo "FerryMQ's resident set is almost all mapped CommitLog and ConsumeQueue pages (RssFile: page"
    echo "cache the kernel can drop); Redis keeps the (capped) stream in its heap (RssAnon)."
    echo
    echo "| series | ferrymq VmHWM KiB | redis-server VmHWM KiB | ratio | ferrymq RssAnon / RssFile KiB | redis-server RssAnon KiB |"
    echo "|---|---:|---:|---:|---:|---:|"
    awk 'FILENAME == ARGV[1] { m[$1] = $2 " / " $3 " | " $4; next }
        $1 == "memory" { printf "| %s | %.0f | %.0f | %.2f | %s |\n", $2, $4, $6, $7, m[$2] }' "$dir/mem" "$res"
    echo
    # Sections this script does not measure (bench/bench_repl.sh: "## Replication ...") are
    # kept from the current report as they are.
    [ ! -f "$doc" ] || awk '/^## / { keep = /^## Replication/ } keep' "$doc"
    echo "## All results"
    echo
    echo '```'
    awk '{ printf "RESULT bench=%s value=%s unit=%s baseline=%s ratio=%s\n", $3, $4, $5, $6, $7 }' "$res"
    cat "$dir/info"
    echo '```'
} >"$tmpdoc"
mv "$tmpdoc" "$doc"
echo "bench_all: wrote $doc and $plotdir/*.png"
