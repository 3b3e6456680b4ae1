# shellcheck shell=sh disable=SC2154
# Shared parts of the end-to-end benchmark scripts (bench/bench_e2e.sh, bench_all.sh, bench_repl.sh),
# sourced, not run. POSIX sh. The functions work on the caller's variables:
#
#   prog       name used in messages (e.g. bench_e2e)
#   root       the repository;  build  the build directory (absolute)
#   dir        the run's temporary directory (stores, configs, logs, the Redis AOF)
#   ferrymq mqbench mqadmin      binaries (set by bench_build)
#   secs       seconds per run;  conns  connections/threads;  inflight  sends in flight
#   bench_topic  the topic ferry_run / ferry_case send to (default BenchTopic)
#   fm_pid redis_pid nats_pid    the servers started here (stop them with stop_pid)
#   namesrv    set by start_ferrymq (host:port of its embedded name server)
#   redis_port set by start_redis
#   natsbench  the NATS JetStream client (bench/nats/natsbench.go, built by nats_build)
#   nats_url   set by start_nats

# Configures the build directory when needed, builds the targets named (unless
# FERRY_BENCH_NOBUILD=1), warns about a build that is not optimized, and sets ferrymq, mqbench,
# mqadmin. Call it from $root.
bench_build() { # targets...
    if [ ! -f "$build/CMakeCache.txt" ]; then
        if command -v ninja >/dev/null 2>&1; then
            cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
        else
            cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo
        fi
    fi
    [ "${FERRY_BENCH_NOBUILD:-0}" = 1 ] || cmake --build "$build" --target "$@"
    btype=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$build/CMakeCache.txt")
    sanitize=$(sed -n 's/^FERRY_SANITIZE:[A-Z]*=//p' "$build/CMakeCache.txt")
    case "$btype:$sanitize" in
    Release:OFF | RelWithDebInfo:OFF | Release: | RelWithDebInfo:) ;;
    *) echo "$prog.sh: WARNING: $build is a '$btype' build (FERRY_SANITIZE=$sanitize); numbers are not representative" ;;
    esac
    ferrymq=$build/tools/ferrymq
    mqbench=$build/tools/mqbench
    mqadmin=$build/src/client/mqadmin
}

