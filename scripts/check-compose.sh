#!/usr/bin/env bash
# Validates docker-compose.yml (schema, variable interpolation, references)
# without a Docker engine. Uses `docker compose` when the plugin is there,
# else `docker-compose`, installing Debian's package when neither is.
set -euo pipefail
cd "$(dirname "$0")/.."

if command -v docker >/dev/null 2>&1 && docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
else
  if ! command -v docker-compose >/dev/null 2>&1; then
    echo "check-compose: installing docker-compose (Debian package)" >&2
    sudo_=""
    [ "$(id -u)" -eq 0 ] || sudo_="sudo"
    $sudo_ apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq --no-install-recommends docker-compose >/dev/null
  fi
  compose=(docker-compose)
fi

# Without a .env the defaults of docker-compose.yml apply; both must validate.
"${compose[@]}" -f docker-compose.yml config --quiet
echo "docker-compose.yml is valid (${compose[*]})"
