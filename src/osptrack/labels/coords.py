"""Coordinate normalisation for label sources, tolerant of ecosystems outside the result schema.

`osptrack.target` knows the six schema ecosystems; OSV also has Go, Maven and more, which are
kept lower-cased as they are, with names and versions left as the registry writes them (Go module
paths and Maven coordinates are case-sensitive).
"""

from __future__ import annotations

from functools import lru_cache

from packaging.utils import canonicalize_version

from osptrack.errors import BadInput
from osptrack.target import ECOSYSTEMS, normalise_ecosystem, normalise_name, normalise_version


@lru_cache(maxsize=256)
def label_ecosystem(value: str) -> str:
    try:
        return normalise_ecosystem(value)
    except BadInput:
        return value.strip().lower()


def label_name(ecosystem: str, name: str) -> str:
    if ecosystem in ECOSYSTEMS:
        return normalise_name(ecosystem, name)
    return name.strip()


def label_version(ecosystem: str, version: str) -> str:
    if ecosystem in ECOSYSTEMS:
        return normalise_version(ecosystem, version)
    return version.strip()


def version_key(ecosystem: str, version: str) -> str:
    """The key explicit versions are matched on: PEP 440 equality (`1.0` == `1.0.0`) for PyPI."""
    v = label_version(ecosystem, version)
    if ecosystem == "pypi":
        try:
            return canonicalize_version(v)
        except Exception:  # packaging raises on some junk; fall back to the text itself
            return v
    return v
