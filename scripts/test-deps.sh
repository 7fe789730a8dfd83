#!/usr/bin/env bash
# Installs what the test suite needs beyond Rust and Java, once, under ~/.cache:
# a Python virtualenv with the SMTP server (aiosmtpd), the SES emulator (moto)
# and an independent DKIM verifier (dkimpy with PyNaCl for Ed25519);
# Debian's PostgreSQL server binaries (the tests start their own servers);
# Chromium and Playwright for the render parity test and the console's studio;
# and Toxiproxy for the network faults of scripts/faults.sh.
# Safe to run again: work already done is skipped.
set -euo pipefail

CACHE="${MAILBRIDGE_CACHE:-$HOME/.cache/mailbridge}"
VENV="$CACHE/venv"
STAMP="$VENV/.mailbridge-deps-v2"
mkdir -p "$CACHE"

if [ ! -f "$STAMP" ]; then
  echo "test-deps: creating Python environment in $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check \
    'aiosmtpd>=1.4,<2' 'moto[server]>=5,<6' 'dkimpy[ed25519]>=1.1,<2'
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

# Toxiproxy (Shopify's), for the network faults of scripts/faults.sh: built from
# the Go module proxy into $CACHE/bin as toxiproxy-server and toxiproxy-cli.
TOXIPROXY_VERSION="v2.5.0"
BIN="$CACHE/bin"
if [ ! -x "$BIN/toxiproxy-server" ] || [ ! -x "$BIN/toxiproxy-cli" ] \
   || [ "$(cat "$BIN/.toxiproxy-version" 2>/dev/null)" != "$TOXIPROXY_VERSION" ]; then
  if command -v go >/dev/null; then
    echo "test-deps: building Toxiproxy $TOXIPROXY_VERSION into $BIN"
    build="$(mktemp -d)"
    GOBIN="$build" go install "github.com/Shopify/toxiproxy/v2/cmd/server@$TOXIPROXY_VERSION"
    GOBIN="$build" go install "github.com/Shopify/toxiproxy/v2/cmd/cli@$TOXIPROXY_VERSION"
    mkdir -p "$BIN"
    mv "$build/server" "$BIN/toxiproxy-server"
    mv "$build/cli" "$BIN/toxiproxy-cli"
    echo "$TOXIPROXY_VERSION" > "$BIN/.toxiproxy-version"
    rm -rf "$build"
  else
    echo "test-deps: no Go toolchain: the network faults of scripts/faults.sh will be skipped"
  fi
fi
if [ -x "$BIN/toxiproxy-server" ]; then
  echo "test-deps: toxiproxy at $BIN/toxiproxy-server"
fi
