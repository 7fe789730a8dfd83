#!/usr/bin/env bash
# Validates docker-compose.yml without a Docker engine: `docker compose config`
# when the compose plugin is there, else Debian's docker-compose (installed when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
if docker compose version >/dev/null 2>&1; then
  exec docker compose config --quiet
fi
if ! command -v docker-compose >/dev/null 2>&1; then
  sudo_cmd=""; [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends docker-compose >/dev/null
fi
exec docker-compose config --quiet
