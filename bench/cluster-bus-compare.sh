#!/usr/bin/env bash
# ringkv's cluster bus against Redis's: 6 fresh masters on loopback per run,
# cluster-node-timeout 2000 (see bench/src/bin/cluster_bus_compare.rs for what is
# timed). Extra arguments go to the harness, e.g.
#   ./bench/cluster-bus-compare.sh --runs 1 --idle-secs 10
exec "$(dirname "$0")/cluster-harness.sh" cluster_bus_compare "$@"
