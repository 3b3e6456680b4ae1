#!/bin/sh
# Fails when a tracked (or new, unignored) C file differs from clang-format's output.
set -eu
cf=${1:-clang-format}
cd "$(dirname "$0")/.."
# Our source directories only: a build directory of any name may hold CMake's own C files.
dirs="src include tests tools bench examples"
files=$(git ls-files --cached --others --exclude-standard -- $dirs 2>/dev/null | grep '\.[ch]$' ||
    find $dirs -name '*.[ch]' 2>/dev/null)
bad=0
for f in $files; do
    [ -f "$f" ] || continue
    if ! "$cf" --style=file "$f" | cmp -s - "$f"; then
        echo "not formatted: $f (run: make format)"
        bad=1
    fi
done
exit $bad
