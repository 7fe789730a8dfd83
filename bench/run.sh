#!/usr/bin/env bash
# Benchmarks the service on this machine, all on 127.0.0.1, against the two
# ceilings that bound it:
#  0. the durable no-op baseline (service/examples/durable_noop.rs): appends
#     each body to a file on the same file system as the store and answers 202
#     after an fdatasync covering it, one writer thread with group commit;
#  1. accept: wrk POSTs /v1/messages (bench/post.lua: a ~4 KB Keycloak-shaped
#     request with a fresh idempotency key each) for DURATION at each of
#     CONNECTIONS (a list) into a fresh durable store, the same load as the
#     baseline just before it (throughput, p50/p99, the ratio to the baseline);
#  2. delivery: meanwhile and afterwards the worker sends to Postfix's
#     smtp-sink over SMTP_CONNECTIONS pooled connections (messages/s from the
#     first accept to the last send, and over the drain alone);
#  3. memory: the service's peak resident set (VmHWM);
#  4. delivery alone: a backlog accepted for BACKLOG_DURATION while smtp-sink
#     is stopped, then drained once it runs again (messages/s);
#  5. raw SMTP: Postfix's smtp-source into the same smtp-sink over as many
#     persistent sessions (SMTP_MESSAGES messages of SMTP_SIZE bytes).
# STORE=postgres runs the same against a throwaway PostgreSQL server on loopback
# (Debian's binaries, as scripts/test-deps.sh installs them) instead of SQLite.
# SMTP_LATENCY_MS=n puts Toxiproxy (as scripts/test-deps.sh installs it)
# between the service and smtp-sink, delaying every reply by n ms, as a
# relay across a network would; raw SMTP (step 5) goes the same way.
# LIMITS=1 gives the tenant the flow limits of the README's example
# (recipient_rate 5/hour; password-reset 3/hour, 10/day) and every request an
# address of its own, so each is checked and spent and none is refused.
# PG_STATEMENTS=1 (with STORE=postgres) loads pg_stat_statements and prints
# the server's time by statement per message delivered after each run.
# BASELINE=0 skips step 0, SMTP_BASELINE=0 steps 4 and 5. MAILBRIDGE_BIN and NOOP_BIN
# name ready-built binaries (A/B runs of two builds) instead of building here.
# Needs: wrk and postfix (smtp-sink, smtp-source) from Debian; installs them when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${DURATION:-15s}"
CONNECTIONS="${CONNECTIONS:-16 64 128}"
THREADS="${THREADS:-2}"
SMTP_CONNECTIONS="${SMTP_CONNECTIONS:-8}"
SMTP_MESSAGES="${SMTP_MESSAGES:-40000}"
SMTP_SIZE="${SMTP_SIZE:-7500}"
STORE="${STORE:-sqlite}"
BACKLOG_DURATION="${BACKLOG_DURATION:-10s}"

if ! command -v wrk >/dev/null || [ ! -x /usr/sbin/smtp-sink ]; then
  sudo_cmd=""; [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq wrk postfix >/dev/null
fi
if [ -z "${MAILBRIDGE_BIN:-}" ]; then
  cargo build --release -q -p mailbridge
fi
BIN="${MAILBRIDGE_BIN:-target/release/mailbridge}"
NOOP="${NOOP_BIN:-target/release/examples/durable_noop}"
if [ "${BASELINE:-1}" = 1 ] && [ -z "${NOOP_BIN:-}" ]; then
  cargo build --release -q -p mailbridge --example durable_noop
fi

work=$(mktemp -d)
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() {
  kill "${SINK:-}" "${SVC:-}" "${BASE:-}" "${TOXI:-}" 2>/dev/null || true
  [ -n "${PG_PORT:-}" ] && as_pg "$PG_BIN/pg_ctl" stop -m fast -D "$work/pg" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

if [ "${LIMITS:-0}" = 1 ]; then
  cat >"$work/limits.toml" <<'TOML'
[tenants.bench]
recipient_rate = "5/hour"
[tenants.bench.template_rates]
password-reset = "3/hour, 10/day"
TOML
  export MAILBRIDGE_CONFIG="$work/limits.toml"
  sed 's/"email":"ada.lovelace@example.com"/"email":"ada.__KEY__@example.com"/' \
    "${BODY_FILE:-bench/keycloak-request.json}" >"$work/limited.json"
  export BODY_FILE="$work/limited.json"
fi
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 100); do curl -s -o /dev/null "http://$1" && return; sleep 0.1; done; }

