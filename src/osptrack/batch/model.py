"""Records shared by the batch sources, runner, workers and manifest.

They cross process boundaries (worker subprocess, Dask), so they are plain frozen dataclasses
of strings and numbers: picklable, and cheap to log.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from osptrack.errors import BadInput
from osptrack.target import (
    normalise_ecosystem,
    normalise_name,
    normalise_version,
    validate_name,
    validate_version,
)

# The function a batch worker calls for each package (`module:function`); tests swap in a fake.
DEFAULT_ANALYZER = "osptrack.run:analyze"

# How a target's archive is stored; anything but "plain" is unpacked into private staging first.
PLAIN = "plain"
DATADOG_ZIP = "datadog-zip"  # encrypted zip (password "infected") holding the package tree or archive

# Batch-level outcome of one attempt (the per-phase Status values live in the phase columns).
FINISHED = "finished"  # the run folder is in place with run.json
FAILED = "failed"  # analyze raised, or produced no run.json
TIMEOUT = "timeout"  # the batch's per-package wall limit killed the worker
CRASHED = "crashed"  # the worker process died without a report (signal, OOM, ...)
INTERRUPTED = "interrupted"  # Ctrl-C / SIGTERM stopped it; does not use up a retry
RECOVERED = "recovered"  # found finished on disk with no manifest row (batch was killed after the rename)

FINAL_OUTCOMES = (FINISHED, RECOVERED)


@dataclass(frozen=True)
class BatchTarget:
    """One coordinate to analyse, with where its archive is and how it is packed."""

    ecosystem: str
    name: str
    version: str
    archive: str | None = None  # local path; None means "fetch by coordinate"
    packing: str = PLAIN
    deps_dirs: tuple[str, ...] = ()  # extra offline dependency folders for this target only
    origin: str = ""  # where it came from (file:line, collection path), for error messages

    @property
    def key(self) -> tuple[str, str, str]:
        return (
            self.ecosystem,
            normalise_name(self.ecosystem, self.name),
            normalise_version(self.ecosystem, self.version),
        )

    @property
    def label(self) -> str:
        eco, name, version = self.key
        return f"{eco}/{name}@{version}"

    @property
    def rel_dir(self) -> str:
        """`<ecosystem>/<name>/<version>`; npm scopes and packagist vendors nest one level deeper."""
        return "/".join(self.key)


def make_target(
    ecosystem: str,
    name: str,
    version: str,
    *,
    archive: str | None = None,
    packing: str = PLAIN,
    deps_dirs: tuple[str, ...] = (),
    origin: str = "",
) -> BatchTarget:
    """Validate a coordinate once, so a run folder path can never escape DIR."""
    where = f"{origin}: " if origin else ""
    try:
        eco = normalise_ecosystem(ecosystem)
        name = name.strip()
        version = version.strip()
        if not name or not version:
            raise BadInput("ecosystem, name and version are all required")
        validate_name(eco, name)
        validate_version(version)
    except BadInput as exc:
        raise BadInput(f"{where}{exc}") from None
    target = BatchTarget(eco, name, version, archive, packing, deps_dirs, origin)
    if any(part in ("", ".", "..") for part in target.rel_dir.split("/")):
        raise BadInput(f"{where}unsafe coordinate {target.label!r}")
    return target


@dataclass(frozen=True)
class AttemptResult:
    """What one attempt produced; one manifest row."""

    target: BatchTarget
    outcome: str
    attempt: int
    statuses: dict[str, str] = field(default_factory=dict)  # phase -> package-analysis Status
    findings: dict[str, str] = field(default_factory=dict)  # phase -> run.json phases.<p>.findings
    wall_s: float = 0.0  # seen by the scheduler: process start to reap
    analysis_s: float = 0.0  # inside the worker: the analyze call alone
    worker: str = ""
    error: str = ""
    timestamp: float = field(default_factory=time.time)
    # Instrumentation for benchmarks/batch.py, not written to the manifest: when the scheduler
    # started the attempt (time.monotonic(), one clock per machine), and the CPU seconds of the
    # worker process itself (host side: staging, fake network, digesting the trace) and of the
    # processes it waited for (the sandbox: bwrap, the package's processes, strace).
    started_s: float = 0.0
    cpu_host_s: float = 0.0
    cpu_sandbox_s: float = 0.0
