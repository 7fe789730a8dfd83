#!/usr/bin/env bash
# Runs the end-to-end smoke (tests/tests/keycloak_smoke.rs: an email through
# mailbridge, "Test connection", the template preview, the SMTP fallback
# rendered inside Keycloak) against Keycloak versions, with the one jar built
# against the pinned version.
#
# Usage: scripts/keycloak-compat.sh [VERSION|oldest|pinned|newest ...]
#   Without arguments: every version in keycloak-versions.txt.
# Each Keycloak's distribution zip comes from Maven Central once and is cached
# under ~/.cache/mailbridge. Exits non-zero when any version fails, after
# trying them all.
set -uo pipefail
cd "$(dirname "$0")/.."

list=keycloak-versions.txt
versions() { grep -v '^\s*#' "$list" | awk 'NF { print $1 }'; }
by_role() { grep -v '^\s*#' "$list" | awk -v role="$1" '$2 == role { print $1 }'; }

pinned=$(by_role pinned)
pom=$(sed -n 's|.*<keycloak.version>\(.*\)</keycloak.version>.*|\1|p' keycloak-extension/pom.xml)
if [ "$pinned" != "$pom" ]; then
  echo "keycloak-compat: $list pins $pinned but keycloak-extension/pom.xml builds against $pom" >&2
  exit 2
fi

wanted=()
if [ $# -eq 0 ]; then
  mapfile -t wanted < <(versions)
fi
for arg in "$@"; do
  case "$arg" in
    oldest|pinned|newest) wanted+=("$(by_role "$arg")") ;;
    *) wanted+=("$arg") ;;
  esac
done

# The jar under test is the current sources' (the smoke would reuse a stale one).
jar=keycloak-extension/target/mailbridge-keycloak.jar
if [ ! -f "$jar" ] || [ -n "$(find keycloak-extension/src keycloak-extension/pom.xml render templates -newer "$jar" -type f -print -quit)" ]; then
  mvn -B -ntp -q -DskipTests -f keycloak-extension/pom.xml package || exit 1
fi

failed=()
for version in "${wanted[@]}"; do
  echo "==> Keycloak $version"
  if MAILBRIDGE_KEYCLOAK_VERSION="$version" \
      cargo test -p e2e --locked --test keycloak_smoke -- --ignored --nocapture; then
    echo "<== Keycloak $version: ok"
  else
    echo "<== Keycloak $version: FAILED"
    failed+=("$version")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "keycloak-compat: failed on ${failed[*]}"
  exit 1
fi
echo "keycloak-compat: passed on ${wanted[*]}"
