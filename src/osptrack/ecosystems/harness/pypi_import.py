"""Import every module a distribution installed (runs inside the sandbox, Debian python3).

Usage: pypi_import.py DIST_NAME SITE_DIR. Modules come from the distribution's RECORD, as
package-analysis does. One failing import does not stop the others.
"""

import csv
import importlib
import re
import sys
from pathlib import Path


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def dist_info(site: Path, dist: str) -> Path | None:
    for path in site.glob("*.dist-info"):
        if canonical(path.name[: -len(".dist-info")].rsplit("-", 1)[0]) == canonical(dist):
            return path
    return None


def modules(site: Path, info: Path) -> list[str]:
    found = []
    with (info / "RECORD").open(newline="") as fh:
        for row in csv.reader(fh):
            rel = row[0] if row else ""
            if not rel.endswith(".py") or rel.startswith(("..", "/")) or ".dist-info/" in rel:
                continue
            parts = rel[:-3].split("/")
            if parts[-1] == "__init__":
                parts = parts[:-1]
            if parts and all(p.isidentifier() for p in parts):
                found.append(".".join(parts))
    return sorted(set(found), key=lambda m: (m.count("."), m))


def main() -> int:
    dist, site = sys.argv[1], Path(sys.argv[2])
    sys.path.insert(0, str(site))
    info = dist_info(site, dist)
    if info is None:
        print(f"osptrack-import: no installed distribution {dist!r}", file=sys.stderr)
        return 3
    names = modules(site, info)
    failed = 0
    for name in names:
        try:
            importlib.import_module(name)
        except BaseException as exc:  # noqa: BLE001 - a package may raise anything, even SystemExit
            failed += 1
            print(f"osptrack-import: {name}: {type(exc).__name__}: {exc}", file=sys.stderr)
    print(f"osptrack-import: {len(names) - failed}/{len(names)} modules imported")
    # Importing is the behaviour under test; modules that fail to import (optional
    # dependencies, platform modules) are common in benign packages and not an analysis error.
    return 1 if names and failed == len(names) else 0


if __name__ == "__main__":
    sys.exit(main())
