"""Shared pieces of the containment suite: hostile test packages, a full analysis, host checks.

Every hostile package is built here from source text and only ever runs inside the sandbox
under test. "Hostile" is imitated harmlessly: the fork bomb is capped by the sandbox's pids
limit, the daemons sleep, the escape attempts are single syscalls that the sandbox denies.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from builders import make_npm, make_wheel
from osptrack.jsonio import read_jsonl
from osptrack.run import AnalyzeOptions, analyze
from osptrack.sandbox.limits import Limits
from osptrack.target import parse_target

REPO = Path(__file__).resolve().parents[2]
# Host paths a package must never see or change (the cache may not exist on every machine).
CACHE = Path(os.environ.get("OSPTRACK_CACHE", "/var/cache/osptrack"))
WORK_ROOT = Path(os.environ.get("OSPTRACK_WORKDIR", "/var/tmp/osptrack-work"))
# Every figure the suite measures is appended here when set (docs/security.md is built from it).
REPORT = os.environ.get("OSPTRACK_CONTAIN_REPORT")


def marker() -> str:
    """A unique string a hostile package puts in names and argv, so the host can be searched."""
    return f"osptrack-contain-{uuid.uuid4().hex[:10]}"


def py_wheel(dest: Path, name: str, code: str) -> Path:
    """A wheel whose only module runs `code` when the import phase imports it."""
    module = name.replace("-", "_")
    return make_wheel(dest, name, "1.0", {f"{module}/__init__.py": code})


def shell_wheel(dest: Path, name: str, script: str) -> Path:
    """A wheel whose import runs a bash script (bash, not dash: `exec -a` renames processes)."""
    return py_wheel(dest, name, f"import subprocess\nsubprocess.run(['/bin/bash', '-c', {script!r}])\n")


def npm_package(dest: Path, name: str, preinstall_js: str, index_js: str = "module.exports = 1;\n") -> Path:
    return make_npm(
        dest,
        name,
        "1.0.0",
        {"preinstall.js": preinstall_js, "index.js": index_js},
        scripts={"preinstall": "node preinstall.js"},
    )


@dataclass
class Analysis:
    out: Path
    statuses: dict[str, str]
    result: dict[str, Any]
    run: dict[str, Any]
    events: list[dict[str, Any]]
    network: list[dict[str, Any]]
    wall_s: float

    def phase(self, name: str) -> dict[str, Any]:
        return dict(self.run["phases"][name])

    def stdout(self, phase: str) -> str:
        import base64

        return base64.b64decode(self.result["Analysis"][phase]["Stdout"]).decode("utf-8", "replace")

    def overrun_s(self, phase: str, timeout_s: float) -> float:
        """How long the phase ran past its timeout (the time-to-kill)."""
        return float(self.phase(phase)["wall_s"]) - timeout_s


def run_analysis(
    archive: Path,
    out: Path,
    ecosystem: str = "pypi",
    phases: tuple[str, ...] = ("install", "import"),
    timeout_s: float = 30.0,
    limits: Limits | None = None,
) -> Analysis:
    """The whole pipeline, in-process, as `osptrack analyze` runs it."""
    options = AnalyzeOptions(
        phases=phases, timeout_s=timeout_s, limits=replace(limits or Limits(), timeout_s=timeout_s)
    )
    t0 = time.monotonic()
    outcome = analyze(parse_target(ecosystem, str(archive)), options, out)
    wall = time.monotonic() - t0
    return Analysis(
        out=out,
        statuses=dict(outcome.statuses),
        result=json.loads((out / "result.json").read_text()),
        run=json.loads((out / "run.json").read_text()),
        events=read_jsonl(out / "events.jsonl"),
        network=read_jsonl(out / "network.jsonl"),
        wall_s=wall,
    )


def record(case: str, **figures: Any) -> None:
    """Append one measured figure to the report file (if the caller asked for one)."""
    if REPORT:
        with open(REPORT, "a") as fh:
            fh.write(json.dumps({"case": case, **figures}) + "\n")


def processes_with(text: str) -> list[int]:
    """Host pids whose command line or name contains `text` (a sandbox that outlived its run)."""
    found = []
    needle = text.encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            comm = Path(f"/proc/{entry}/comm").read_bytes()
        except OSError:
            continue
        if needle in cmdline or needle[:15] in comm:
            found.append(int(entry))
    return found


def files_named(text: str, roots: list[Path], max_depth: int = 3) -> list[Path]:
    """Files or folders whose name contains `text`, under `roots` down to `max_depth`."""
    found: list[Path] = []
    for root in roots:
        if not root.is_dir():
            continue
        base = len(root.parts)
        for folder, dirs, names in os.walk(root, onerror=lambda e: None):
            depth = len(Path(folder).parts) - base
            if depth >= max_depth:
                dirs[:] = []
            found += [Path(folder) / n for n in (*dirs, *names) if text in n]
    return found


def stat_of(path: Path) -> tuple[bytes, int, int] | None:
    try:
        return path.read_bytes(), path.stat().st_mtime_ns, path.stat().st_size
    except OSError:
        return None


def sigsys_syscalls(events: list[dict[str, Any]]) -> set[str]:
    """Syscalls the seccomp filter trapped, from the SIGSYS signal events strace recorded."""
    found = set()
    for e in events:
        if e.get("kind") == "process" and e.get("op") == "signal" and e.get("signal") == "SIGSYS":
            text = " ".join(e.get("args") or [])
            if "si_syscall=__NR_" in text:
                found.add(text.split("si_syscall=__NR_", 1)[1].split(",")[0].split("}")[0].strip())
    return found


def failed_paths(events: list[dict[str, Any]]) -> dict[str, str]:
    """path -> errno of every failed file event (the attempt is evidence, even when it fails)."""
    return {
        e["path"]: e["errno"] for e in events if e.get("kind") == "file" and e.get("errno") and e.get("path")
    }
