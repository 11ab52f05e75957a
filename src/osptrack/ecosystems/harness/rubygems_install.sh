#!/bin/sh
# gem install inside the sandbox. Usage: rubygems_install.sh offline|online GEM_HOME GEM_OR_NAME:VER [DEPS_DIR...]
# Offline, `gem install --local` finds dependencies only as *.gem files in its working folder,
# so the --deps-dir gems are linked into one folder and gem runs from there.
set -eu
mode=$1; home=$2; target=$3; shift 3
src="${HOME:-/root}/.osptrack-gems"
mkdir -p "$src" "$home"
for dir in "$@"; do
  for gem in "$dir"/*.gem; do
    [ -e "$gem" ] && ln -sf "$gem" "$src/"
  done
done
cd "$src"
if [ "$mode" = online ]; then
  exec gem install --no-document --install-dir "$home" --bindir "$home/bin" \
    --clear-sources --source https://rubygems.org/ "${target%%:*}" --version "${target#*:}"
fi
exec gem install --local --no-document --install-dir "$home" --bindir "$home/bin" "$target"
