#!/usr/bin/env bash
# Replication speed of ringkv against Redis 7 (issue 13): full sync of 1M keys and
# a replica keeping up with redis-benchmark, on fresh processes per run (see
# bench/src/bin/repl_bench.rs for what is timed). Builds the release binaries,
# runs the harness at low priority, and on any exit kills every server it left
# running and removes its files.
# Extra arguments go to the harness, e.g. ./bench/repl-bench.sh --servers ringkv,redis --runs 1
set -euo pipefail
cd "$(dirname "$0")/.."
nice cargo build --release -q -p ringkv-server -p ringkv-bench
work=$(mktemp -d "${TMPDIR:-/tmp}/repl-bench.XXXXXX")
cleanup() {
    # The harness stops its servers itself; this catches a harness killed midway.
    for pidfile in "$work"/*/server.pid; do
        [ -e "$pidfile" ] && kill -9 "$(cat "$pidfile")" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
nice target/release/repl_bench --workdir "$work" "$@"
