#!/bin/sh
# The long chaos round (README.md): `make chaos` runs ./tests/chaos/run-chaos.sh $(BUILD) $(CHAOS_SECONDS)
# (with CHAOS_MODE=$(CHAOS_MODE) in the environment).
#
#   tests/chaos/run-chaos.sh <build-dir> <seconds> [chaos.js options: --seed N --max-faults N --faults a,b --keep
#                                                   --mode normal|replicated --set-size 2|3]
#
# Uses the servers and chaos_client of <build-dir> (built with cmake --build first) and prints
# the seed, the fault log, the checks and the RESULT line; exit status 0 when every check held.
# Set FERRY_CHAOS_SEED (or pass --seed) to replay a round's fault schedule; CHAOS_MODE=replicated
# (or --mode replicated) runs the replicated mode (mqcontrollers, two broker sets).
set -eu
if [ $# -lt 2 ]; then
  echo "usage: $0 <build-dir> <seconds> [--seed N] [--max-faults N] [--faults a,b] [--keep] [--mode normal|replicated]" >&2
  exit 2
fi
build=$(cd "$1" && pwd)
seconds=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
mode=${CHAOS_MODE:-normal}
prev=
for a in "$@"; do
  [ "$a" = --replicated ] && mode=replicated
  [ "$prev" = --mode ] && mode=$a
  prev=$a
done
need="$build/tools/mqnamesrv $build/tools/mqbroker $build/tests/chaos/chaos_client"
[ "$mode" = replicated ] && need="$need $build/tools/mqcontroller"
for f in $need; do
  if [ ! -x "$f" ]; then
    echo "$f is missing: build $build first (cmake --build $build)" >&2
    exit 2
  fi
done
export FERRY_BIN_DIR="$build/tools"
export FERRY_MQNAMESRV_BIN="$build/tools/mqnamesrv"
export FERRY_MQBROKER_BIN="$build/tools/mqbroker"
export FERRY_MQCONTROLLER_BIN="$build/tools/mqcontroller"
export FERRY_CHAOS_CLIENT="$build/tests/chaos/chaos_client"
exec node "$here/chaos.js" --seconds "$seconds" "$@"
