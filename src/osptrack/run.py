"""Orchestrates one analysis: resolve archive -> phases in the sandbox -> result folder."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from osptrack.target import PackageRef

PHASES = ("install", "import", "execute")
DEFAULT_PHASES = ("install", "import")


@dataclass(frozen=True)
class AnalyzeOptions:
    phases: tuple[str, ...] = DEFAULT_PHASES
    timeout_s: float = 300.0
    deps_dirs: tuple[Path, ...] = ()
    online: bool = False


@dataclass(frozen=True)
class RunOutcome:
    """What a caller (CLI, batch) needs without re-reading the run folder."""

    ref: PackageRef  # name and version filled in from the archive's metadata
    out: Path
    statuses: dict[str, str] = field(default_factory=dict)  # phase -> Status
    wall_s: float = 0.0
    notable: dict[str, list[str]] = field(default_factory=dict)


def analyze(ref: PackageRef, options: AnalyzeOptions, out: Path | None = None) -> RunOutcome:
    """Analyse one package; write the complete run folder atomically to `out`."""
    raise NotImplementedError("being written in issue 2")
