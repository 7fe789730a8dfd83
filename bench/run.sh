#!/usr/bin/env bash
# Benchmarks the service on this machine, all on 127.0.0.1:
#  1. accept: wrk POSTs /v1/messages for DURATION at CONNECTIONS concurrent
#     connections into the durable SQLite store (throughput, p50/p99 latency);
#  2. delivery: the worker drains the accepted backlog to Postfix's smtp-sink over
#     pooled SMTP connections (messages/s from the first accept to the last send);
#  3. memory: the service's peak resident set (VmHWM) over both.
# STORE=postgres runs the same against a throwaway PostgreSQL server on loopback
# (Debian's binaries, as scripts/test-deps.sh installs them) instead of SQLite.
# Needs: wrk and postfix (smtp-sink) from Debian; installs them when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${DURATION:-20s}"
CONNECTIONS="${CONNECTIONS:-64}"
THREADS="${THREADS:-2}"

if ! command -v wrk >/dev/null || [ ! -x /usr/sbin/smtp-sink ]; then
  sudo_cmd=""; [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq wrk postfix >/dev/null
fi
cargo build --release -q -p mailbridge
BIN=target/release/mailbridge

STORE="${STORE:-sqlite}"
work=$(mktemp -d)
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() {
  kill "${SINK:-}" "${SVC:-}" 2>/dev/null || true
  [ -n "${PG_PORT:-}" ] && as_pg "$PG_BIN/pg_ctl" stop -m fast -D "$work/pg" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

SMTP_PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
HTTP_PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
/usr/sbin/smtp-sink -u "$(id -un)" "127.0.0.1:$SMTP_PORT" 1024 >/dev/null 2>&1 &
SINK=$!

export MAILBRIDGE_LISTEN="127.0.0.1:$HTTP_PORT"
if [ "$STORE" = postgres ]; then
  # Durable as in production: fsync and synchronous_commit stay on.
  PG_PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
  mkdir "$work/pg"; [ "$(id -u)" = 0 ] && chown -R postgres: "$work"
  as_pg "$PG_BIN/initdb" --auth=trust --username=mailbridge -D "$work/pg" >/dev/null
  as_pg "$PG_BIN/pg_ctl" start -w -D "$work/pg" -l "$work/pg.log" \
    -o "-c listen_addresses=127.0.0.1 -c port=$PG_PORT -c unix_socket_directories=$work" >/dev/null
  "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U mailbridge bench
  export MAILBRIDGE_DATABASE_URL="postgres://mailbridge@127.0.0.1:$PG_PORT/bench"
  count() { "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U mailbridge -d bench -Atc "select count(*) from messages where status $1" 2>/dev/null || echo 0; }
else
  export MAILBRIDGE_DATABASE_URL="sqlite://$work/bench.db"
  count() { sqlite3 "file:$work/bench.db?mode=ro" "select count(*) from messages where status $1" 2>/dev/null || echo 0; }
fi
export MAILBRIDGE_TRANSPORT="smtp://127.0.0.1:$SMTP_PORT?tls=none&max_connections=${SMTP_CONNECTIONS:-8}"
export MAILBRIDGE_JWT_SECRET="bench-secret-0123456789abcdef-0123456789"
export MAILBRIDGE_LOG="warn"
export MAILBRIDGE_MAX_PENDING=100000000
$BIN serve &
SVC=$!
for _ in $(seq 100); do curl -fs "http://$MAILBRIDGE_LISTEN/readyz" >/dev/null && break; sleep 0.1; done

MB_TOKEN=$($BIN token --tenant bench --ttl 600)
export MB_TOKEN
start=$(date +%s.%N)
echo "== accept: wrk -t$THREADS -c$CONNECTIONS -d$DURATION"
wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s bench/post.lua "http://$MAILBRIDGE_LISTEN/v1/messages" | tee "$work/wrk.txt"

drain_start=$(date +%s.%N)
sent_at_drain_start=$(count "= 'sent'")
echo "== delivery: draining the backlog to smtp-sink"
while :; do
  pending=$(count "not in ('sent','failed')")
  [ "$pending" = 0 ] && break
  sleep 0.2
done
end=$(date +%s.%N)
sent=$(count "= 'sent'")
failed=$(count "= 'failed'")
peak_kib=$(awk '/VmHWM/ {print $2}' "/proc/$SVC/status")
python3 - "$start" "$end" "$sent" "$failed" "$peak_kib" "$drain_start" "$sent_at_drain_start" <<'PY'
import sys
start, end, sent, failed, peak = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
drain_start, sent_before = float(sys.argv[6]), int(sys.argv[7])
print(f"delivered {sent} messages ({failed} failed) in {end-start:.1f}s from the first accept: {sent/(end-start):.0f} messages/s")
print(f"after the load stopped: {sent-sent_before} messages in {end-drain_start:.1f}s: {(sent-sent_before)/(end-drain_start):.0f} messages/s (delivery alone)")
print(f"peak resident memory of the service: {peak/1024:.1f} MiB")
PY
