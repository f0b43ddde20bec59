#!/usr/bin/env bash
# Runs redis-py's own command tests for some families against ringkv or Redis and
# prints passed/failed/skipped per family. redis-py's tests are not in this repo:
# its source distribution (which carries tests/) is fetched from PyPI with pip.
#
# usage: bench/redis-py-suite.sh [--server ringkv|redis] [--protocol 2|3] [--async]
#                                [--list] [FAMILY...]
#   FAMILY     geo bitmaps hll sort zmpop streams (default: all of them)
#   --server   ringkv (default: $RINGKV_BIN, else target/release/ringkv-server)
#              or redis ($REDIS_SERVER, else redis-server on the PATH)
#   --protocol RESP version the test clients speak (default: redis-py's own, 3)
#   --async    also run tests/test_asyncio/test_commands.py
#   --list     print each family's -k expression and stop
# Exits 1 when a selected family has a failure or an error.
# Build first: cargo build --release -p ringkv-server
set -euo pipefail

REDIS_PY_VERSION=8.1.0
TEST_DEPS=(pytest==9.2.0 pytest-timeout==2.4.0 pytest-asyncio==1.5.0)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${WORK:-$ROOT/target/redis-py}

# pytest -k expressions over redis-py's test names (e.g. test_georadius_store,
# test_bitfield_ro, test_pfmerge, test_sort_ro, test_bzmpop, test_xreadgroup).
# test_arop_bitwise is Redis 8.7's array type, not a bitmap test.
declare -A FAMILY_K=(
  [geo]='geo'
  [bitmaps]='bit and not arop'
  [hll]='test_pf'
  [sort]='test_sort'
  [zmpop]='zmpop'
  [streams]='test_x'
)
ALL_FAMILIES=(geo bitmaps hll sort zmpop streams)

server=ringkv protocol='' files=(tests/test_commands.py) families=()
while (($#)); do
  case $1 in
    --server) server=$2; shift 2 ;;
    --protocol) protocol=$2; shift 2 ;;
    --async) files+=(tests/test_asyncio/test_commands.py); shift ;;
    --list) for f in "${ALL_FAMILIES[@]}"; do echo "$f: -k '${FAMILY_K[$f]}'"; done; exit 0 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) [[ -n ${FAMILY_K[$1]:-} ]] || { echo "unknown family: $1" >&2; exit 2; }
       families+=("$1"); shift ;;
  esac
done
((${#families[@]})) || families=("${ALL_FAMILIES[@]}")

# The venv and the downloaded sdist are kept under target/ and reused; the tests
# run from a fresh unpacked copy each time.
setup_venv() {
  local venv=$WORK/venv-$REDIS_PY_VERSION
  mkdir -p "$WORK/dl"
  local sdist=$WORK/dl/redis-$REDIS_PY_VERSION.tar.gz
  [[ -f $sdist ]] || pip download -q --no-binary :all: --no-deps \
    "redis==$REDIS_PY_VERSION" -d "$WORK/dl"
  SRC=$(mktemp -d)
  tar xzf "$sdist" -C "$SRC"
  SRC=$SRC/redis-$REDIS_PY_VERSION
  [[ -f $SRC/tests/conftest.py ]] || { echo "no tests/ in $sdist" >&2; exit 1; }
  if [[ ! -x $venv/bin/pytest ]]; then
    "${PYTHON:-python3}" -m venv "$venv"
    "$venv/bin/pip" install -q "$SRC" "${TEST_DEPS[@]}"
  fi
  PY=$venv/bin/python
}

free_port() {
  "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

start_server() {
  PORT=$(free_port)
  case $server in
    ringkv) "${RINGKV_BIN:-$ROOT/target/release/ringkv-server}" --bind 127.0.0.1 \
              --port "$PORT" >"$WORK/server.log" 2>&1 & ;;
    redis) "${REDIS_SERVER:-redis-server}" --bind 127.0.0.1 --port "$PORT" --save '' \
             --appendonly no >"$WORK/server.log" 2>&1 & ;;
    *) echo "unknown server: $server" >&2; exit 2 ;;
  esac
  SERVER_PID=$!
  for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && return
    sleep 0.1
  done
  echo "server did not start; see $WORK/server.log" >&2; exit 1
}

stop_server() {
  [[ -n ${SERVER_PID:-} ]] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
  [[ -n ${SRC:-} ]] && rm -rf "$(dirname "$SRC")"
  return 0
}
trap stop_server EXIT

# Prints "passed failed skipped errors" from pytest's closing summary line.
counts() {
  local line=$1 n out=()
  for word in passed failed skipped error; do
    n=$(grep -oE "[0-9]+ $word" <<<"$line" | grep -oE '[0-9]+' || true)
    out+=("${n:-0}")
  done
  echo "${out[@]}"
}

setup_venv
start_server
url=redis://127.0.0.1:$PORT
version=$("$PY" -c "import redis; print(redis.Redis.from_url('$url').info()['redis_version'])")
echo "redis-py $REDIS_PY_VERSION tests against $server (announces $version) on $url"
status=0
summary=()
for family in "${families[@]}"; do
  log=$WORK/$server-$family.log
  (cd "$SRC" && "$PY" -m pytest "${files[@]}" -k "${FAMILY_K[$family]}" -q -rfE \
     -p no:cacheprovider --redis-url="$url" --redis-mod-url="$url" \
     ${protocol:+--protocol="$protocol"}) >"$log" 2>&1 || true
  grep -E '^(FAILED|ERROR) ' "$log" | sed "s/^/  $family: /" || true
  read -r passed failed skipped errors < <(counts "$(tail -n 1 "$log")")
  summary+=("$(printf '%-8s %6s %6s %6s %6s' "$family" "$passed" "$failed" "$skipped" "$errors")")
  ((failed + errors == 0)) || status=1
done
printf '%-8s %6s %6s %6s %6s\n' family passed failed skipped errors
printf '%s\n' "${summary[@]}"
echo "(pytest output per family: $WORK/$server-<family>.log)"
exit $status
