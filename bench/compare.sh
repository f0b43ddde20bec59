#!/usr/bin/env bash
# Builds ringkv in release mode and runs the compare harness against Redis.
# Extra arguments go to the harness, e.g. ./bench/compare.sh --pipelines 16 --rounds 5
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p ringkv-server -p ringkv-bench
exec target/release/compare "$@"
