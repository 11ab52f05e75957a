"""gem install inside the sandbox.

Usage: rubygems_install.py offline|online GEM_HOME GEM_OR_NAME:VER

The only gem source is the registry service of the fake network ($OSPTRACK_GEM_SOURCE), which
serves the --deps-dir gems, the host's cache and, with --online, what osptrack fetched from
rubygems.org on the host; `gem` resolves dependencies against it as against rubygems.org.
"""

import os
import sys


def main():
    _mode, home, target = sys.argv[1:4]
    os.makedirs(home, exist_ok=True)
    name, sep, version = target.partition(":")
    what = [name, "--version", version] if sep and not target.endswith(".gem") else [target]
    argv = ["gem", "install", "--no-document", "--install-dir", home, "--bindir", os.path.join(home, "bin")]
    argv += ["--clear-sources", "--source", os.environ["OSPTRACK_GEM_SOURCE"], *what]
    sys.stdout.flush()
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    main()
