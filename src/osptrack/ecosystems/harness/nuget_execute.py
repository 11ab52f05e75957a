"""Run a NuGet package's tools/*.exe with --help under Mono (inside the sandbox).

Usage: nuget_execute.py ID VERSION. Classic tool packages ship their executables under tools/.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mono_host import mono_argv  # noqa: E402
from nuget_install import own_dir  # noqa: E402
from run_executables import run_help  # noqa: E402


def main():
    pkg_dir = own_dir(sys.argv[1], sys.argv[2])
    exes = []
    if pkg_dir is not None:
        for root, _, files in os.walk(os.path.join(pkg_dir, "tools")):
            exes += [os.path.join(root, f) for f in sorted(files) if f.lower().endswith(".exe")]
    run_help(sorted(exes), prefix=mono_argv() if exes else ())
    return 0


if __name__ == "__main__":
    sys.exit(main())