stop_pid() { # pid: TERM, then KILL after 10 s; always reaped
    [ -n "$1" ] || return 0
    kill "$1" 2>/dev/null || true
    i=0
    while kill -0 "$1" 2>/dev/null && [ $i -lt 100 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    kill -9 "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# A port no TCP socket uses (nor port-2..port+1, RocketMQ's neighbours), below the ephemeral
# range when it leaves room: a client's socket (even in TIME-WAIT) on a port makes a server's
# bind fail. Not atomic, but the servers fail loudly on a taken port.
used_ports() { ss -Htan | awk '{n = split($4, a, ":"); print a[n]}'; }
free_port() {
    lo=$(awk '{ print $1 }' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 50000)
    [ "$lo" -gt 22000 ] || lo=50000
    while :; do
        p=$(awk -v s="$(od -An -N2 -tu2 /dev/urandom)" -v lo="$lo" 'BEGIN { srand(s); print 20000 + int(rand() * (lo - 20002)) }')
        if ! used_ports | grep -qxE "$((p - 2))|$((p - 1))|$p|$((p + 1))"; then
            echo "$p"
            return
        fi
    done
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print 0 }'; }
field() { # key, SUMMARY line on stdin
    tr ' ' '\n' | sed -n "s/^$1=//p"
}

# Writes $dir/ferrymq-<flushDiskType>.conf for a store in $dir/store-<flushDiskType> on two free
# ports, with any further "key=value" lines given; sets conf, store, namesrv, fm_log.
ferrymq_conf() { # flushDiskType [key=value...]
    ns_port=$(free_port)
    br_port=$(free_port)
    store=$dir/store-$1
    conf=$dir/ferrymq-$1.conf
    fm_log=$dir/ferrymq-$1.log
    cat >"$conf" <<EOF
brokerClusterName=BenchCluster
brokerName=bench-a
namesrv.listenAddress=127.0.0.1
namesrv.listenPort=$ns_port
namesrv.kvConfigPath=$dir/kvConfig.json
listenPort=$br_port
bindAddress=127.0.0.1
brokerIP1=127.0.0.1
namesrvAddr=127.0.0.1:$ns_port
autoCreateTopicEnable=true
storePathRootDir=$store
flushDiskType=$1
mappedFileSizeCommitLog=268435456
maxHashSlotNum=500000
maxIndexNum=2000000
EOF
    shift
    for kv in "$@"; do
        echo "$kv" >>"$conf"
    done
    namesrv=127.0.0.1:$ns_port
}

# Starts ferrymq on $conf (log appended to $fm_log) and waits until BenchTopic (8 queues) is
# created through its name server.
ferrymq_launch() {
    "$ferrymq" -c "$conf" >>"$fm_log" 2>&1 &
    fm_pid=$!
    i=0
    until "$mqadmin" updateTopic -n "$namesrv" -t BenchTopic -r 8 -w 8 -c BenchCluster >/dev/null 2>&1; do
        kill -0 "$fm_pid" 2>/dev/null || { tail -20 "$fm_log" >&2; exit 1; }
        i=$((i + 1))
        [ $i -lt 200 ] || { echo "$prog: ferrymq did not come up" >&2; exit 1; }
        sleep 0.1
    done
}

start_ferrymq() { # flushDiskType [key=value...]
    ferrymq_conf "$@"
    ferrymq_launch
}

start_redis() { # appendfsync
    redis_port=$(free_port)
    rdir=$dir/redis-$1
    mkdir -p "$rdir"
    # No AOF rewrites during the run (a stronger baseline: no fork), no RDB snapshots.
    redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$rdir" --appendonly yes --save '' \
        --appendfsync "$1" --auto-aof-rewrite-percentage 0 --daemonize no \
        --logfile "$rdir/redis.log" &
    redis_pid=$!
    i=0
    until redis-cli -p "$redis_port" ping >/dev/null 2>&1; do
        kill -0 "$redis_pid" 2>/dev/null || { tail -20 "$rdir/redis.log" >&2; exit 1; }
        i=$((i + 1))
        [ $i -lt 100 ] || { echo "$prog: redis-server did not come up" >&2; exit 1; }
        sleep 0.1
    done
}

# Builds bench/nats/natsbench.go into $build/bench/natsbench offline from Debian's Go sources
# (golang-go, golang-github-nats-io-go-nats-dev) when it is missing or older than its source;
# sets natsbench. Fails (status 1, reason on stderr) when a tool or the sources are missing.
nats_build() {
    natsbench=$build/bench/natsbench
    command -v nats-server >/dev/null 2>&1 || { echo "nats-server is not installed" >&2; return 1; }
    command -v go >/dev/null 2>&1 || { echo "go (golang-go) is not installed" >&2; return 1; }
    [ -d /usr/share/gocode/src/github.com/nats-io/nats.go ] ||
        { echo "golang-github-nats-io-go-nats-dev is not installed" >&2; return 1; }
    if [ ! -x "$natsbench" ] || [ "$root/bench/nats/natsbench.go" -nt "$natsbench" ]; then
        mkdir -p "$build/bench/gocache"
        GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE=$build/bench/gocache GOFLAGS='' \
            go build -o "$natsbench" "$root/bench/nats/natsbench.go" || return 1
    fi
}

# Starts nats-server with JetStream on a free port, its store in $dir/nats-<name>, and waits
# until it answers (natsbench -create makes the stream BENCH on file storage); sets nats_url.
start_nats() { # name
    nats_port=$(free_port)
    ndir=$dir/nats-$1
    mkdir -p "$ndir"
    nats_url=nats://127.0.0.1:$nats_port
    nats-server -js -a 127.0.0.1 -p "$nats_port" -sd "$ndir" -l "$ndir/nats.log" &
    nats_pid=$!
    i=0
    until "$natsbench" -url "$nats_url" -create 2>"$ndir/create.err"; do
        kill -0 "$nats_pid" 2>/dev/null || { tail -20 "$ndir/nats.log" >&2; exit 1; }
        i=$((i + 1))
        [ $i -lt 100 ] || { echo "$prog: nats-server did not come up" >&2; cat "$ndir/create.err" >&2; exit 1; }
        sleep 0.1
    done
}

# One natsbench run of $secs seconds on a fresh stream (as redis_xadd empties its stream);
# prints "tps p50_ms p99_ms p999_ms ok" and warns about failed publishes.
nats_run() { # natsbench options...
    "$natsbench" -url "$nats_url" -create
    line=$("$natsbench" -url "$nats_url" -d "$secs" "$@" | grep '^SUMMARY')
    failed=$(echo "$line" | field failed)
    if [ "$failed" != 0 ]; then
        echo "$prog: WARNING: $failed failed NATS publishes: $line" >&2
    fi
    echo "$(echo "$line" | field tps) $(echo "$line" | field p50_ms) $(echo "$line" | field p99_ms)" \
        "$(echo "$line" | field p999_ms) $(echo "$line" | field ok)"
}

# redis-benchmark runs a count, not a duration: the count is the rate of the previous run (or of
# a short calibration run) times $secs. Prints "rps p50_ms p99_ms"; $conns clients.
redis_rate=""
redis_run() { # pipeline, size, count
    payload=$(head -c "$2" /dev/zero | tr '\0' r)
    redis-cli -p "$redis_port" del bench >/dev/null
    redis-benchmark -p "$redis_port" -c "$conns" -P "$1" -n "$3" --csv XADD bench '*' f "$payload" |
        awk -F'","' 'NR == 2 { print $2, $5, $7 }'
}
redis_case() { # pipeline, size
    if [ -z "$redis_rate" ]; then
        redis_rate=$(redis_run "$1" "$2" $((20000 * $1)) | awk '{ printf "%d", $1 }')
    fi
    r=$(redis_run "$1" "$2" $((redis_rate * secs + 1000)))
    redis_rate=$(echo "$r" | awk '{ printf "%d", $1 }')
    echo "$r"
}

# One mqbench producer run of $secs seconds on $bench_topic (default BenchTopic) with the
# given options; prints "tps p50_ms p99_ms p999_ms ok" and warns about failed or unknown sends.
ferry_run() { # mqbench producer options...
    line=$("$mqbench" producer -n "$namesrv" -t "${bench_topic:-BenchTopic}" -d "$secs" "$@" | grep '^SUMMARY')
    failed=$(echo "$line" | field failed)
    unknown=$(echo "$line" | field unknown)
    if [ "$failed" != 0 ] || [ "$unknown" != 0 ]; then
        echo "$prog: WARNING: $failed failed, $unknown unknown sends: $line" >&2
    fi
    echo "$(echo "$line" | field tps) $(echo "$line" | field p50_ms) $(echo "$line" | field p99_ms)" \
        "$(echo "$line" | field p999_ms) $(echo "$line" | field ok)"
}

ferry_case() { # mode, size: prints "tps p50_ms p99_ms"
    if [ "$1" = send_sync ]; then
        set -- -w "$conns" -s "$2"
    else
        set -- -a -p "$conns" -i "$inflight" -s "$2"
    fi
    ferry_run "$@" | cut -d' ' -f1-3
}

result() { # name, value, baseline
    awk -v n="$1" -v v="$2" -v b="$3" 'BEGIN {
        printf "RESULT bench=%s value=%.0f unit=msg/s baseline=%.0f ratio=%.3f\n", n, v, b, (b > 0 ? v / b : 0) }'
}
