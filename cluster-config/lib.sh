# Helpers the cluster-config scripts share (sourced, not run).

# Sends one inline command to the node on port $1 over plain bash TCP (no
# redis-cli needed) and prints the reply: a status, integer or error line, or
# a bulk string's text.
call() {
    local port=$1 line body
    shift
    exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
    printf '%s\r\n' "$*" >&3
    if IFS= read -r -t 2 line <&3; then
        line="${line%$'\r'}"
        if [[ "$line" == '$'* && "${line:1}" -gt 0 ]]; then
            IFS= read -r -t 2 -N "${line:1}" body <&3 && printf '%s\n' "${body//$'\r'/}"
        else
            printf '%s\n' "$line"
        fi
    fi
    exec 3>&-
}

# The value of CLUSTER INFO field $2 on the node on port $1.
info() {
    call "$1" CLUSTER INFO 2>/dev/null | sed -n "s/^$2://p"
}

# Every port with a node config in $data, ascending.
ports() {
    for conf in "$data"/node-*.toml; do
        [ -e "$conf" ] || continue
        conf="${conf##*/node-}"
        echo "${conf%.toml}"
    done | sort -n
}

# Writes the config of a master listening on port $1 to $data.
write_config() {
    local port=$1
    {
        echo "# ringkv master of a local cluster (written by cluster-config)."
        echo "bind = [\"127.0.0.1\"]"
        echo "port = $port"
        echo "cluster-enabled = true"
        echo "# Relative to the directory the node runs in (RINGKV_CLUSTER_DIR)."
        echo "cluster-config-file = \"nodes-$port.conf\""
        echo "cluster-node-timeout = 5000"
    } > "$data/node-$port.toml"
}

# Starts the node whose config is $data/node-$1.toml.
start_node() {
    local port=$1
    if [ -f "$data/node-$port.pid" ] && kill -0 "$(cat "$data/node-$port.pid")" 2>/dev/null; then
        echo "node on port $port is already running" >&2
        return 1
    fi
    (cd "$data" && exec "$server" --config "node-$port.toml" > "node-$port.log" 2>&1) &
    echo $! > "$data/node-$port.pid"
}

# Waits (up to $2 tenths of a second) until command $1 succeeds.
wait_for() {
    for _ in $(seq 1 "$2"); do
        if eval "$1"; then return 0; fi
        sleep 0.1
    done
    return 1
}
