#!/usr/bin/env bash
# Builds the sandbox's pid 1 (sandbox_init.c) and the phase launcher (launch.c) into bin/: static,
# so their execs load no shared library. scripts/setup.sh runs it; without them, runs use the
# Python fallbacks (osptrack/sandbox/native/__init__.py).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$HERE/bin"
for pair in sandbox_init.c:osptrack-init launch.c:osptrack-launch; do
  src=${pair%%:*} out=${pair##*:}
  tmp=$(mktemp "$HERE/bin/.$out.XXXXXX")
  ${CC:-cc} -O2 -Wall -Wextra -Werror -static -s -o "$tmp" "$HERE/$src" || { rm -f "$tmp"; exit 1; }
  chmod 0755 "$tmp"
  mv -f "$tmp" "$HERE/bin/$out"
done
