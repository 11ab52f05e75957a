#!/usr/bin/env bash
# Installs everything osptrack and its tests need on a fresh Debian 12 machine, as root.
# Idempotent: re-running it only fills in what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# chromium: the HTML report's browser test (Playwright drives it by executable_path; never `playwright install`).
APT_PACKAGES=(bubblewrap strace nftables iproute2 python3 python3-venv python3-pip nodejs npm chromium)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
# node/npm may come from elsewhere (the machine image ships npm 11 under /usr); don't fight it.
if command -v node >/dev/null && command -v npm >/dev/null; then
  missing=("${missing[@]/nodejs}"); missing=("${missing[@]/npm}")
fi
missing=($(printf '%s\n' "${missing[@]}" | grep -v '^$' || true))
if ((${#missing[@]})); then
  echo "setup: apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Toolchains of the other four ecosystems (ruby, php/composer, rust, mono/nuget).
bash scripts/setup-toolchains.sh

# The project's own environment: the pyenv/system python3 first on PATH, in a venv.
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e '.[dev]'

# Offline build tools for sdists (plain wheel bytes; nothing is executed here).
TOOLS=${OSPTRACK_CACHE:-/var/cache/osptrack}/build-tools
mkdir -p "$TOOLS"
if ! ls "$TOOLS"/setuptools-*.whl >/dev/null 2>&1 || ! ls "$TOOLS"/wheel-*.whl >/dev/null 2>&1; then
  .venv/bin/pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
    -d "$TOOLS" setuptools==75.1.0 wheel==0.44.0
fi
echo "setup: ok"
