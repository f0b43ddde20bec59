#!/usr/bin/env bash
# Removes the master on port $1 from the local cluster: drains it (CLUSTER
# RING DRAIN: its slots move to their ring owners, live), has every other node
# forget it, stops it and deletes its files. Same environment variables as
# start.sh.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
data="${RINGKV_CLUSTER_DIR:-$here/data}"
port="${1:?usage: $0 <port of the node to remove>}"
. "$here/lib.sh"

id="$(call "$port" CLUSTER MYID)"
[ -n "$id" ] || { echo "no node answers on port $port" >&2; exit 1; }
call "$port" CLUSTER RING DRAIN > /dev/null
echo "draining node $port ($id)"
# Drained once it serves no slot (it then follows another master as a replica).
serves() { call "$port" CLUSTER NODES | grep "myself" | awk '{print NF}'; }
wait_for '[ "$(serves)" -le 8 ]' 6000 \
    || { echo "node $port still serves slots; see CLUSTER RING STATUS" >&2; exit 1; }
for other in $(ports); do
    [ "$other" = "$port" ] && continue
    call "$other" CLUSTER FORGET "$id" > /dev/null || true
done
if [ -f "$data/node-$port.pid" ]; then
    kill -TERM "$(cat "$data/node-$port.pid")" 2>/dev/null || true
    rm -f "$data/node-$port.pid"
fi
rm -f "$data/node-$port.toml" "$data/nodes-$port.conf" "$data/node-$port.log"
echo "node $port removed"
