#!/usr/bin/env bash
# Where the service's CPU time goes while it accepts (and delivers) under load:
# perf samples `mailbridge serve` (SQLite, or STORE=postgres) while wrk sends
# bench/post.lua's Keycloak-shaped requests at CONNECTIONS, the worker
# delivering to smtp-sink meanwhile. Writes to OUT (default target/profile/):
#   flame.svg   a flame graph (inferno) of every thread's stacks,
#   top.txt     self time by function, the largest first,
#   threads.txt samples per thread (async workers, rendering threads, the
#               SQLite store's writer thread, sqlx's connection threads).
# SINK_STOPPED=1 stops smtp-sink (SIGSTOP) before the load: the accept path
# alone, nothing delivered.
# Counting samples is meaningful on a busy machine too; a rate is not.
# Needs linux-perf (Debian) and inferno (crates.io); installs them when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${DURATION:-10}"
CONNECTIONS="${CONNECTIONS:-64}"
FREQ="${FREQ:-499}"
STORE="${STORE:-sqlite}"
OUT="${OUT:-target/profile}"

sudo_cmd=""; [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
if ! command -v perf >/dev/null || ! command -v wrk >/dev/null || [ ! -x /usr/sbin/smtp-sink ]; then
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq linux-perf wrk postfix >/dev/null
fi
command -v inferno-flamegraph >/dev/null || cargo install --locked inferno
# Symbols stay in the release binary (strip = "debuginfo"); stacks are
# unwound from its .eh_frame with --call-graph dwarf.
if [ -z "${MAILBRIDGE_BIN:-}" ]; then cargo build --release -q -p mailbridge; fi
BIN="${MAILBRIDGE_BIN:-target/release/mailbridge}"
mkdir -p "$OUT"

work=$(mktemp -d)
cleanup() { kill -CONT "${SINK:-}" 2>/dev/null || true; kill "${SINK:-}" "${SVC:-}" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

SMTP_PORT=$(free_port)
/usr/sbin/smtp-sink -u "$(id -un)" "127.0.0.1:$SMTP_PORT" 1024 >/dev/null 2>&1 &
SINK=$!
if [ "${SINK_STOPPED:-0}" = 1 ]; then sleep 0.2; kill -STOP "$SINK"; fi
if [ "$STORE" = postgres ]; then
  : "${MAILBRIDGE_DATABASE_URL:?STORE=postgres: set MAILBRIDGE_DATABASE_URL to a throwaway database}"
else
  export MAILBRIDGE_DATABASE_URL="sqlite://$work/profile.db"
fi
export MAILBRIDGE_LISTEN="127.0.0.1:$(free_port)"
export MAILBRIDGE_TRANSPORT="smtp://127.0.0.1:$SMTP_PORT?tls=none&max_connections=${SMTP_CONNECTIONS:-8}"
export MAILBRIDGE_JWT_SECRET="bench-secret-0123456789abcdef-0123456789"
export MAILBRIDGE_LOG="warn"
export MAILBRIDGE_MAX_PENDING=100000000
$BIN serve &
SVC=$!
for _ in $(seq 100); do curl -fs "http://$MAILBRIDGE_LISTEN/readyz" >/dev/null && break; sleep 0.1; done
MB_TOKEN=$($BIN token --tenant bench --ttl 600)
export MB_TOKEN

# Warm up (connections, pools, the page cache) before sampling.
wrk -t2 -c"$CONNECTIONS" -d2s -s bench/post.lua "http://$MAILBRIDGE_LISTEN/v1/messages" >/dev/null
wrk -t2 -c"$CONNECTIONS" -d"$((DURATION + 2))s" -s bench/post.lua "http://$MAILBRIDGE_LISTEN/v1/messages" >"$OUT/wrk.txt" &
WRK=$!
sleep 1
cpu() { awk '{print $14 + $15}' "/proc/$SVC/stat"; }
cpu_before=$(cpu)
$sudo_cmd perf record -q -F "$FREQ" --call-graph dwarf,16384 -p "$SVC" -o "$work/perf.data" -- sleep "$DURATION" 2>/dev/null
cpu_after=$(cpu)
wait "$WRK"
echo "service CPU while sampled: $(( (cpu_after - cpu_before) * 100 / $(getconf CLK_TCK) / DURATION )) % of one core" | tee "$OUT/cpu.txt"
$sudo_cmd perf script -i "$work/perf.data" 2>/dev/null | inferno-collapse-perf --all >"$OUT/stacks.folded"
inferno-flamegraph --title "mailbridge accept + deliver, $CONNECTIONS connections ($STORE)" <"$OUT/stacks.folded" >"$OUT/flame.svg"
report() {
  $sudo_cmd perf report -i "$work/perf.data" --no-children -g none --percent-limit 0.3 --stdio --sort "$1" 2>/dev/null \
    | grep -E '^ +[0-9]' | sed -E 's/[[:space:]]+$//' || true
}
report symbol >"$OUT/top.txt"
report comm >"$OUT/threads.txt"
echo "wrote $OUT/flame.svg, top.txt, threads.txt, stacks.folded (perf script | inferno-collapse-perf); wrk's view in $OUT/wrk.txt"
