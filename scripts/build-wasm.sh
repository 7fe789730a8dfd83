#!/usr/bin/env bash
# Builds the renderer (crate `render/wasm`) as a WebAssembly module:
#   target/wasm/mailbridge_render.wasm
# for the Keycloak extension (compiled to JVM bytecode by Chicory) and the
# browser. A module with no imports, optimised for size, and the same bytes on
# every machine with the same packages (paths are remapped).
#
# Needs only Debian packages, installed here when missing: rustup cannot fetch
# the wasm32 standard library on these machines, so Debian's Rust (with its
# library sources) builds std for the target itself (-Z build-std).
# Safe to run again: cargo rebuilds only what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

PACKAGES=(rustc-web cargo-web rust-web-src lld-22 binaryen)
TARGET=wasm32-unknown-unknown
# The WebAssembly features the module may use, named rather than left to the
# compiler's defaults (which grow): all of them run in Chicory and browsers.
FEATURES=(bulk-memory sign-ext mutable-globals nontrapping-fptoint)
OUT_DIR="$ROOT/target/wasm"
OUT="$OUT_DIR/mailbridge_render.wasm"
# Cargo's own build directory for the module, apart from the native builds
# (another compiler: mixing them would only invalidate each other's caches).
BUILD_DIR="$ROOT/target/wasm-build"

install_packages() {
  local missing=()
  for package in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
      || missing+=("$package")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "build-wasm: installing ${missing[*]} from Debian's packages"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  # Another build may hold the package lock for a while: wait for it.
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    -o DPkg::Lock::Timeout=600 "${missing[@]}" >/dev/null
}

build() {
  # Debian's cargo and rustc, not rustup's shims (which have no wasm32 std here).
  local cargo=/usr/bin/cargo rustc=/usr/bin/rustc
  local sysroot cargo_home
  sysroot="$($rustc --print sysroot)"
  cargo_home="${CARGO_HOME:-$HOME/.cargo}"
  # Panic messages carry source paths: name them the same on every machine.
  local flags=(
    "-Ctarget-cpu=mvp"
    "-Ctarget-feature=$(printf '+%s,' "${FEATURES[@]}" | sed 's/,$//')"
    "--remap-path-prefix=$ROOT=/mailbridge"
    "--remap-path-prefix=$cargo_home=/cargo"
    "--remap-path-prefix=$sysroot/lib/rustlib/src/rust=/rust"
  )
  env PATH=/usr/bin:/bin \
    CARGO_HOME="$cargo_home" \
    RUSTC="$rustc" \
    RUSTC_BOOTSTRAP=1 \
    RUSTFLAGS="${flags[*]}" \
    CARGO_TARGET_DIR="$BUILD_DIR" \
    CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=wasm-ld-22 \
    "$cargo" build --locked -p mailbridge-render-wasm --lib \
      --target "$TARGET" -Z build-std=std,panic_abort --profile wasm
}

optimise() {
  local built="$BUILD_DIR/$TARGET/wasm/mailbridge_render_wasm.wasm"
  # Nothing rebuilt since the last run: the optimised module is current.
  [ -f "$OUT" ] && [ "$OUT" -nt "$built" ] && return 0
  mkdir -p "$OUT_DIR"
  # -ocimfs=200 inlines less than plain -Os: with more, minijinja's evaluator
  # becomes one function too large for Chicory's compiler, which would then
  # fall back to its interpreter (see DEPENDENCIES.md).
  local enable=(--enable-bulk-memory --enable-sign-ext --enable-mutable-globals
    --enable-nontrapping-float-to-int)
  wasm-opt -Os -ocimfs=200 "${enable[@]}" --strip-debug --strip-producers \
    "$built" -o "$OUT.tmp"
  mv "$OUT.tmp" "$OUT"
}

check() {
  local text
  text="$(wasm-dis "$OUT")"
  if grep -q '^ (import ' <<<"$text"; then
    echo "build-wasm: $OUT imports from its host; it must not:" >&2
    grep '^ (import ' <<<"$text" >&2
    return 1
  fi
  for name in memory mb_alloc mb_free mb_len mb_load_templates mb_render mb_missing; do
    if ! grep -q "^ (export \"$name\"" <<<"$text"; then
      echo "build-wasm: $OUT does not export $name" >&2
      return 1
    fi
  done
}

install_packages
build
optimise
check
echo "build-wasm: $OUT ($(stat -c %s "$OUT") bytes, sha256 $(sha256sum "$OUT" | cut -c1-16)…)"
