#!/usr/bin/env bash
# Starts a local cluster of three ringkv masters on loopback (ports 7000-7002 by
# default) from fresh nodes: node 1 meets the others (CLUSTER MEET), the ring
# gives every slot a master (CLUSTER RING ASSIGN), and the script waits until
# every node says cluster_state:ok. Run again after stop.sh, the nodes rejoin
# with the state kept in their nodes-<port>.conf. Stop it with ./stop.sh.
#
#   RINGKV_CLUSTER_BASE_PORT  first port (default 7000; the others follow)
#   RINGKV_CLUSTER_DIR        node configs, cluster state files, logs, pids (default ./data)
#   RINGKV_SERVER             server binary (default: build the release one)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
base="${RINGKV_CLUSTER_BASE_PORT:-7000}"
data="${RINGKV_CLUSTER_DIR:-$here/data}"
server="${RINGKV_SERVER:-}"
if [ -z "$server" ]; then
    (cd "$here/.." && cargo build --release -q -p ringkv-server)
    server="$here/../target/release/ringkv-server"
fi
mkdir -p "$data"

. "$here/lib.sh"

for i in 0 1 2; do write_config $((base + i)); done
for i in 0 1 2; do start_node $((base + i)) || exit 1; done

# Until every node answers.
for _ in $(seq 1 100); do
    up=0
    for i in 0 1 2; do
        if [ -n "$(info $((base + i)) cluster_state)" ]; then up=$((up + 1)); fi
    done
    [ "$up" = 3 ] && break
    sleep 0.1
done

# Fresh nodes (not restarted ones) meet, then the ring assigns the slots.
if [ "$(info "$base" cluster_known_nodes)" != 3 ]; then
    for i in 1 2; do call "$base" CLUSTER MEET 127.0.0.1 $((base + i)) > /dev/null; done
    for _ in $(seq 1 100); do
        known=0
        for i in 0 1 2; do
            if [ "$(info $((base + i)) cluster_known_nodes)" = 3 ]; then known=$((known + 1)); fi
        done
        [ "$known" = 3 ] && break
        sleep 0.1
    done
fi
if [ "$(info "$base" cluster_slots_assigned)" != 16384 ]; then
    call "$base" CLUSTER RING ASSIGN > /dev/null
fi

for _ in $(seq 1 100); do
    ready=0
    for i in 0 1 2; do
        if [ "$(info $((base + i)) cluster_state)" = ok ]; then ready=$((ready + 1)); fi
    done
    if [ "$ready" = 3 ]; then
        echo "ringkv cluster ready: 3 masters on 127.0.0.1:$base-$((base + 2)), cluster_state:ok"
        echo "connect with:  redis-cli -c -p $base"
        echo "stop with:     $here/stop.sh"
        exit 0
    fi
    sleep 0.1
done
echo "the cluster did not come up; logs are in $data" >&2
"$here/stop.sh" || true
exit 1
