#!/usr/bin/env bash
# Time to answer an html-only message of deeply nested <div> (the text part
# is derived from the HTML), and /healthz's latency while three such
# messages arrive at once. Every request is bounded by curl's --max-time.
#
# (the end tags are left out, as a browser would close them: 5 bytes a level).
#
#   MAILBRIDGE_BIN=target/release/mailbridge bash bench/html_accept.sh
#
# Knobs: DEPTH (48000: 240 KB), MAX_TIME (seconds per request, 120).
set -euo pipefail

bin=${MAILBRIDGE_BIN:-target/release/mailbridge}
depth=${DEPTH:-48000}
max_time=${MAX_TIME:-120}
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

MAILBRIDGE_LISTEN=127.0.0.1:$port \
MAILBRIDGE_DATABASE_URL=sqlite://$work/mb.db \
MAILBRIDGE_TRANSPORT=file://$work/outbox \
MAILBRIDGE_TEMPLATES=templates \
MAILBRIDGE_SHUTDOWN_DELAY=0s \
  "$bin" serve --insecure-no-auth 2>"$work/log" &
service=$!
trap 'kill $service 2>/dev/null; wait $service 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$port/readyz" >/dev/null && break
  sleep 0.1
done

python3 - "$depth" >"$work/body.json" <<'PY'
import json, sys
n = int(sys.argv[1])
html = "<div>" * n + "reset"
print(json.dumps({"to": [{"email": "ada@example.com"}], "subject": "Hi", "html": html}))
PY
echo "body: $(wc -c <"$work/body.json") bytes, $depth nested <div>"

post() {
  curl -s -o /dev/null --max-time "$max_time" -w '%{http_code} %{time_total}s\n' \
    -H 'content-type: application/json' --data-binary @"$work/body.json" \
    "http://127.0.0.1:$port/v1/messages" || echo "no answer within ${max_time}s"
}

echo "one message: $(post)"
pids=()
for i in 1 2 3; do post >"$work/concurrent.$i" & pids+=($!); done
sleep 0.5
echo "/healthz during three at once: $(curl -s -o /dev/null --max-time "$max_time" -w '%{http_code} %{time_total}s' "http://127.0.0.1:$port/healthz" || echo "no answer within ${max_time}s")"
wait "${pids[@]}" || true
for i in 1 2 3; do echo "concurrent $i: $(cat "$work/concurrent.$i")"; done
