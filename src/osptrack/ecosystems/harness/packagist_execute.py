"""Run a Composer package's declared `bin` entries with --help (inside the sandbox).

Usage: packagist_execute.py NAME PROJECT. The entries come from vendor/composer/installed.json,
and run through the vendor/bin proxies Composer made, as a user would run them.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run_executables import run_help  # noqa: E402


def main():
    name, project = sys.argv[1].lower(), sys.argv[2]
    try:
        with open(os.path.join(project, "vendor", "composer", "installed.json")) as fh:
            installed = json.load(fh)
    except (OSError, ValueError) as exc:
        print(f"osptrack-execute: no installed.json: {exc}", file=sys.stderr)
        return 3
    packages = installed.get("packages", installed) if isinstance(installed, dict) else installed
    bins = []
    for package in packages:
        if str(package.get("name", "")).lower() == name:
            bins = [b for b in package.get("bin") or [] if isinstance(b, str)]
    proxies = [os.path.join(project, "vendor", "bin", os.path.basename(b)) for b in bins]
    run_help([p for p in proxies if os.path.exists(p)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