SMTP_PORT=$(free_port)
/usr/sbin/smtp-sink -u "$(id -un)" "127.0.0.1:$SMTP_PORT" 1024 >/dev/null 2>&1 &
SINK=$!
SMTP_TARGET="127.0.0.1:$SMTP_PORT"
if [ -n "${SMTP_LATENCY_MS:-}" ]; then
  toxi_api="127.0.0.1:$(free_port)"; SMTP_TARGET="127.0.0.1:$(free_port)"
  "${TOXIPROXY:-$HOME/.cache/mailbridge/bin/toxiproxy-server}" -host 127.0.0.1 -port "${toxi_api#*:}" >/dev/null 2>&1 &
  TOXI=$!
  wait_http "$toxi_api/version"
  curl -fsS -o /dev/null -XPOST "http://$toxi_api/proxies" \
    -d "{\"name\":\"smtp\",\"listen\":\"$SMTP_TARGET\",\"upstream\":\"127.0.0.1:$SMTP_PORT\"}"
  curl -fsS -o /dev/null -XPOST "http://$toxi_api/proxies/smtp/toxics" \
    -d "{\"type\":\"latency\",\"stream\":\"downstream\",\"attributes\":{\"latency\":$SMTP_LATENCY_MS}}"
  echo "SMTP replies delayed by $SMTP_LATENCY_MS ms (Toxiproxy at $SMTP_TARGET)"
fi

if [ "$STORE" = postgres ]; then
  # Durable as in production: fsync and synchronous_commit stay on.
  PG_PORT=$(free_port)
  mkdir "$work/pg"; [ "$(id -u)" = 0 ] && chown -R postgres: "$work"
  as_pg "$PG_BIN/initdb" --auth=trust --username=mailbridge -D "$work/pg" >/dev/null
  as_pg "$PG_BIN/pg_ctl" start -w -D "$work/pg" -l "$work/pg.log" \
    -o "-c listen_addresses=127.0.0.1 -c port=$PG_PORT -c unix_socket_directories=$work \
        ${PG_STATEMENTS:+-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track_planning=on}" >/dev/null
fi

