#!/usr/bin/env bash
# Runs the cargo-fuzz targets of fuzz/ one after another, each for SECONDS
# (default 600), at the lowest CPU priority, keeping what they find in
# fuzz/corpus/<target>/ and crashes in fuzz/artifacts/<target>/.
# Usage: scripts/fuzz.sh [SECONDS] [TARGET…]   (targets: cargo +nightly fuzz list)
# Needs the nightly toolchain; installs cargo-fuzz 0.13 when it is missing.
# Not part of scripts/test.sh: the regression inputs it found are ordinary tests.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-600}"
shift || true
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --version '0.13.*' --locked
fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo +nightly fuzz list)
fi
for target in "${targets[@]}"; do
  echo "==> fuzzing $target for ${seconds}s"
  nice -n 19 cargo +nightly fuzz run "$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1
done
