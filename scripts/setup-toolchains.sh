#!/usr/bin/env bash
# Toolchains for the RubyGems, Packagist, crates.io and NuGet ecosystems, on Debian 12, as root.
# Idempotent: re-running only fills in what is missing. Called from scripts/setup.sh.
#
#   rubygems   ruby-full (ruby 3.1, gem, headers for native extensions) + gcc/make
#   packagist  php-cli 8.2 + composer 2.5 + unzip (composer unpacks dists with it)
#   crates.io  the host's rustup stable toolchain, hard-linked (no copy) to a path the
#              sandbox user can read; Debian's cargo 1.63 is too old for today's crates
#   nuget      mono-complete 6.8 (mono, mcs, ilasm) + mono-xbuild + nuget 2.8.7
set -euo pipefail

APT_PACKAGES=(ruby-full php-cli composer unzip gcc make mono-complete mono-xbuild nuget)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "setup-toolchains: apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The sandbox starts as host `nobody`, which cannot enter /root: rustup's toolchain there is
# invisible to it. Hard links (same filesystem) give a readable view at no disk cost; the
# toolchain's docs (share/, ~800 MB) are left out.
RUST_DEST=${OSPTRACK_RUST_TOOLCHAIN:-/opt/osptrack/rust-toolchain}
if [ ! -x "$RUST_DEST/bin/cargo" ]; then
  sysroot=""
  for rustc in "$(command -v rustc || true)" "$HOME/.cargo/bin/rustc"; do
    [ -n "$rustc" ] && [ -x "$rustc" ] && sysroot=$("$rustc" --print sysroot 2>/dev/null) && break
  done
  if [ -n "$sysroot" ] && [ -x "$sysroot/bin/cargo" ] && [ "$sysroot" != /usr ]; then
    echo "setup-toolchains: linking $sysroot -> $RUST_DEST"
    tmp="$RUST_DEST.tmp.$$"
    rm -rf "$tmp"
    mkdir -p "$tmp"
    for part in bin lib libexec etc; do
      [ -e "$sysroot/$part" ] && { cp -al "$sysroot/$part" "$tmp/" 2>/dev/null || cp -a "$sysroot/$part" "$tmp/"; }
    done
    chmod -R a+rX "$tmp"
    chmod 755 "$(dirname "$RUST_DEST")"
    mv "$tmp" "$RUST_DEST"
  elif ! command -v cargo >/dev/null; then
    echo "setup-toolchains: no rustup toolchain; installing Debian's cargo (rustc 1.63, old)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends cargo >/dev/null
  fi
fi
echo "setup-toolchains: ok"
