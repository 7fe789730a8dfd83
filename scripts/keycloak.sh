#!/usr/bin/env bash
# A real Keycloak with the mailbridge extension, for trying it out and for the end-to-end tests.
#
#   scripts/keycloak.sh fetch    download and unpack the Keycloak distribution (once)
#   scripts/keycloak.sh start    start Keycloak in dev mode with the extension; prints its PID
#   scripts/keycloak.sh stop     stop the Keycloak started by `start` on $PORT
#
# The Keycloak version is the one keycloak-extension/pom.xml builds against (keycloak.version).
# Environment:
#   PORT                          HTTP port (default 8080)
#   MAILBRIDGE_URL                the service's base URL (default http://127.0.0.1:8090)
#   MAILBRIDGE_SECRET             shared HS256 secret (default: none, no token is sent)
#   MAILBRIDGE_FALLBACK           none | smtp (default none)
#   MAILBRIDGE_TIMEOUT            request bound in ms (default 5000)
#   KC_BOOTSTRAP_ADMIN_USERNAME / KC_BOOTSTRAP_ADMIN_PASSWORD   first admin (default admin / admin)
#   KEYCLOAK_WAIT                 seconds to wait for Keycloak to answer (default 300)
#   MAILBRIDGE_CACHE              download and unpack directory (default ~/.cache/mailbridge)
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
pom="$root/keycloak-extension/pom.xml"
version="$(sed -n 's:.*<keycloak.version>\(.*\)</keycloak.version>.*:\1:p' "$pom" | head -n 1)"
cache="${MAILBRIDGE_CACHE:-$HOME/.cache/mailbridge}"
zip="$cache/keycloak-quarkus-dist-$version.zip"
home="$cache/keycloak-$version"
port="${PORT:-8080}"
pidfile="$cache/keycloak-$port.pid"
logfile="$cache/keycloak-$port.log"
jar="$root/keycloak-extension/target/mailbridge-keycloak.jar"

die() { echo "keycloak.sh: $*" >&2; exit 1; }

fetch() {
  [ -n "$version" ] || die "no keycloak.version in $pom"
  mkdir -p "$cache"
  if [ ! -f "$zip" ]; then
    echo "Downloading Keycloak $version ..."
    mvn -B -ntp -q dependency:copy \
      -Dartifact="org.keycloak:keycloak-quarkus-dist:$version:zip" \
      -DoutputDirectory="$cache" >&2
  fi
  if [ ! -x "$home/bin/kc.sh" ]; then
    echo "Unpacking Keycloak $version into $home ..."
    rm -rf "$home.tmp"
    mkdir -p "$home.tmp"
    unzip -q "$zip" -d "$home.tmp"
    mv "$home.tmp/keycloak-$version" "$home"
    rm -rf "$home.tmp"
  fi
}

running_pid() {
  if [ -f "$pidfile" ]; then
    local pid
    pid="$(cat "$pidfile")"
    if kill -0 "$pid" 2>/dev/null; then echo "$pid"; return 0; fi
  fi
  return 1
}

start() {
  fetch
  if pid="$(running_pid)"; then die "Keycloak already runs on port $port (PID $pid); stop it first"; fi
  if [ ! -f "$jar" ]; then
    echo "Building $jar ..."
    mvn -B -ntp -q -f "$pom" package -DskipTests >&2
  fi
  cp "$jar" "$home/providers/mailbridge-keycloak.jar"

  if [ -z "${JAVA_HOME:-}" ] && [ -d /usr/lib/jvm/temurin-25-jdk-amd64 ]; then
    export JAVA_HOME=/usr/lib/jvm/temurin-25-jdk-amd64
  fi
  export KC_BOOTSTRAP_ADMIN_USERNAME="${KC_BOOTSTRAP_ADMIN_USERNAME:-admin}"
  export KC_BOOTSTRAP_ADMIN_PASSWORD="${KC_BOOTSTRAP_ADMIN_PASSWORD:-admin}"
  # Options go through the environment, so the secret does not show up in `ps`.
  export KC_SPI_EMAIL_SENDER__MAILBRIDGE__URL="${MAILBRIDGE_URL:-http://127.0.0.1:8090}"
  export KC_SPI_EMAIL_SENDER__MAILBRIDGE__FALLBACK="${MAILBRIDGE_FALLBACK:-none}"
  export KC_SPI_EMAIL_SENDER__MAILBRIDGE__TIMEOUT="${MAILBRIDGE_TIMEOUT:-5000}"
  if [ -n "${MAILBRIDGE_SECRET:-}" ]; then
    export KC_SPI_EMAIL_SENDER__MAILBRIDGE__SECRET="$MAILBRIDGE_SECRET"
  fi

  echo "Starting Keycloak $version on port $port (log: $logfile) ..."
  started=$(date +%s)
  nohup "$home/bin/kc.sh" start-dev \
    --http-port="$port" \
    --spi-email-sender--provider=mailbridge \
    --spi-email-template--provider=mailbridge \
    >"$logfile" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$pidfile"

  url="http://127.0.0.1:$port/realms/master/.well-known/openid-configuration"
  deadline=$((started + ${KEYCLOAK_WAIT:-300}))
  until curl -fsS -o /dev/null "$url" 2>/dev/null; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 40 "$logfile" >&2
      rm -f "$pidfile"
      die "Keycloak exited during start (log: $logfile)"
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      tail -n 40 "$logfile" >&2
      stop
      die "Keycloak did not answer within ${KEYCLOAK_WAIT:-300} s"
    fi
    sleep 2
  done
  echo "Keycloak is up after $(( $(date +%s) - started )) s: http://127.0.0.1:$port (admin: $KC_BOOTSTRAP_ADMIN_USERNAME)"
  echo "PID $pid"
}

stop() {
  local pid
  if ! pid="$(running_pid)"; then
    rm -f "$pidfile"
    echo "No Keycloak runs on port $port"
    return 0
  fi
  kill -TERM "$pid"
  for _ in $(seq 1 60); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "Keycloak (PID $pid) did not stop within 60 s; killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
  echo "Stopped Keycloak (PID $pid)"
}

case "${1:-}" in
  fetch) fetch ;;
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 fetch|start|stop" >&2; exit 2 ;;
esac
