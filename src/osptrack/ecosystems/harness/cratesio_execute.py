"""Build a crate's binaries and run each with --help (inside the sandbox).

Usage: cratesio_execute.py NAME VERSION [offline|online]. The crate was unpacked into the
vendor folder by the install phase; its bin targets are what `cargo install` would give a user.
"""

import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run_executables import run_help  # noqa: E402

VENDOR = "/root/.osptrack-crates/vendor"
TARGET = "/root/.osptrack-crates/bin-target"


def main():
    name, version = sys.argv[1], sys.argv[2]
    online = len(sys.argv) > 3 and sys.argv[3] == "online"
    folder = os.path.join(VENDOR, f"{name}-{version}")
    if not os.path.isdir(folder):
        print(
            f"osptrack-execute: {folder} missing: the install phase did not unpack the crate", file=sys.stderr
        )
        return 3
    argv = ["cargo", "build", "--bins", "--message-format=json-render-diagnostics", "--target-dir", TARGET]
    if not online:
        argv.append("--offline")
    proc = subprocess.run(argv, cwd=folder, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    executables = []
    for line in proc.stdout.decode(errors="replace").splitlines():
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        target = msg.get("target") or {}
        if (
            msg.get("reason") == "compiler-artifact"
            and msg.get("executable")
            and "bin" in target.get("kind", [])
        ):
            executables.append(msg["executable"])
    if proc.returncode != 0 and not executables:
        print(f"osptrack-execute: cargo build --bins failed ({proc.returncode})", file=sys.stderr)
    run_help(executables)
    return 0


if __name__ == "__main__":
    sys.exit(main())
