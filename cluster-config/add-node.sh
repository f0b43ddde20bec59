#!/usr/bin/env bash
# Adds a master to the local cluster started by start.sh: starts a node on the
# next free port (or $1), has the first node meet it, and asks the ring to
# rebalance (CLUSTER RING REBALANCE): exactly the slots whose ring owner is now
# the new master move to it, live, by atomic slot migration. Waits until the
# rebalance is done. Same environment variables as start.sh.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
base="${RINGKV_CLUSTER_BASE_PORT:-7000}"
data="${RINGKV_CLUSTER_DIR:-$here/data}"
server="${RINGKV_SERVER:-$here/../target/release/ringkv-server}"
. "$here/lib.sh"

last="$(ports | tail -n 1)"
port="${1:-$((${last:-$base} + 1))}"
write_config "$port"
start_node "$port"
wait_for '[ -n "$(info "$port" cluster_state)" ]' 100 || { echo "node $port did not start" >&2; exit 1; }
call "$base" CLUSTER MEET 127.0.0.1 "$port" > /dev/null
known=$(( $(ports | wc -l) ))
wait_for '[ "$(info "$port" cluster_known_nodes)" = "$known" ]' 200 \
    || { echo "node $port did not join" >&2; exit 1; }
moving="$(call "$base" CLUSTER RING REBALANCE)"
echo "node $port joined; moving ${moving#:} slots to their ring owners"
wait_for '[ "$(call "$base" INFO cluster | sed -n "s/^cluster_ring_rebalancing://p" | tr -d "\r")" = 0 ]' 3000 \
    || { echo "the rebalance did not finish; see CLUSTER RING STATUS" >&2; exit 1; }
keys="$(call "$port" DBSIZE)"
echo "rebalanced: node $port holds ${keys#:} keys"

