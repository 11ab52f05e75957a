"""gem install inside the sandbox.

Usage: rubygems_install.py offline|online GEM_HOME GEM_OR_NAME:VER [DEPS_DIR...]

The only gem source is the registry service of the fake network ($OSPTRACK_GEM_SOURCE), which
serves the --deps-dir gems, the host's cache and, with --online, what osptrack fetched from
rubygems.org on the host; `gem` resolves dependencies against it as against rubygems.org.
Without it (an older caller), `gem install --local` finds dependencies only as *.gem files in
its working folder, so the DEPS_DIR gems are linked into one folder and gem runs from there.
Linking happens here, in-process, so the trace shows no helper commands besides gem itself.
"""

import os
import sys


def main():
    _mode, home, target, *deps = sys.argv[1:]
    src = os.path.join(os.environ.get("HOME", "/root"), ".osptrack-gems")
    os.makedirs(src, exist_ok=True)
    os.makedirs(home, exist_ok=True)
    for folder in deps:
        for entry in sorted(os.listdir(folder)):
            link = os.path.join(src, entry)
            if entry.endswith(".gem") and not os.path.lexists(link):
                os.symlink(os.path.join(folder, entry), link)
    os.chdir(src)
    common = ["gem", "install", "--no-document", "--install-dir", home, "--bindir", os.path.join(home, "bin")]
    name, sep, version = target.partition(":")
    what = [name, "--version", version] if sep and not target.endswith(".gem") else [target]
    source = os.environ.get("OSPTRACK_GEM_SOURCE")
    argv = [*common, "--clear-sources", "--source", source] if source else [*common, "--local"]
    argv += what
    sys.stdout.flush()
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    main()
