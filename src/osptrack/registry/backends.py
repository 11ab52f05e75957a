"""The pinned build backends that go into the registry cache at setup, so sdists build offline.

scripts/setup.sh downloads exactly these wheels as plain bytes (`pip download --no-deps
--only-binary=:all:`, nothing is run) into `backends_dir()`, then `python -m
osptrack.registry.backends` puts them in the cache, pinned (never evicted). Each run seeds them
again if the cache lost them. Only these names are taken from the folder, whatever else it holds.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from osptrack.target import normalise_name

# The backends of most sdists on PyPI, plus what they import at build time.
BUILD_BACKENDS = (
    "setuptools==75.1.0",
    "wheel==0.44.0",
    "setuptools_scm==8.1.0",
    "hatchling==1.25.0",
    "flit_core==3.9.0",
    "poetry-core==1.9.0",
    "pdm-backend==2.4.1",
    "packaging==24.1",  # setuptools_scm, hatchling
    "pathspec==0.12.1",  # hatchling
    "pluggy==1.5.0",  # hatchling
    "trove-classifiers==2024.9.12",  # hatchling
    "editables==0.5",  # hatchling's editable builds
)
BACKEND_NAMES = frozenset(
    normalise_name("pypi", spec.partition("==")[0]) for spec in BUILD_BACKENDS
)  # PEP 503


def backends_dir() -> Path:
    return Path(os.environ.get("OSPTRACK_CACHE", "/var/cache/osptrack")) / "build-backends"


def seed_folders() -> tuple[Path, ...]:
    """The folders a run seeds the cache from: the backends (only the pinned names are taken) and
    the build-tools folder, which setup.sh also fills with the persona's pinned wheels, so pip
    resolves e.g. `requests` offline as on a machine that has it."""
    from osptrack.ecosystems.pypi import build_tools_dir

    tools = build_tools_dir()  # also the persona's pre-installed wheels (sandbox/persona.py)
    return tuple(p for p in (backends_dir() if backends_dir().is_dir() else None, tools) if p is not None)


def main(argv: list[str]) -> int:
    from osptrack.registry.cache import ContentCache
    from osptrack.registry.service import seed

    if len(argv) > 1 and argv[1] == "--list":
        print("\n".join(BUILD_BACKENDS))
        return 0
    folders = tuple(Path(a) for a in argv[1:]) or seed_folders()
    cache = ContentCache()
    added = seed(cache, "pypi", folders, names=BACKEND_NAMES)
    print(f"registry cache {cache.root}: {added} build backend wheels added (pinned)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
