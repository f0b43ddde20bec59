#!/usr/bin/env bash
# Runs one of the cluster harnesses (cluster_bus_compare, lock_checker,
# failover_compare) on loopback: builds the release binaries, runs the harness
# at low priority, and on any exit kills every server it left running and
# removes its files. The harness stops its own servers (also on ctrl-c); this
# catches a harness killed outright.
# Usage: bench/cluster-harness.sh <harness> [harness arguments...]
#   e.g. bench/cluster-harness.sh lock_checker --servers ringkv --faults 200
set -euo pipefail
cd "$(dirname "$0")/.."
harness=${1:?usage: $0 cluster_bus_compare|lock_checker|failover_compare [args...]}
shift
nice cargo build --release -q -p ringkv-server -p ringkv-bench --bin ringkv-server --bin "$harness"
work=$(mktemp -d "${TMPDIR:-/tmp}/$harness.XXXXXX")
cleanup() {
    # Pid files exist only while their node runs (removed once it is reaped).
    for pidfile in "$work"/*/*.pid; do
        [ -e "$pidfile" ] && kill -9 "$(cat "$pidfile")" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
nice "target/release/$harness" --workdir "$work" "$@"
