#!/usr/bin/env bash
# Installs what the test suite needs beyond Rust and Java, once, under ~/.cache:
# a Python virtualenv with the SMTP server (aiosmtpd) and the SES emulator (moto);
# and Debian's PostgreSQL server binaries (the tests start their own servers).
# Safe to run again: work already done is skipped.
set -euo pipefail

CACHE="${MAILBRIDGE_CACHE:-$HOME/.cache/mailbridge}"
VENV="$CACHE/venv"
STAMP="$VENV/.mailbridge-deps-v1"
mkdir -p "$CACHE"

if [ ! -f "$STAMP" ]; then
  echo "test-deps: creating Python environment in $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check \
    'aiosmtpd>=1.4,<2' 'moto[server]>=5,<6'
  touch "$STAMP"
fi
echo "test-deps: python at $VENV/bin/python"

# PostgreSQL: the tests run initdb/pg_ctl themselves, on loopback, as the
# `postgres` user when run as root. Only the binaries are needed here.
if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  echo "test-deps: installing PostgreSQL from Debian's packages"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
fi
# The Debian package starts a cluster of its own; the tests do not use it.
echo "test-deps: postgres at $(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"

# Headless Chromium runs the browser module (render/wasm/render.js) in the
# render parity test: Debian's browser (Playwright's own download does not
# work everywhere), driven by Playwright for Python.
if ! command -v chromium >/dev/null; then
  echo "test-deps: installing Chromium from Debian's packages"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
if ! "$VENV/bin/python" -c "import playwright" 2>/dev/null; then
  "$VENV/bin/pip" install --quiet --disable-pip-version-check 'playwright>=1.40,<2'
fi
echo "test-deps: chromium at $(command -v chromium)"
