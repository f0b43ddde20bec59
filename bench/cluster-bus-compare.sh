#!/usr/bin/env bash
# ringkv's cluster bus against Redis's: 6 fresh masters on loopback per run,
# cluster-node-timeout 2000 (see bench/src/bin/cluster_bus_compare.rs for what is
# timed). Builds the release binaries, runs the comparison at low priority, and on
# any exit kills every server it left running and removes its files.
# Extra arguments go to the harness, e.g. ./bench/cluster-bus-compare.sh --runs 1 --idle-secs 10
set -euo pipefail
cd "$(dirname "$0")/.."
nice cargo build --release -q -p ringkv-server -p ringkv-bench
work=$(mktemp -d "${TMPDIR:-/tmp}/cluster-bus-compare.XXXXXX")
cleanup() {
    # The harness kills its nodes itself; this catches a harness killed midway.
    # Pid files exist only while their node runs (removed once it is reaped).
    for pidfile in "$work"/*/*.pid; do
        [ -e "$pidfile" ] && kill -9 "$(cat "$pidfile")" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
nice target/release/cluster_bus_compare --workdir "$work" "$@"
