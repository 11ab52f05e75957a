"""gem install inside the sandbox.

Usage: rubygems_install.py offline|online GEM_HOME GEM_OR_NAME:VER [DEPS_DIR...]

Offline, `gem install --local` finds dependencies only as *.gem files in its working folder,
so the --deps-dir gems are linked into one folder and gem runs from there. Linking happens
here, in-process, so the trace shows no helper commands besides gem itself.
"""

import os
import sys


def main():
    mode, home, target, *deps = sys.argv[1:]
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
    if mode == "online":
        name, _, version = target.partition(":")
        argv = [*common, "--clear-sources", "--source", "https://rubygems.org/", name, "--version", version]
    else:
        argv = [*common, "--local", target]
    sys.stdout.flush()
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    main()
