#!/usr/bin/env bash
# Does pruning flow-limit cells stall accepting? A fresh SQLite store gets
# CELLS live cells (windows far in the future, so none is deleted and the
# walk reads them all), then the service starts and wrk sends bench/post.lua's
# requests for 62 s at CONNECTIONS: the prune at start-up and the one a
# minute later fall inside. Prints the rate, p50, p99 and the longest answer:
# a stall of the store's one writer shows in the longest answer (it holds
# every request waiting for a commit), not in p99 (too few requests wait).
# Delivery goes to Postfix's smtp-sink meanwhile.
#
#   MAILBRIDGE_BIN=target/release/mailbridge CELLS=1000000 bash bench/prune.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${MAILBRIDGE_BIN:-target/release/mailbridge}"
CELLS="${CELLS:-1000000}"
CONNECTIONS="${CONNECTIONS:-16}"
[ -n "${MAILBRIDGE_BIN:-}" ] || cargo build --release -q -p mailbridge

work=$(mktemp -d)
cleanup() { kill "${SINK:-}" "${SVC:-}" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
. bench/sink-env.sh
ready() { for _ in $(seq 200); do curl -fs -o /dev/null "http://$MAILBRIDGE_LISTEN/readyz" && return; sleep 0.05; done; }
# Once to create the schema, then the cells go in while it is stopped.
$BIN serve & SVC=$!
ready; kill "$SVC"; wait "$SVC" || true
sqlite3 "$work/queue.db" "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $CELLS)
  INSERT INTO flow_limits (key, tat) SELECT hex(randomblob(16)), 4000000000000 + i FROM n;"
$BIN serve & SVC=$!
ready
MB_TOKEN=$($BIN token --tenant bench --ttl 600)
export MB_TOKEN
wrk -t2 -c"$CONNECTIONS" -d62s --latency -s bench/post.lua "http://$MAILBRIDGE_LISTEN/v1/messages" >"$work/wrk"
echo "$CELLS cells, $CONNECTIONS connections: $(awk '/^Requests/ {print $2}' "$work/wrk") req/s," \
  "p50 $(awk '$1 == "50%" {print $2}' "$work/wrk"), p99 $(awk '$1 == "99%" {print $2}' "$work/wrk")," \
  "longest $(awk '$1 == "Latency" {print $4}' "$work/wrk")"
