#!/usr/bin/env bash
# Byte-compiles osptrack's own sources into __pycache__, even when PYTHONDONTWRITEBYTECODE is set
# (compileall writes regardless; only the import system honours the variable). The editable
# install leaves src/ uncompiled, and an interpreter that may not write .pyc files then compiles
# every module at each start: about 0.5 s of every `osptrack` command. Timestamp-checked .pyc
# files, so an edited source is simply compiled in memory again, never run stale.
# Usage: scripts/compile-bytecode.sh [PYTHON] [SRC_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-.venv/bin/python}
SRC=${2:-src/osptrack}
"$PY" -m compileall -q -j 0 "$SRC" >/dev/null
