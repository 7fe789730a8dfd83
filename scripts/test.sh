#!/usr/bin/env bash
# Runs every test of mailbridge: formatting and lints, the Rust service's unit and
# black-box tests (real SMTP servers, the SES emulator), the renderer built as
# WebAssembly, the Keycloak extension's unit tests (with the renderer in the JVM),
# the end-to-end suite (a real Keycloak, and the JVM's renders against the
# service's), its smoke on the newest Keycloak in keycloak-versions.txt, and
# the quick part of the fault suite (scripts/faults.sh) against the binary
# the tests built.
# Installs what it needs first (cached under ~/.cache/mailbridge). Exits non-zero
# when any step fails, after running them all.
set -uo pipefail
cd "$(dirname "$0")/.."

failed=()
step() {
  local name="$1"; shift
  echo
  echo "==> $name"
  local start=$SECONDS
  if "$@"; then echo "<== $name: ok"; else echo "<== $name: FAILED"; failed+=("$name"); fi
  echo "    ($((SECONDS - start)) s)"
}

# Free disk space before and after: a build needs a few GiB (target/ holds one
# binary of the service's black-box tests, not one per file).
disk() { echo "disk: $(df -h --output=avail . | tail -1 | tr -d ' ') free; target/ $(du -sh target 2>/dev/null | cut -f1)"; }
disk

step "test dependencies" bash scripts/test-deps.sh
step "rustfmt" cargo fmt --all -- --check
step "clippy" cargo clippy --workspace --all-targets --locked -- -D warnings
# Installs Debian's Rust for wasm32 when missing; the Maven build runs it again (then a no-op).
step "renderer as WebAssembly" bash scripts/build-wasm.sh
step "keycloak extension (maven)" mvn -B -ntp -f keycloak-extension/pom.xml verify
step "rust tests" cargo test --workspace --locked --no-fail-fast
# The fuzz targets (RELIABILITY.md, run by scripts/fuzz.sh on nightly) are
# their own workspace: checked here so that they keep compiling.
step "fuzz targets compile" env CARGO_TARGET_DIR=target cargo check --manifest-path fuzz/Cargo.toml --locked --bins
# The full end-to-end suite above ran on the pinned Keycloak; the smoke on the newest one too.
step "keycloak newest (smoke)" bash scripts/keycloak-compat.sh newest
step "docker-compose.yml" bash scripts/check-compose.sh
# The binary the Rust tests built: a fresh machine compiles the service once.
# The full suite (RELIABILITY.md) runs on the release build.
step "fault suite (quick)" env FAULTS_BUILD=debug bash scripts/faults.sh quick

echo
disk
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED: ${failed[*]}"
  exit 1
fi
echo "all test steps passed"
