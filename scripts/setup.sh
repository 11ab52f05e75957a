#!/usr/bin/env bash
# Installs everything osptrack and its tests need on a fresh Debian 12 machine, as root.
# Idempotent: re-running it only fills in what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# chromium: the HTML report's browser test (Playwright drives it by executable_path; never `playwright install`).
# locales: glibc's locale sources (/usr/share/i18n), from which the persona's LANG is compiled into
# the sandbox's locale archive (sandbox/locales.py); only its sources are used (osptrack generates no locale on the host).
APT_PACKAGES=(bubblewrap strace nftables iproute2 python3 python3-venv python3-pip nodejs npm chromium locales)
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

# The eBPF tracer's loader (src/osptrack/trace/ebpf/), built against this kernel's BTF. Without
# BTF, or if the build fails, runs use strace (`osptrack doctor` says which tracer and why).
EBPF_PACKAGES=(clang libbpf-dev bpftool libelf-dev zlib1g-dev gcc)
missing=()
for pkg in "${EBPF_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "setup: apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
EBPF_SRC=src/osptrack/trace/ebpf
if [ -r /sys/kernel/btf/vmlinux ]; then
  if [ ! -x "$EBPF_SRC/bin/osptrack-ebpf" ] || [ -n "$(find "$EBPF_SRC" -maxdepth 1 \( -name '*.c' -o -name '*.h' -o -name build.sh \) -newer "$EBPF_SRC/bin/osptrack-ebpf")" ]; then
    bash "$EBPF_SRC/build.sh" >/dev/null || echo "setup: the eBPF tracer did not build; runs will use strace"
  fi
fi

# The sandbox's pid 1 and the phase launcher (src/osptrack/sandbox/native/), static C binaries:
# without them (no compiler or static libc), runs use their Python fallbacks, which cost tens of
# milliseconds more per phase (docs/performance.md, "The phases").
dpkg-query -W -f='${Status}' libc6-dev 2>/dev/null | grep -q "install ok installed" || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libc6-dev >/dev/null
}
NATIVE_SRC=src/osptrack/sandbox/native
if [ ! -x "$NATIVE_SRC/bin/osptrack-init" ] || [ ! -x "$NATIVE_SRC/bin/osptrack-launch" ] || [ -n "$(find "$NATIVE_SRC" -maxdepth 1 \( -name '*.c' -o -name build.sh \) -newer "$NATIVE_SRC/bin/osptrack-launch")" ]; then
  bash "$NATIVE_SRC/build.sh" || echo "setup: the sandbox init and launcher did not build; runs use their Python fallbacks"
fi

# Toolchains of the other four ecosystems (ruby, php/composer, rust, mono/nuget).
bash scripts/setup-toolchains.sh

# The project's own environment: the pyenv/system python3 first on PATH, in a venv.
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e '.[dev]'
# osptrack's own .pyc files, even under PYTHONDONTWRITEBYTECODE (the CLI's start-up time).
bash scripts/compile-bytecode.sh .venv/bin/python src/osptrack

# Offline build tools for sdists (plain wheel bytes; nothing is executed here).
TOOLS=${OSPTRACK_CACHE:-/var/cache/osptrack}/build-tools
mkdir -p "$TOOLS"
if ! ls "$TOOLS"/setuptools-*.whl >/dev/null 2>&1 || ! ls "$TOOLS"/wheel-*.whl >/dev/null 2>&1; then
  .venv/bin/pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
    -d "$TOOLS" setuptools==75.1.0 wheel==0.44.0
fi
# The persona's pre-installed Python packages (src/osptrack/sandbox/persona.py): known benign
# wheels, pinned with hashes, unpacked for Debian's python3.11 (nothing of them runs here). The
# sandbox mounts the folder read-only at /usr/local/lib/python3.11/dist-packages. A stamp named
# after the pin file's hash makes a changed pin list reinstall, atomically (temp folder + rename).
PERSONA_PINS=src/osptrack/sandbox/persona_python.txt
PERSONA_PY=${OSPTRACK_CACHE:-/var/cache/osptrack}/persona-python
STAMP=".pins-$(sha256sum "$PERSONA_PINS" | cut -c1-16)"
# The wheels also go into the offline build-tools folder, which pip gets as --find-links: a
# package that `install_requires` requests resolves it offline, as on a machine that has it.
PY311=(--python-version 3.11 --implementation cp --abi cp311 --abi abi3 --abi none
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64
  --platform manylinux_2_12_x86_64 --platform manylinux_2_5_x86_64 --platform linux_x86_64)
if [ ! -f "$PERSONA_PY/$STAMP" ]; then
  .venv/bin/pip download -q --disable-pip-version-check --no-deps --require-hashes --only-binary=:all: \
    "${PY311[@]}" -d "$TOOLS" -r "$PERSONA_PINS"
  rm -rf "$PERSONA_PY.tmp"
  .venv/bin/pip install -q --disable-pip-version-check --no-deps --require-hashes --only-binary=:all: \
    "${PY311[@]}" --no-index --find-links "$TOOLS" --target "$PERSONA_PY.tmp" -r "$PERSONA_PINS"
  rm -rf "$PERSONA_PY.tmp/bin"  # console scripts with the host venv's shebang: no use inside
  touch "$PERSONA_PY.tmp/$STAMP"
  chmod -R a+rX "$PERSONA_PY.tmp"
  rm -rf "$PERSONA_PY.old"; [ -d "$PERSONA_PY" ] && mv "$PERSONA_PY" "$PERSONA_PY.old"
  mv "$PERSONA_PY.tmp" "$PERSONA_PY"; rm -rf "$PERSONA_PY.old"
fi
# Debian's python3.11 creates it; the sandbox binds the folder above onto it (a mount point
# must exist in the read-only /usr).
mkdir -p /usr/local/lib/python3.11/dist-packages
# The persona's global npm packages (src/osptrack/sandbox/persona_node.py): pinned with their
# integrity in persona_node.txt, fetched with `npm pack` (plain bytes), checked, installed with
# --ignore-scripts into a prefix the sandbox binds read-only at ~/.npm-global. Re-runs only when
# the pin list changed (a stamp named after its hash); atomic (temp folder + rename).
.venv/bin/python -m osptrack.sandbox.persona_node install "${OSPTRACK_CACHE:-/var/cache/osptrack}/persona-node"
# The pinned build backends (setuptools, hatchling, flit_core, poetry-core, pdm-backend, ...), as
# plain wheel bytes, into the registry service's cache (pinned), so sdists build offline.
BACKENDS=${OSPTRACK_CACHE:-/var/cache/osptrack}/build-backends
mkdir -p "$BACKENDS"
mapfile -t SPECS < <(.venv/bin/python -m osptrack.registry.backends --list)
want=()
for spec in "${SPECS[@]}"; do
  stem=$(echo "${spec%%==*}" | tr 'A-Z-' 'a-z_')
  ls "$BACKENDS"/"$stem"-"${spec##*==}"-*.whl >/dev/null 2>&1 || want+=("$spec")
done
if ((${#want[@]})); then
  .venv/bin/pip download -q --disable-pip-version-check --no-deps --only-binary=:all: -d "$BACKENDS" "${want[@]}"
fi
.venv/bin/python -m osptrack.registry.backends "$BACKENDS"
echo "setup: ok"