# A fresh store for each run: $1 names it.
fresh_store() {
  if [ "$STORE" = postgres ]; then
    "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U mailbridge "$1"
    DB_URL="postgres://mailbridge@127.0.0.1:$PG_PORT/$1"
    if [ -n "${PG_STATEMENTS:-}" ]; then
      "$PG_BIN/psql" -q -h 127.0.0.1 -p "$PG_PORT" -U mailbridge -d "$1" -c "CREATE EXTENSION pg_stat_statements"
    fi
    count() { "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U mailbridge -d "$DB" -Atc "select count(*) from messages where status $1" 2>/dev/null || echo 0; }
  else
    DB_URL="sqlite://$work/$1.db"
    count() { sqlite3 "file:$work/$DB.db?mode=ro" "select count(*) from messages where status $1" 2>/dev/null || echo 0; }
  fi
  DB=$1
}

# wrk against $1 at $2 connections; prints wrk's report into $3.
load() {
  wrk -t"$THREADS" -c"$2" -d"$DURATION" --latency -s bench/post.lua "http://$1/v1/messages" >"$3"
  cat "$3"
}
# CPU time a process used so far, in clock ticks (user + system).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# PostgreSQL's own CPU: the postmaster, its live children and the ones it
# has reaped (the service's backends, once it stops).
pg_ticks() {
  local pm; pm=$(head -1 "$work/pg/postmaster.pid")
  { awk '{print $14 + $15 + $16 + $17}' "/proc/$pm/stat"
    for p in $(pgrep -P "$pm"); do awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null; done
  } | awk '{s += $1} END {print s}'
}
# With PG_STATEMENTS=1: the server's time by statement over the run (planning
# and execution, from pg_stat_statements), per message delivered ($1).
pg_statements() {
  echo "== server time by statement (pg_stat_statements); per message: µs, calls, rows, pages read, pages dirtied, WAL bytes"
  "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U mailbridge -d "$DB" -P pager=off -F ' | ' -A -c "
    SELECT round(((total_exec_time + total_plan_time) * 1000 / $1)::numeric, 1) AS us,
           round((total_plan_time * 1000 / $1)::numeric, 1) AS plan_us,
           round((calls::numeric / $1), 3) AS calls, round((rows::numeric / $1), 2) AS rows,
           round((shared_blks_hit + shared_blks_read)::numeric / $1, 1) AS pages,
           round(shared_blks_dirtied::numeric / $1, 2) AS dirtied, round(wal_bytes / $1) AS wal_bytes,
           left(regexp_replace(query, '\s+', ' ', 'g'), 110) AS statement
      FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
     ORDER BY total_exec_time + total_plan_time DESC LIMIT ${PG_STATEMENTS_TOP:-15}"
}
# Bytes a process caused to be written to the disk so far.
disk_bytes() { awk '/^write_bytes/ {print $2}' "/proc/$1/io"; }
rate() { awk '/^Requests\/sec/ {print $2}' "$1"; }
pct() { awk -v p="$2%" '$1 == p {print $2}' "$1"; }

baseline() {
  local c=$1 port; port=$(free_port)
  $NOOP "127.0.0.1:$port" "$work/noop-$c.log" &
  BASE=$!
  wait_http "127.0.0.1:$port/"
  echo "== durable no-op baseline: wrk -t$THREADS -c$c -d$DURATION"
  load "127.0.0.1:$port" "$c" "$work/noop-$c.txt"
  cpu_ticks "$BASE" >"$work/noop-$c.cpu"
  disk_bytes "$BASE" >"$work/noop-$c.disk"
  kill "$BASE"; wait "$BASE" 2>/dev/null || true; BASE=
}

# Starts mailbridge on a fresh store $1; $2 is added to the transport's options.
start_service() {
  fresh_store "$1"
  export MAILBRIDGE_LISTEN="127.0.0.1:$(free_port)"
  export MAILBRIDGE_DATABASE_URL="$DB_URL"
  export MAILBRIDGE_TRANSPORT="smtp://$SMTP_TARGET?tls=none&max_connections=$SMTP_CONNECTIONS$2"
  export MAILBRIDGE_JWT_SECRET="bench-secret-0123456789abcdef-0123456789"
  export MAILBRIDGE_LOG="warn"
  export MAILBRIDGE_MAX_PENDING=100000000
  $BIN serve &
  SVC=$!
  wait_http "$MAILBRIDGE_LISTEN/readyz"
  MB_TOKEN=$($BIN token --tenant bench --ttl 600)
  export MB_TOKEN
}
stop_service() { kill "$SVC"; wait "$SVC" 2>/dev/null || true; SVC=; }

service() {
  local c=$1 pg_before=0
  [ "$STORE" = postgres ] && pg_before=$(pg_ticks)
  start_service "bench_$c" ""
  local start drain_start sent_before end sent failed peak_kib
  start=$(date +%s.%N)
  echo "== mailbridge ($STORE): wrk -t$THREADS -c$c -d$DURATION"
  load "$MAILBRIDGE_LISTEN" "$c" "$work/svc-$c.txt"
  drain_start=$(date +%s.%N)
  sent_before=$(count "= 'sent'")
  while [ "$(count "not in ('sent','failed')")" != 0 ]; do sleep 0.2; done
  end=$(date +%s.%N)
  sent=$(count "= 'sent'"); failed=$(count "= 'failed'")
  peak_kib=$(awk '/VmHWM/ {print $2}' "/proc/$SVC/status")
  cpu_ticks "$SVC" >"$work/svc-$c.cpu"
  disk_bytes "$SVC" >"$work/svc-$c.disk"
  stop_service
  if [ "$STORE" = postgres ]; then
    sleep 0.5  # the service's backends exit and are reaped
    echo $(( $(pg_ticks) - pg_before )) >"$work/pg-$c.cpu"
    if [ -n "${PG_STATEMENTS:-}" ]; then pg_statements "$sent"; fi
  fi
  python3 - "$start" "$end" "$sent" "$failed" "$peak_kib" "$drain_start" "$sent_before" <<'PY' | tee "$work/svc-$c.delivery"
import sys
start, end, sent, failed, peak = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
drain_start, sent_before = float(sys.argv[6]), int(sys.argv[7])
alone = (sent - sent_before) / max(end - drain_start, 1e-9)
print(f"delivered {sent} messages ({failed} failed) in {end-start:.1f}s from the first accept: {sent/(end-start):.0f} messages/s")
print(f"after the load stopped: {sent-sent_before} messages in {end-drain_start:.1f}s: {alone:.0f} messages/s (delivery alone)")
print(f"peak resident memory of the service: {peak/1024:.1f} MiB")
print(f"SUMMARY {sent/(end-start):.0f} {alone:.0f} {peak/1024:.1f} {sent+failed}")
PY
}

# Delivery alone, from a backlog: accepted while the sink is stopped (SIGSTOP:
# the kernel still completes the worker's connections, but no greeting comes),
# then sent as fast as the worker can once the sink runs again.
delivery_ceiling() {
  local total t0 t1
  start_service bench_delivery "&timeout=120s"
  kill -STOP "$SINK"
  echo "== delivery from a backlog: accepting for $BACKLOG_DURATION with the sink stopped"
  wrk -t"$THREADS" -c64 -d"$BACKLOG_DURATION" --latency -s bench/post.lua "http://$MAILBRIDGE_LISTEN/v1/messages" >"$work/backlog.txt"
  ACCEPT_ALONE="$(rate "$work/backlog.txt") req/s, p50 / p99 $(pct "$work/backlog.txt" 50) / $(pct "$work/backlog.txt" 99)"
  echo "accepting with no delivery running (64 connections): $ACCEPT_ALONE"
  total=$(count "is not null")
  t0=$(date +%s.%N)
  kill -CONT "$SINK"
  while [ "$(count "not in ('sent','failed')")" != 0 ]; do sleep 0.1; done
  t1=$(date +%s.%N)
  stop_service
  DELIVERY_RATE=$(python3 -c "print(round($total/($t1-$t0)))")
  echo "delivered a backlog of $total messages in $(python3 -c "print(round($t1-$t0,2))")s: $DELIVERY_RATE messages/s over $SMTP_CONNECTIONS connections"
}

# Raw SMTP over persistent sessions, into the same sink.
smtp_baseline() {
  local start end
  echo "== raw SMTP: smtp-source -d -s $SMTP_CONNECTIONS -m $SMTP_MESSAGES -l $SMTP_SIZE"
  start=$(date +%s.%N)
  /usr/sbin/smtp-source -d -s "$SMTP_CONNECTIONS" -m "$SMTP_MESSAGES" -l "$SMTP_SIZE" \
    -f bench@example.com -t sink@example.com "$SMTP_TARGET"
  end=$(date +%s.%N)
  SMTP_RATE=$(python3 -c "print(round($SMTP_MESSAGES/($end-$start)))")
  echo "raw SMTP: $SMTP_MESSAGES messages in $(python3 -c "print(round($end-$start,2))")s: $SMTP_RATE messages/s"
}

rows=()
for c in $CONNECTIONS; do
  [ "${BASELINE:-1}" = 1 ] && baseline "$c"
  service "$c"
  read -r _ e2e alone peak stored < <(grep '^SUMMARY' "$work/svc-$c.delivery")
  svc_rate=$(rate "$work/svc-$c.txt")
  noop_rate=$( [ "${BASELINE:-1}" = 1 ] && rate "$work/noop-$c.txt" || echo 0)
  ratio=$(python3 -c "print(f'{100*$svc_rate/$noop_rate:.0f} %' if $noop_rate else '–')")
  # CPU per message: accepting and delivering it (the service), or storing
  # it (the baseline); steadier than rates while other work shares the cores.
  tick_ms=$(python3 -c "print(1000/$(getconf CLK_TCK))")
  svc_cpu=$(python3 -c "print(f'{$(cat "$work/svc-$c.cpu")*$tick_ms*1000/$stored:.0f}')")
  svc_disk=$(python3 -c "print(f'{$(cat "$work/svc-$c.disk")/1024/$stored:.1f}')")
  if [ "$STORE" = postgres ]; then
    svc_cpu="$svc_cpu (+ $(python3 -c "print(f'{$(cat "$work/pg-$c.cpu")*$tick_ms*1000/$stored:.0f}')") server)"
  fi
  noop_cpu=–; noop_disk=–
  if [ "${BASELINE:-1}" = 1 ]; then
    noop_count=$(awk '/requests in/ {print $1}' "$work/noop-$c.txt")
    noop_cpu=$(python3 -c "print(f'{$(cat "$work/noop-$c.cpu")*$tick_ms*1000/$noop_count:.0f}')")
    noop_disk=$(python3 -c "print(f'{$(cat "$work/noop-$c.disk")/1024/$noop_count:.1f}')")
  fi
  rows+=("| $STORE | $c | $svc_rate | $(pct "$work/svc-$c.txt" 50) / $(pct "$work/svc-$c.txt" 99) | $noop_rate | $ratio | $e2e | $alone | $peak MiB | $stored | $svc_cpu / $noop_cpu | $svc_disk / $noop_disk |")
done
SMTP_RATE=; DELIVERY_RATE=
if [ "${SMTP_BASELINE:-1}" = 1 ]; then
  delivery_ceiling
  smtp_baseline
fi

echo
echo "| store | connections | accept req/s | p50 / p99 | durable no-op req/s | ratio | delivery msg/s (first accept to last send) | delivery alone msg/s | peak RSS | stored | CPU µs per message: service (+ PostgreSQL) / no-op | KiB written to disk per message: service / no-op |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
if [ -n "$SMTP_RATE" ]; then
  echo "accepting with no delivery running (64 connections): $ACCEPT_ALONE"
  echo "delivery from a backlog over $SMTP_CONNECTIONS connections: $DELIVERY_RATE messages/s;" \
    "raw SMTP over $SMTP_CONNECTIONS persistent sessions: $SMTP_RATE messages/s ($SMTP_SIZE bytes each);" \
    "ratio $(python3 -c "print(f'{100*$DELIVERY_RATE/$SMTP_RATE:.0f} %')")"
fi
echo "conditions: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end, $(date -u +%FT%TZ)"
