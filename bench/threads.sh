#!/usr/bin/env bash
# The service's CPU time and context switches per stored message, by thread
# (tokio's workers, the rendering threads, the store's writer thread, sqlx's
# connection threads), from
# /proc/<pid>/task/*/{stat,status} before and after a wrk load of DURATION at
# CONNECTIONS (bench/post.lua's Keycloak-shaped requests) on a fresh SQLite
# store. MODE=deliver (default) delivers to Postfix's smtp-sink meanwhile;
# MODE=accept stops the sink first (SIGSTOP), so the figures are the accept
# path's alone. The clock tick is 10 ms: run at least 10 s.
#
#   MAILBRIDGE_BIN=target/release/mailbridge MODE=accept bash bench/threads.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${MAILBRIDGE_BIN:-target/release/mailbridge}"
MODE="${MODE:-deliver}"
DURATION="${DURATION:-15}"
CONNECTIONS="${CONNECTIONS:-64}"
[ -n "${MAILBRIDGE_BIN:-}" ] || cargo build --release -q -p mailbridge

work=$(mktemp -d)
cleanup() {
  kill -CONT "${SINK:-}" 2>/dev/null || true
  kill "${SINK:-}" "${SVC:-}" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
. bench/sink-env.sh
if [ "$MODE" = accept ]; then sleep 0.2; kill -STOP "$SINK"; fi
$BIN serve &
SVC=$!
for _ in $(seq 100); do curl -fs -o /dev/null "http://$MAILBRIDGE_LISTEN/readyz" && break; sleep 0.1; done
MB_TOKEN=$($BIN token --tenant bench --ttl 600)
export MB_TOKEN

# Per thread name (digits dropped): CPU ticks, and voluntary + involuntary switches.
snapshot() {
  for task in /proc/"$SVC"/task/*; do
    name=$(cat "$task/comm")
    ticks=$(sed 's/^.*) //' "$task/stat" | awk '{print $12 + $13}')
    switches=$(awk '/ctxt_switches/ {s += $2} END {print s}' "$task/status")
    echo "${name%%[0-9]*} $ticks $switches"
  done | awk '{t[$1] += $2; s[$1] += $3} END {for (k in t) print k, t[k], s[k]}' | sort
}
snapshot >"$work/before"
wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s bench/post.lua "http://$MAILBRIDGE_LISTEN/v1/messages" >"$work/wrk"
snapshot >"$work/after"
stored=$(sqlite3 "file:$work/queue.db?mode=ro" "select count(*) from messages")
sent=$(sqlite3 "file:$work/queue.db?mode=ro" "select count(*) from messages where status = 'sent'")
echo "mode $MODE, $CONNECTIONS connections: $(awk '/^Requests/ {print $2}' "$work/wrk") req/s, p99 $(awk '$1 == "99%" {print $2}' "$work/wrk"), $stored stored, $sent sent"
tick_us=$((1000000 / $(getconf CLK_TCK)))
join -a2 -e0 -o 0,1.2,1.3,2.2,2.3 "$work/before" "$work/after" | awk -v n="$stored" -v tick="$tick_us" '
  BEGIN {printf "%-18s %14s %22s\n", "thread", "CPU µs/message", "switches per message"}
  {cpu = ($4 - $2) * tick / n; sw = ($5 - $3) / n; tc += cpu; ts += sw
   printf "%-18s %14.1f %22.2f\n", $1, cpu, sw}
  END {printf "%-18s %14.1f %22.2f\n", "all", tc, ts}'
