#!/usr/bin/env bash
# Benchmarks the renderer: in the JVM (the WebAssembly module compiled by
# Chicory, as Keycloak runs it) and natively (as the service runs it), on the
# same templates and requests:
#  - password-reset (text from its own text.j2), and
#  - the same email from a template without text.j2 (text derived from HTML);
# plus the JVM's cold start, heap in use, and the jar's size.
# Knobs: WARMUP (default 2000), ITERATIONS (default 5000).
set -euo pipefail
cd "$(dirname "$0")/../.."
WARMUP="${WARMUP:-2000}"
ITERATIONS="${ITERATIONS:-5000}"
JAR=keycloak-extension/target/mailbridge-keycloak.jar
[ -f "$JAR" ] || mvn -B -ntp -q -f keycloak-extension/pom.xml package -DskipTests

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The shipped templates, plus tenant `bench` whose password-reset has no text.j2.
cp -r templates "$work/templates"
mkdir -p "$work/templates/tenants/bench/emails/password-reset"
cp templates/emails/password-reset/{subject.j2,html.j2} "$work/templates/tenants/bench/emails/password-reset/"
sample=$(cat templates/emails/password-reset/sample.json)
echo "{\"tenant\":\"default\",\"template\":\"password-reset\",\"locale\":\"de\",\"data\":$sample}" >"$work/password-reset.json"
echo "{\"tenant\":\"bench\",\"template\":\"password-reset\",\"locale\":\"de\",\"data\":$sample}" >"$work/derived-text.json"

echo "== JVM (Chicory, build-time compiled), $(java -version 2>&1 | head -1)"
java -Xmx256m -cp "$JAR" bench/render/RenderBench.java "$work/templates" "$WARMUP" "$ITERATIONS" \
  "$work/password-reset.json" "$work/derived-text.json"
echo "jar: $(stat -c %s "$JAR") bytes; module: $(stat -c %s target/wasm/mailbridge_render.wasm) bytes"

echo "== native (Rust, release)"
cargo run -q --release -p mailbridge-render --example render_bench -- "$work/templates" "$WARMUP" "$ITERATIONS" \
  "$work/password-reset.json" "$work/derived-text.json"
