#!/bin/sh
# Installs the Debian packages FerryMQ builds and tests with, only those missing.
# Runs apt-get only as root; otherwise it names what is missing and fails.
#
#   scripts/install-deps.sh           what the build and `make test` need
#   scripts/install-deps.sh --bench   also what `make bench-e2e` and `make bench` use (redis-server,
#                                     redis-tools for redis-benchmark, gnuplot-nox for the plots,
#                                     nats-server, and golang-go with the nats.go sources to build
#                                     the NATS benchmark client); `make test` never needs them
set -eu
PKGS="build-essential cmake ninja-build pkg-config clang clang-format libclang-rt-14-dev \
libuv1-dev libcjson-dev zlib1g-dev libisal-dev libcmocka-dev libssl-dev openssl libraft-dev libyaml-dev \
libmicrohttpd-dev libsystemd-dev chromium"
for arg in "$@"; do
    case $arg in
    --bench) PKGS="$PKGS redis-server redis-tools gnuplot-nox nats-server golang-go golang-github-nats-io-go-nats-dev" ;;
    *) echo "install-deps: unknown option $arg (known: --bench)" >&2; exit 2 ;;
    esac
done
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
# Node.js runs the compatibility tests (the ali-ons client from npm) and the dashboard's browser
# test (playwright-core, which needs Node 20 or newer; Debian bookworm's nodejs is 18, enough
# for everything else), so Debian's package is installed only when no node is on the PATH.
# Chromium (Debian's) is the browser that test drives.
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
if command -v node >/dev/null 2>&1 && [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
    echo "install-deps: node $(node --version) is older than 20: the dashboard test (playwright-core) will fail" >&2
fi
command -v npm >/dev/null 2>&1 || missing="$missing npm"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing Debian packages:$missing (run as root, or: sudo apt-get install$missing)" >&2
    exit 1
fi
echo "install-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing
