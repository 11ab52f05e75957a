"""What the registry service serves and what it records: one distribution file, one closure entry."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Where a served file came from, in order of precedence.
SOURCES = ("deps-dir", "cache", "upstream", "missing")


@dataclass(frozen=True)
class Dist:
    """One distribution file of a package (a wheel, an sdist, an npm tarball)."""

    ecosystem: str  # "pypi" or "npm"
    name: str  # pypi: PEP 503 normalised; npm: the package name as published (scope included)
    version: str
    filename: str
    source: str  # "deps-dir", "cache" or "upstream" (known upstream, fetched on first request)
    sha256: str | None = None  # None only for an upstream npm tarball not yet fetched
    size: int | None = None
    path: Path | None = None  # the bytes on the host; None until an upstream file is fetched
    requires_python: str | None = None
    yanked: bool = False
    integrity: str | None = None  # npm: "sha512-<base64>"
    shasum: str | None = None  # npm: sha1 hex
    upstream_url: str | None = None
    # npm: the package.json fields a packument's version entry carries (dependencies, bin, ...)
    manifest: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class ClosureEntry:
    """One package the run's package managers asked for: run.json `registry.closure`."""

    ecosystem: str
    name: str
    version: str | None
    sha256: str | None
    source: str  # one of SOURCES
    filename: str | None = None
    phase: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "ecosystem": self.ecosystem,
            "name": self.name,
            "version": self.version,
            "sha256": self.sha256,
            "source": self.source,
            "filename": self.filename,
            "phase": self.phase,
        }
