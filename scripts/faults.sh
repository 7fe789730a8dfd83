#!/usr/bin/env bash
# The fault suite: injects real faults into the real service binary with real
# peers, all on 127.0.0.1, and checks mailbridge's promises (RELIABILITY.md):
# nothing accepted is lost, duplicates stay within the attempts in flight at a
# fault, every 202 is on disk, refusals are 503 problem+json with Retry-After,
# final statuses agree with what the SMTP server saw.
#
#   scripts/faults.sh quick            disk full, SMTP drop mid-DATA, kill -9, a provider's lost answer (~40 s)
#   scripts/faults.sh full             every scenario (~8 min, bounded to 30)
#   scripts/faults.sh SCENARIO...      some of them (names: scripts/faults/run.py --help)
#
# FAULTS_RESULTS=FILE writes the figures as JSON; FAULTS_KEEP=1 keeps the work
# directory (logs of every process). FAULTS_BUILD=debug runs the debug binary
# that `cargo test --workspace` builds (the test command does, so a fresh
# machine compiles the service once, not twice); the default is release.
# Exits non-zero when a promise breaks.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || set -- quick

CACHE="${MAILBRIDGE_CACHE:-$HOME/.cache/mailbridge}"
bash scripts/test-deps.sh >/dev/null
case "${FAULTS_BUILD:-release}" in
  release) cargo build --release --locked -q -p mailbridge; binary=target/release/mailbridge ;;
  # The same command as the test step: nothing to build after it.
  debug) cargo test --workspace --locked --no-run -q; binary=target/debug/mailbridge ;;
  *) echo "FAULTS_BUILD is release or debug" >&2; exit 2 ;;
esac

# The judgement itself first: it must fail on made-up broken runs.
(cd scripts/faults && "$CACHE/venv/bin/python" -m unittest -q test_verdict)

bound=600
for what in "$@"; do [ "$what" = quick ] || bound=1800; done
args=(--binary "$binary" --toxiproxy "$CACHE/bin/toxiproxy-server")
[ -n "${FAULTS_RESULTS:-}" ] && args+=(--results "$FAULTS_RESULTS")
[ -n "${FAULTS_KEEP:-}" ] && args+=(--keep)
# Every wait inside is bounded; this bounds the whole run as well.
exec timeout --kill-after=30 "$bound" "$CACHE/venv/bin/python" scripts/faults/run.py "${args[@]}" "$@"
