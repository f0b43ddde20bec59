#!/usr/bin/env bash
# Stops the local cluster started by start.sh (same environment variables).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
data="${RINGKV_CLUSTER_DIR:-$here/data}"
stopped=0
for pidfile in "$data"/node-*.pid; do
    [ -e "$pidfile" ] || continue
    pid="$(cat "$pidfile")"
    if kill -TERM "$pid" 2>/dev/null; then
        # A clean shutdown closes every connection first; give it a moment.
        # (An exited node nobody reaped yet shows as a zombie: that is gone too.)
        for _ in $(seq 1 50); do
            state="$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || true)"
            if [ -z "$state" ] || [ "$state" = Z ]; then break; fi
            sleep 0.1
        done
        stopped=$((stopped + 1))
    fi
    rm -f "$pidfile"
done
echo "stopped $stopped ringkv node(s)"
