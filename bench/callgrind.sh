#!/usr/bin/env bash
# Counts the instructions a ringkv server spends per request, under valgrind's
# callgrind (deterministic, unlike time on a shared machine).
# Usage: bench/callgrind.sh <ringkv-server binary> <redis-benchmark test> <pipeline> <requests>
# Prints: total instructions, and per request after subtracting start-up and
# shutdown alone (measured once per call with a 1-request run).
set -euo pipefail
bin=$1 test=$2 pipeline=$3 requests=$4
port=${PORT:-7795}

run() {
    local out
    out=$(mktemp)
    valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" --port "$port" --threads 1 \
        >/dev/null 2>&1 &
    local pid=$!
    for _ in $(seq 1 100); do
        redis-cli -p "$port" ping >/dev/null 2>&1 && break
        sleep 0.3
    done
    redis-benchmark -p "$port" -n "$1" -P "$pipeline" -c 10 -t "$test" -q >/dev/null 2>&1
    redis-cli -p "$port" shutdown >/dev/null 2>&1 || true
    wait "$pid" || true
    callgrind_annotate "$out" 2>/dev/null | grep -m1 "PROGRAM TOTALS" | awk '{gsub(",","",$1); print $1}'
    rm -f "$out"
}

base=$(run 1)
total=$(run "$requests")
echo "$test -P $pipeline: $total instructions, $(( (total - base) / requests )) per request"
