"""Per-ecosystem version ordering, and OSV range evaluation on top of it.

OSV ranges are only meaningful with the ecosystem's own ordering: `1.10` > `1.9` everywhere,
but `1.0.0-rc1` < `1.0.0` in semver while RubyGems calls `1.0.a` < `1.0` for a different reason.
Each ecosystem gets a comparator; `compare` returns None when a version cannot be parsed under
the ecosystem's rule, so callers can refuse to guess instead of matching wrongly.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any

import semantic_version
from packaging.version import InvalidVersion, Version

Comparator = Callable[[str, str], int | None]


def _sign(value: int) -> int:
    return (value > 0) - (value < 0)


# --- PyPI: PEP 440 via packaging -----------------------------------------------------------------


@lru_cache(maxsize=65536)
def _pep440(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


def compare_pypi(a: str, b: str) -> int | None:
    va, vb = _pep440(a), _pep440(b)
    if va is None or vb is None:
        return None
    return (va > vb) - (va < vb)


# --- npm / crates.io / go: semver 2.0 via semantic_version -------------------------------------


@lru_cache(maxsize=65536)
def _semver(text: str) -> semantic_version.Version | None:
    # npm accepts a leading `v` or `=` (node-semver's loose parse); Go versions always carry `v`.
    cleaned = text.strip().lstrip("=v")
    try:
        return semantic_version.Version(cleaned)
    except ValueError:
        return None


def compare_semver(a: str, b: str) -> int | None:
    va, vb = _semver(a), _semver(b)
    if va is None or vb is None:
        return None
    # Build metadata never affects precedence in semver 2.0; semantic_version agrees only when
    # both sides have it, so strip it explicitly.
    va, vb = va.truncate("prerelease"), vb.truncate("prerelease")
    return (va > vb) - (va < vb)


# --- NuGet: up to four numeric parts, semver-style prerelease, case-insensitive labels ----------

_NUGET = re.compile(r"^(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:\.(\d+))?(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$")


def _prerelease_cmp(a: Sequence[str], b: Sequence[str]) -> int:
    """Semver 2.0 §11: numeric ids numerically, others lexically, numeric < alphanumeric."""
    for x, y in zip(a, b, strict=False):
        if x == y:
            continue
        xd, yd = x.isdigit(), y.isdigit()
        if xd and yd:
            return _sign(int(x) - int(y))
        if xd != yd:
            return -1 if xd else 1
        return -1 if x < y else 1
    return _sign(len(a) - len(b))


@lru_cache(maxsize=65536)
def _nuget(text: str) -> tuple[tuple[int, ...], tuple[str, ...]] | None:
    m = _NUGET.match(text.strip())
    if not m:
        return None
    nums = tuple(int(g) if g else 0 for g in m.groups()[:4])
    pre = tuple(m.group(5).lower().split(".")) if m.group(5) else ()
    return nums, pre


def compare_nuget(a: str, b: str) -> int | None:
    pa, pb = _nuget(a), _nuget(b)
    if pa is None or pb is None:
        return None
    if pa[0] != pb[0]:
        return -1 if pa[0] < pb[0] else 1
    if not pa[1] or not pb[1]:  # a release sorts after any of its prereleases
        return _sign(len(pb[1]) - len(pa[1]))
    return _prerelease_cmp(pa[1], pb[1])


# --- RubyGems: Gem::Version segment ordering -----------------------------------------------------

_GEM_VALID = re.compile(r"^[0-9]+(?:\.[0-9a-zA-Z]+)*(?:-[0-9A-Za-z.-]+)?$")
_GEM_SEGMENT = re.compile(r"[0-9]+|[a-zA-Z]+")


@lru_cache(maxsize=65536)
def _gem_segments(text: str) -> tuple[int | str, ...] | None:
    v = text.strip()
    if not v or not _GEM_VALID.match(v):
        return None
    # Gem::Version treats `-` as a prerelease marker (`1.0-rc1` == `1.0.pre.rc1`).
    v = v.replace("-", ".pre.")
    segs: list[int | str] = [int(s) if s.isdigit() else s for s in _GEM_SEGMENT.findall(v)]
    # canonical_segments: trailing zeros of the release part and of the prerelease part are ignored.
    first_alpha = next((i for i, s in enumerate(segs) if isinstance(s, str)), len(segs))
    release, pre = segs[:first_alpha], segs[first_alpha:]
    while release and release[-1] == 0:
        release.pop()
    while pre and pre[-1] == 0:
        pre.pop()
    return tuple(release + pre)


def compare_rubygems(a: str, b: str) -> int | None:
    sa, sb = _gem_segments(a), _gem_segments(b)
    if sa is None or sb is None:
        return None
    for i in range(max(len(sa), len(sb))):
        x: int | str = sa[i] if i < len(sa) else 0
        y: int | str = sb[i] if i < len(sb) else 0
        if x == y:
            continue
        if isinstance(x, str) and isinstance(y, int):
            return -1  # a letter segment marks a prerelease: lower than any number
        if isinstance(x, int) and isinstance(y, str):
            return 1
        return -1 if x < y else 1  # type: ignore[operator]
    return 0


# --- Packagist: Composer's normalised versions --------------------------------------------------

_COMPOSER = re.compile(
    r"^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:\.(\d+))?"
    r"(?:[._-]?(stable|beta|b|rc|alpha|a|patch|pl|p|dev)(?:[.-]?(\d+))?)?$",
    re.IGNORECASE,
)
# VersionParser::normalizeStability order: dev < alpha < beta < RC < stable < patch.
_STABILITY = {
    "dev": 0,
    "alpha": 1,
    "a": 1,
    "beta": 2,
    "b": 2,
    "rc": 3,
    "stable": 4,
    "patch": 5,
    "pl": 5,
    "p": 5,
}


@lru_cache(maxsize=65536)
def _composer(text: str) -> tuple[int, ...] | None:
    m = _COMPOSER.match(text.strip())
    if not m:
        return None
    nums = [int(g) if g else 0 for g in m.groups()[:4]]
    stability = _STABILITY[m.group(5).lower()] if m.group(5) else 4
    return (*nums, stability, int(m.group(6) or 0))


def compare_packagist(a: str, b: str) -> int | None:
    ca, cb = _composer(a), _composer(b)
    if ca is None or cb is None:
        return None
    return (ca > cb) - (ca < cb)


# --- anything else (maven, ...): numbers numerically, words lexically ---------------------------


def compare_generic(a: str, b: str) -> int | None:
    # Not Maven's full ComparableVersion, but right for the plain dotted numbers these records use.
    return compare_rubygems(a.replace("_", "."), b.replace("_", "."))


COMPARATORS: Mapping[str, Comparator] = {
    "pypi": compare_pypi,
    "npm": compare_semver,
    "crates.io": compare_semver,
    "go": compare_semver,
    "nuget": compare_nuget,
    "rubygems": compare_rubygems,
    "packagist": compare_packagist,
}


def comparator(ecosystem: str) -> Comparator:
    return COMPARATORS.get(ecosystem, compare_generic)


def compare(ecosystem: str, a: str, b: str) -> int | None:
    """-1, 0 or 1 under the ecosystem's ordering; None when either side does not parse."""
    return comparator(ecosystem)(a, b)


