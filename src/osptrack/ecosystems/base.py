"""What an ecosystem contributes to a run: metadata reading, toolchain commands, noise rules.

An ecosystem never runs package code on the host. `read_metadata` only parses archive members
(PKG-INFO, METADATA, package.json, ...); everything that executes goes through `command()`
and therefore through the sandbox.
"""

from __future__ import annotations

import operator
import shutil
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from osptrack.errors import BadInput, ToolchainMissing
from osptrack.homepath import expand_home, home_relative
from osptrack.target import normalise_name
from osptrack.trace.roles import Rule

__all__ = ["expand_home", "home_relative"]  # re-exported: ecosystems write their paths `~/...`


@dataclass(frozen=True)
class Layout:
    """Where things are inside the sandbox for one run."""

    name: str
    version: str
    archive: str | None  # /input/pkg/<file>, or None for a registry name (online or deps dir)
    deps: tuple[str, ...]  # /input/deps/<n>
    harness: str = "/input/harness"
    build_tools: str | None = None
    home: str = "~"


def install_harness_argv(script: str, layout: Layout, online: bool, *before_name: str) -> list[str]:
    """`python3 <harness>/<script> MODE [before_name...] NAME VERSION [ARCHIVE] [--deps DIR...]`.

    The in-sandbox side parses this with `harness/_install_args.py`.
    """
    argv = ["python3", f"{layout.harness}/{script}", "online" if online else "offline", *before_name]
    argv += [layout.name, layout.version]
    if layout.archive:
        argv.append(layout.archive)
    if layout.deps:
        argv += ["--deps", *layout.deps]
    return argv


@dataclass(frozen=True)
class Metadata:
    name: str
    version: str


def lenient_version_key(version: str) -> tuple[int, Any]:
    """PEP 440 order where the version parses, after every one that does not (compared as text)."""
    try:
        return (1, Version(version))
    except InvalidVersion:
        return (0, version)


class Ecosystem(ABC):
    name: str
    registry_hosts: tuple[str, ...] = ()
    suffixes: tuple[str, ...] = ()
    # (binary, Debian package) pairs that must exist on the host for this ecosystem.
    toolchain: tuple[tuple[str, str], ...] = ()
    phases: tuple[str, ...] = ("install", "import")

    def check_toolchain(self) -> None:
        for binary, package in self.toolchain:
            if shutil.which(binary) is None:
                raise ToolchainMissing(
                    f"{self.name} needs {binary!r}, which is not installed; run: apt-get install -y {package}"
                )

    def missing_toolchain(self) -> str | None:
        try:
            self.check_toolchain()
        except ToolchainMissing as exc:
            return str(exc)
        return None

    @abstractmethod
    def read_metadata(self, archive: Path) -> Metadata:
        """Name and version from the archive's own metadata; BadInput if it is no package."""

    @abstractmethod
    def find_archive(self, name: str, version: str | None, dirs: tuple[Path, ...]) -> Path | None:
        """The archive of `name` (highest version if None) in the dependency folders, if any."""

    @abstractmethod
    def command(self, phase: str, layout: Layout, online: bool) -> list[str] | None:
        """The argv to run inside the sandbox for `phase`, or None if the phase does not apply."""

    def env(self, layout: Layout, online: bool) -> dict[str, str]:
        return {}

    def highest_matching(
        self,
        name: str,
        version: str | None,
        dirs: tuple[Path, ...],
        pattern: str,
        sort_key: Callable[[str], Any],
        same_version: Callable[[str, str], bool] = operator.eq,
    ) -> Path | None:
        """A `find_archive` for ecosystems whose file names do not reliably carry the version:
        each `pattern` file's own metadata is read; the highest matching version wins."""
        want = normalise_name(self.name, name)
        best: tuple[Any, Path] | None = None
        for folder in dirs:
            for path in sorted(folder.glob(pattern)) if folder.is_dir() else ():
                try:
                    meta = self.read_metadata(path)
                    key = sort_key(meta.version)
                except (BadInput, ValueError):
                    continue
                if normalise_name(self.name, meta.name) != want:
                    continue
                if version is not None and not same_version(meta.version, version):
                    continue
                if best is None or key > best[0]:
                    best = (key, path)
        return best[1] if best else None

    def staged_name(self, archive: Path, meta: Metadata) -> str:
        """The name the archive gets in the sandbox: its own, or one its toolchain accepts when
        it was misnamed (recognised by content in `read_metadata`)."""
        return archive.name

    def ro_binds(self) -> tuple[tuple[str, str], ...]:
        """Extra host directories the toolchain needs, as (host, sandbox) pairs."""
        return ()

    def toolchain_rules(self) -> tuple[Rule, ...]:
        """The toolchain's own programs, by exact path and parent (osptrack.trace.roles).

        What they exec is left out of 'notable'; everything else a phase runs is the package's.
        """
        return ()

    def expected_bait_reader(self, path: str, rule: str | None) -> bool:
        """A bait file a toolchain image (named by its rule) reads itself (npm, ~/.npmrc)."""
        return False
