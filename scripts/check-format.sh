#!/bin/sh
# Fails when a tracked (or new, unignored) C file differs from clang-format's output.
set -eu
cf=${1:-clang-format}
cd "$(dirname "$0")/.."
files=$(git ls-files --cached --others --exclude-standard '*.c' '*.h' 2>/dev/null || find src tests tools bench -name '*.[ch]')
bad=0
for f in $files; do
    [ -f "$f" ] || continue
    if ! "$cf" --style=file "$f" | cmp -s - "$f"; then
        echo "not formatted: $f (run: make format)"
        bad=1
    fi
done
exit $bad