def is_all_versions(ranges: Sequence[Mapping[str, Any]]) -> bool:
    """True when some SEMVER/ECOSYSTEM range is `introduced: 0` with no upper bound."""
    for rng in ranges:
        if rng.get("type") not in ("SEMVER", "ECOSYSTEM"):
            continue
        events = rng.get("events") or []
        bounded = any("fixed" in e or "last_affected" in e or "limit" in e for e in events)
        if not bounded and any(e.get("introduced") == "0" for e in events):
            return True
    return False


def in_range(ecosystem: str, events: Sequence[Mapping[str, str]], version: str) -> bool | None:
    """Evaluate one OSV range (its `events`) for `version`, following the OSV spec's algorithm.

    Events are sorted by version (with `0` lowest); walking them in order, an `introduced` at or
    below the version switches "affected" on, a `fixed` at or below it switches it off, and a
    `last_affected` strictly below it switches it off. Returns None when a needed comparison is
    impossible (unparsable version), so the caller can report rather than guess.
    """
    cmp = comparator(ecosystem)
    points: list[tuple[str, str]] = []
    for event in events:
        for kind in ("introduced", "fixed", "last_affected"):
            if kind in event:
                points.append((kind, str(event[kind])))
    if not points:
        return False

    def order(p: tuple[str, str]) -> tuple[int, str, str]:
        return (0 if p[1] == "0" else 1, p[1], p[0])

    # Sorting needs a total order under the ecosystem comparator; do an insertion sort with it.
    ordered: list[tuple[str, str]] = []
    for p in sorted(points, key=order):
        i = len(ordered)
        while i > 0 and p[1] != "0":
            prev = ordered[i - 1][1]
            step = -1 if prev == "0" else cmp(prev, p[1])
            if step is None:
                return None
            if step <= 0:
                break
            i -= 1
        ordered.insert(i, p)

    affected = False
    for kind, bound in ordered:
        c = 1 if bound == "0" else cmp(version, bound)
        if c is None:
            return None
        if kind == "introduced" and c >= 0:
            affected = True
        elif kind == "fixed" and c >= 0 or kind == "last_affected" and c > 0:
            affected = False
    return affected
