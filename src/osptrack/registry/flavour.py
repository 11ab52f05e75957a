"""The small interface behind which RubyGems, Packagist and crates.io are served.

PyPI and npm predate it and live in the service itself; each later ecosystem is one module
(`registry/<ecosystem>.py`) with a `Flavour`: how to describe one of its archives from its own
metadata (read on the host, never run), how to answer a request path below its prefix, and how
to read the real registry's answer in online mode. The service supplies every distribution of a
name (deps-dir, cache, upstream, in that order) and serves the files; a flavour only renders.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from osptrack.registry.local import digests
from osptrack.registry.model import Dist
from osptrack.target import normalise_name

if TYPE_CHECKING:
    from osptrack.registry.upstream import Upstream


@dataclass(frozen=True)
class Page:
    """A rendered answer (an index file, a metadata document)."""

    status: int
    content_type: str
    body: bytes


@dataclass(frozen=True)
class Serve:
    """Serve this distribution's bytes (from the deps-dir, the cache, or fetched upstream)."""

    dist: Dist


@dataclass(frozen=True)
class Miss:
    """Nothing has `name` (or this version of it): a 404, recorded in run.json `registry.missing`."""

    name: str
    version: str | None = None
    page: Page | None = None  # what the client needs to hear instead of a 404 (RubyGems)


Answer = Page | Serve | Miss
Projects = Callable[[str], list[Dist]]  # normalised name -> every distribution the service has


class Flavour(Protocol):
    ecosystem: str
    prefix: str  # the request path prefix below the registry host, e.g. "/crates/"

    def describe(self, path: Path) -> tuple[str, str, dict[str, Any]] | None:
        """(name as published, version, what the index says about it) from the archive, or None."""
        ...

    def route(self, rest: str, projects: Projects) -> Answer:
        """The answer for a request path below `prefix`."""
        ...

    def upstream_project(self, upstream: Upstream, name: str) -> list[Dist]:
        """What the real registry lists for `name` (NotFound if nothing, UpstreamError if unusable)."""
        ...


class ArchiveFolders:
    """The archives of a set of folders for one flavour, with the same face as `LocalFolders`.

    Every archive's metadata is read once, on the first request (these ecosystems' file names do
    not reliably say the name: a Composer zipball, a misnamed gem); hashing happens then too.
    """

    def __init__(self, flavour: Flavour, folders: Iterable[Path], files: Iterable[Path] = ()) -> None:
        self.flavour = flavour
        self._paths = [
            p
            for folder in folders
            for p in (sorted(folder.iterdir()) if folder.is_dir() else ())
            if p.is_file() and not p.is_symlink()
        ] + [p for p in files if p.is_file()]
        self._by_name: dict[str, list[Dist]] | None = None
        self._lock = threading.Lock()

    def _index(self) -> dict[str, list[Dist]]:
        with self._lock:
            if self._by_name is None:
                found: dict[str, list[Dist]] = {}
                seen: set[tuple[str, str]] = set()
                for path in self._paths:
                    described = self.flavour.describe(path)
                    if described is None:
                        continue
                    name, version, manifest = described
                    key = normalise_name(self.flavour.ecosystem, name)
                    if (key, version) in seen:
                        continue  # the first folder wins, as for pip and npm
                    seen.add((key, version))
                    sha256, _, sha1, size = digests(path)
                    found.setdefault(key, []).append(
                        Dist(
                            self.flavour.ecosystem,
                            key,
                            version,
                            path.name,
                            "deps-dir",
                            sha256,
                            size,
                            path,
                            shasum=sha1,
                            manifest=manifest,
                        )  # fmt: skip
                    )
                self._by_name = found
            return self._by_name

    def names(self) -> list[str]:
        return sorted(self._index())

    def dists(self, name: str) -> list[Dist]:
        return list(self._index().get(name, []))
