#!/bin/sh
# FerryMQ storage benchmark driver (`make bench-store`): builds bench_store if needed, runs it
# FERRY_BENCH_RUNS times (default 3) in a temporary directory on a real disk, and prints the
# median of every result, because the machine is shared and noisy. It asserts nothing.
#
#   bench/bench_store.sh [builddir]        builddir defaults to build
#
# Environment:
#   FERRY_BENCH_RUNS=n       runs (default 3)
#   FERRY_BENCH_QUICK=1      tiny sizes: a smoke run of well under 30 s per run
#   FERRY_BENCH_BIG=1        also a 10 GiB recovery (when the disk has room)
#   FERRY_BENCH_SYNC_SECS=s  seconds per SYNC_FLUSH case (default 5)
#   FERRY_BENCH_ONLY=list    phases to run: async,sync,recovery (default all)
#   FERRY_BENCH_DIR=dir      where to make the temporary directory (default bench/out, then
#                            $TMPDIR, then /var/tmp; tmpfs is refused)
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
build=${1:-build}
case $build in
/*) ;;
*) build=$root/$build ;;
esac
runs=${FERRY_BENCH_RUNS:-3}
case $runs in
'' | *[!0-9]* | 0)
    echo "bench_store.sh: FERRY_BENCH_RUNS must be a positive integer" >&2
    exit 2
    ;;
esac

# ---- build --------------------------------------------------------------------------------
cd "$root"
if [ ! -f "$build/CMakeCache.txt" ]; then
    if command -v ninja >/dev/null 2>&1; then
        cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
    else
        cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo
    fi
fi
cmake --build "$build" --target bench_store
bin=$build/bench/bench_store
btype=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$build/CMakeCache.txt")
sanitize=$(sed -n 's/^FERRY_SANITIZE:[A-Z]*=//p' "$build/CMakeCache.txt")
case "$btype:$sanitize" in
Release:* | RelWithDebInfo:*) ;;
*) echo "bench_store.sh: WARNING: $build is a '$btype' build (FERRY_SANITIZE=$sanitize); numbers are not representative" ;;
esac
case "$sanitize" in
ON | on | 1 | TRUE | true) echo "bench_store.sh: WARNING: sanitizers are on in $build" ;;
esac

# ---- a temporary directory on a real disk ----------------------------------------------------
fstype() { stat -f -c %T "$1" 2>/dev/null || echo unknown; }
base=
for cand in "${FERRY_BENCH_DIR:-}" "$root/bench/out" "${TMPDIR:-}" /var/tmp; do
    [ -n "$cand" ] || continue
    mkdir -p "$cand" 2>/dev/null || continue
    t=$(fstype "$cand")
    case $t in
    tmpfs | ramfs | unknown)
        echo "bench_store.sh: $cand is on $t, not a real disk: not used" >&2
        continue
        ;;
    esac
    base=$cand
    break
done
if [ -z "$base" ]; then
    echo "bench_store.sh: no directory on a real disk found (set FERRY_BENCH_DIR)" >&2
    exit 1
fi
tmp=$(mktemp -d "$base/bench_store.XXXXXX")
pid=
cleanup() {
    if [ -n "$pid" ]; then
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
    rmdir "$root/bench/out" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "bench_store.sh: $runs run(s) of $bin"
echo "bench_store.sh: data in $tmp ($(fstype "$base")): $(df -h "$base" | awk 'NR == 2 { print $4 " free of " $2 }')"
echo "bench_store.sh: $(nproc 2>/dev/null || echo '?') CPUs, $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"

export FERRY_LOG_QUIET=1
gnu_tail=no
if tail --version 2>/dev/null | grep -q GNU; then
    gnu_tail=yes
fi
start=$(date +%s)
i=1
while [ "$i" -le "$runs" ]; do
    echo
    echo "================ run $i of $runs ================"
    # The benchmark's stdout is shown as it comes and kept; the store's log (stderr) is kept
    # apart and summarized: the simulated crashes make it warn on purpose.
    "$bin" "$tmp/data" >"$tmp/out.$i" 2>"$tmp/err.$i" &
    pid=$!
    if [ "$gnu_tail" = yes ]; then
        tail -n +1 -f --pid="$pid" "$tmp/out.$i"
    fi
    rc=0
    wait "$pid" || rc=$?
    pid=
    if [ "$gnu_tail" != yes ]; then
        cat "$tmp/out.$i"
    fi
    if [ "$rc" -ne 0 ]; then
        echo "bench_store.sh: run $i FAILED (exit status $rc); the end of its stderr:" >&2
        tail -n 30 "$tmp/err.$i" >&2
        exit 1
    fi
    expected='did not shut down cleanly|which lies after the end|bytes after it were zeroed'
    nexp=$(grep -Ec "$expected" "$tmp/err.$i" || true)
    nall=$(wc -l <"$tmp/err.$i")
    echo "store log of run $i: $nall line(s) on stderr, $nexp of them expected from the simulated crashes"
    grep -Ev "$expected" "$tmp/err.$i" | head -n 20 | sed 's/^/  stderr: /' || true
    rm -rf "$tmp/data"
    i=$((i + 1))
done
end=$(date +%s)

# ---- medians --------------------------------------------------------------------------------
echo
echo "================ medians of $runs run(s) ($((end - start)) s) ================"
echo "value, baseline and ratio are each the median of the per-run numbers (ratio = value / baseline per run)"
cat "$tmp"/out.* | awk -v runs="$runs" '
function median(list,   n, a, i, j, x) {
    n = split(list, a, " ")
    for (i = 2; i <= n; i++) {
        x = a[i] + 0
        for (j = i - 1; j >= 1 && a[j] + 0 > x; j--)
            a[j + 1] = a[j]
        a[j + 1] = x
    }
    if (n % 2)
        return a[(n + 1) / 2]
    return (a[n / 2] + a[n / 2 + 1]) / 2
}
function num(x) { return (x >= 1000 || x <= -1000) ? sprintf("%.0f", x) : sprintf("%.4g", x) }
function kv(field, key) { return substr(field, length(key) + 2) }
function target(name, v, r) {
    if (name ~ /^append_async_/)
        return sprintf("target ratio >= 0.70: %s", r >= 0.70 ? "met" : "MISSED")
    if (name ~ /^append_sync_.*_t64$/)
        return sprintf("target ratio >= 0.60: %s", r >= 0.60 ? "met" : "MISSED")
    if (name ~ /^recovery_/)
        return sprintf("target >= 500 MB/s: %s", v >= 500 ? "met" : "MISSED")
    return ""
}
$1 == "RESULT" {
    name = kv($2, "bench")
    if (!(name in unit)) { order[++n] = name; unit[name] = kv($4, "unit") }
    val[name] = val[name] " " kv($3, "value")
    base[name] = base[name] " " kv($5, "baseline")
    rat[name] = rat[name] " " kv($6, "ratio")
    cnt[name]++
}
$1 == "DETAIL" {
    name = kv($2, "bench")
    for (f = 3; f <= NF; f++) {
        k = $f; sub(/=.*/, "", k)
        key = name SUBSEP k
        if (!(key in det)) { dorder[name] = dorder[name] " " k }
        det[key] = det[key] " " kv($f, k)
    }
}
END {
    for (i = 1; i <= n; i++) {
        name = order[i]
        v = median(val[name]); b = median(base[name]); r = median(rat[name])
        printf "MEDIAN bench=%s value=%.1f unit=%s baseline=%.1f ratio=%.3f runs=%d", name, v, unit[name], b, r, cnt[name]
        t = target(name, v, r)
        if (t != "") printf "   [%s]", t
        printf "\n"
        if (name in dorder) {
            m = split(dorder[name], ks, " ")
            line = ""
            for (j = 1; j <= m; j++)
                line = line " " ks[j] "=" num(median(det[name SUBSEP ks[j]]))
            printf "  detail:%s\n", line
        }
    }
    if (n == 0) print "no RESULT lines"
}'
echo "(targets are printed for information and never asserted)"
