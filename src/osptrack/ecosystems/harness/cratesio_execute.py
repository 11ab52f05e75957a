"""`cargo install` a crate's binaries and run each with --help (inside the sandbox).

Usage: cratesio_execute.py NAME VERSION [offline|online]. The crate was unpacked by the
install phase; its dependencies come from the registry service, as at install. `cargo install` is what gives a user a crate's binaries,
and unlike `cargo build` of the crate it ignores dev-dependencies, which a --deps-dir
rarely holds.
"""

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run_executables import run_help  # noqa: E402

ROOT = os.path.join(os.environ.get("HOME", "/root"), ".osptrack-crates")
UNPACKED = f"{ROOT}/unpacked"
INSTALL_ROOT = f"{ROOT}/installed"


def main():
    name, version = sys.argv[1], sys.argv[2]
    folder = os.path.join(UNPACKED, f"{name}-{version}")
    if not os.path.isdir(folder):
        print(
            f"osptrack-execute: {folder} missing: the install phase did not unpack the crate", file=sys.stderr
        )
        return 3
    argv = [
        "cargo",
        "install",
        "--debug",
        "--path",
        folder,
        "--root",
        INSTALL_ROOT,
        "--target-dir",
        f"{ROOT}/install-target",
    ]
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL)
    bin_dir = os.path.join(INSTALL_ROOT, "bin")
    executables = (
        sorted(os.path.join(bin_dir, f) for f in os.listdir(bin_dir)) if os.path.isdir(bin_dir) else []
    )
    if proc.returncode != 0 and not executables:
        # A library-only crate has nothing to install: that is not an analysis error.
        print(
            f"osptrack-execute: cargo install found no binaries to run ({proc.returncode})", file=sys.stderr
        )
    run_help(executables)
    return 0


if __name__ == "__main__":
    sys.exit(main())
