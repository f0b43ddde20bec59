#!/usr/bin/env bash
# Starts a local cluster of three ringkv masters on loopback (ports 7000-7002 by
# default), waits until every node serves all 16384 slots, and says how to
# connect. Stop it with ./stop.sh.
#
#   RINGKV_CLUSTER_BASE_PORT  first port (default 7000; the others follow)
#   RINGKV_CLUSTER_DIR        node configs, id files, logs, pids (default ./data)
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

# Fixed node ids, so restarts find the same ring (each node also keeps its id
# in its nodes-<port>.conf).
ids=(
    7f0a1c9e3b5d4f6a8c2e0b1d3f5a7c9e1b3d5f70
    2b4d6f8a0c1e3a5c7e9b1d3f5a7c9e0b2d4f6a81
    c3e5a7b9d1f2046e8a0c2e4b6d8f1a3c5e7b9d92
)
masters=()
for i in 0 1 2; do
    masters+=("    \"${ids[$i]} 127.0.0.1:$((base + i))\",")
done

for i in 0 1 2; do
    port=$((base + i))
    {
        echo "# ringkv master $((i + 1)) of a local three-master cluster (written by start.sh)."
        echo "bind = [\"127.0.0.1\"]"
        echo "port = $port"
        echo "cluster-enabled = true"
        echo "# Relative to the directory the node runs in (RINGKV_CLUSTER_DIR)."
        echo "cluster-config-file = \"nodes-$port.conf\""
        echo "cluster-nodes = ["
        printf '%s\n' "${masters[@]}"
        echo "]"
    } > "$data/node-$port.toml"
done

for i in 0 1 2; do
    port=$((base + i))
    if [ -f "$data/node-$port.pid" ] && kill -0 "$(cat "$data/node-$port.pid")" 2>/dev/null; then
        echo "node on port $port is already running" >&2
        exit 1
    fi
    (cd "$data" && exec "$server" --config "node-$port.toml" > "node-$port.log" 2>&1) &
    echo $! > "$data/node-$port.pid"
done

# Asks a node for CLUSTER INFO over plain bash TCP (no redis-cli needed).
cluster_ok() {
    local line ok=1
    exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
    printf 'CLUSTER INFO\r\n' >&3
    # The reply's first two lines: the bulk length, then cluster_state.
    for _ in 1 2; do
        IFS= read -r -t 2 line <&3 || break
        if [[ "$line" == cluster_state:ok* ]]; then ok=0; break; fi
    done
    exec 3>&-
    return $ok
}

for _ in $(seq 1 100); do
    ready=0
    for i in 0 1 2; do
        if cluster_ok $((base + i)) 2>/dev/null; then ready=$((ready + 1)); fi
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
