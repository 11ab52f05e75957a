#!/bin/sh
# Usage: nuget_import.sh ID VERSION. The analysed package's lib/ assemblies (nearest net4x/netstandard
# folder, as the install phase referenced them), loaded by a harness compiled here with mcs.
set -eu
id=$1
version=$2
here=$(dirname "$0")
exe=${TMPDIR:-/tmp}/osptrack-nuget-import-$$.exe
mcs -nologo -out:"$exe" "$here/nuget_import.cs" >/dev/null
host=$(python3 "$here/mono_host.py")
dlls=$(python3 - "$here" "$id" "$version" <<'PY'
import os, sys
sys.path.insert(0, sys.argv.pop(1))
from nuget_install import best_tfm_dir, own_dir
pkg = own_dir(sys.argv[1], sys.argv[2])
if pkg is not None:
    lib = best_tfm_dir(os.path.join(pkg, "lib")) or os.path.join(pkg, "lib")
    if os.path.isdir(lib):
        print("\n".join(os.path.join(lib, f) for f in sorted(os.listdir(lib)) if f.lower().endswith(".dll")))
PY
)
# shellcheck disable=SC2086 # one path a line, no spaces in restored paths
exec mono "$host" "$exe" $dlls
