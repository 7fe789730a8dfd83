#!/usr/bin/env bash
# Installs what the test suite needs beyond Rust and Java, once, under ~/.cache:
# a Python virtualenv with the SMTP server (aiosmtpd) and the SES emulator (moto).
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
