"""Parse the install harnesses' command line (runs inside the sandbox, Debian python3).

Built on the host by `osptrack.ecosystems.base.install_harness_argv`:
MODE [EXTRA...] NAME VERSION [ARCHIVE] [--deps DIR...]
"""

import sys


def parse(n_extra=0):
    """(mode, extras, name, version, archive or None, deps)."""
    args = sys.argv[1:]
    deps = []
    if "--deps" in args:
        i = args.index("--deps")
        args, deps = args[:i], args[i + 1 :]
    mode, extras = args[0], args[1 : 1 + n_extra]
    name, version = args[1 + n_extra : 3 + n_extra]
    rest = args[3 + n_extra :]
    return mode, extras, name, version, (rest[0] if rest else None), deps
