"""The analysed package itself, when it is named rather than given as an archive.

pip and npm install `NAME==VERSION` from the registry service (`installs_by_name`); osptrack
first checks, on the host, that the registry (online) or the cache (offline) has it, so an
unknown package is bad input before anything is written. For RubyGems, Packagist, crates.io
and NuGet the package itself, when named, is fetched on the host as plain bytes through
`ecosystems/registry_api.py`, hash-checked, and analysed like a local archive; the served ones
(`registry_served`) then resolve its dependencies against the service.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from packaging.version import InvalidVersion, Version

from osptrack.errors import BadInput
from osptrack.registry.cache import ContentCache
from osptrack.target import normalise_name

if TYPE_CHECKING:
    from osptrack.registry.service import RegistryConfig

SERVED = ("pypi", "npm", "crates.io", "packagist", "rubygems")
BY_NAME = ("pypi", "npm")  # the package itself, named, installed by name from the service


def registry_served(ecosystem: str) -> bool:
    """The ecosystem's package manager resolves dependencies against the registry service."""
    return ecosystem in SERVED


def installs_by_name(ecosystem: str) -> bool:
    """A named package (no archive) is installed from the service, not fetched on the host first."""
    return ecosystem in BY_NAME


def cached_version(ecosystem: str, name: str, version: str | None, config: RegistryConfig) -> str | None:
    """The version of `name` the cache can serve: `version` if it holds it, else the highest."""
    want = normalise_name(ecosystem, name)
    found: list[str] = []
    for entry in ContentCache(config.cache_root, config.cache_max_bytes).entries():
        if entry.ecosystem == ecosystem and normalise_name(ecosystem, entry.name) == want:
            found.append(entry.version)
    if version is not None:
        return next((v for v in found if _same(ecosystem, v, version)), None)
    return max(found, key=_key) if found else None


def _same(ecosystem: str, a: str, b: str) -> bool:
    if ecosystem == "pypi":
        try:
            return Version(a) == Version(b)
        except InvalidVersion:
            return a == b
    return a == b.lstrip("=v")


def _key(v: str) -> tuple[int, Version | str]:
    try:
        return (1, Version(v))
    except InvalidVersion:
        return (0, v)


def fetch_target(ecosystem: str, name: str, version: str | None, config: RegistryConfig) -> Path:
    """Online, for an ecosystem without a registry service: the archive, downloaded and checked."""
    from osptrack.ecosystems import registry_api  # urllib.request: only when something is fetched

    release = registry_api.resolve(ecosystem, name, version)  # BadInput names the registry's answer
    root = ContentCache(config.cache_root, config.cache_max_bytes).root
    dest = root / "archives" / ecosystem
    dest.mkdir(parents=True, exist_ok=True)
    existing = dest / release.filename
    if existing.is_file():
        try:
            registry_api.verify(release, existing.read_bytes())
            return existing
        except BadInput:  # a stale or damaged copy: fetch it again
            existing.unlink(missing_ok=True)
    return registry_api.download(release, dest)
