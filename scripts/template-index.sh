#!/usr/bin/env bash
# Lists the template files under DIR (paths relative to it, one a line,
# sorted) into FILE: the Keycloak extension reads its templates from the jar
# through this list, as resources inside a jar cannot be listed.
# Usage: template-index.sh DIR FILE
set -euo pipefail
dir="$1" file="$2"
mkdir -p "$(dirname "$file")"
(cd "$dir" && find . -type f \( -name '*.j2' -o -name '*.ftl' -o -name '*.json' \) \
  | sed 's|^\./||' | LC_ALL=C sort) >"$file.tmp"
mv "$file.tmp" "$file"
