"""A stand-in for `osptrack.run.analyze` that writes a run folder of the documented shape.

Its behaviour is chosen by the package name, so one batch can mix outcomes:
`hang-*` never returns, `crash-*` kills its own process, `fail-*` raises, `flaky-*` fails on its
first attempt only, `slow-*` sleeps FAKE_SLOW_SLEEP (if set), `cacheprobe-*` notes which of the analysis's
per-process caches were already filled when it started, anything else succeeds after FAKE_SLEEP seconds. It records its pid and the
staged archive in FAKE_STATE_DIR so tests can check for orphans and for what it was given.
Harmless: it only writes files under `out` and FAKE_STATE_DIR.
"""

from __future__ import annotations

import gc
import hashlib
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from osptrack.target import PackageRef


@dataclass(frozen=True)
class FakeOptions:
    """The fields of osptrack.run.AnalyzeOptions that the batch relies on (kept separate so these
    tests do not depend on the sandbox stack importing cleanly)."""

    phases: tuple[str, ...] = ("install", "import")
    timeout_s: float = 300.0
    deps_dirs: tuple[Path, ...] = ()
    online: bool = False


@dataclass(frozen=True)
class FakeOutcome:
    ref: PackageRef
    out: Path
    statuses: dict[str, str] = field(default_factory=dict)
    wall_s: float = 0.0


def _state() -> Path | None:
    value = os.environ.get("FAKE_STATE_DIR")
    return Path(value) if value else None


def _note(kind: str, text: str) -> None:
    state = _state()
    if state is not None:
        with open(state / f"{kind}.log", "a") as fh:
            fh.write(text + "\n")


def _warm_caches() -> dict[str, int]:
    """Which per-process caches of the analysis are already filled in this worker."""
    from osptrack.sandbox import trust
    from osptrack.trace.tracers import ebpf
    from osptrack.verdict import engine

    caches = {"ebpf_check": ebpf._check, "rules": engine.load_rules, "bundles": trust._system_bundles}
    return {name: fn.cache_info().currsize for name, fn in caches.items()}


def analyze(ref: PackageRef, options: FakeOptions, out: Path) -> FakeOutcome:
    _note("pids", str(os.getpid()))
    _note("ppids", str(os.getppid()))  # the scheduler process (a Dask worker, or the batch)
    _note("frozen", str(gc.get_freeze_count()))  # objects inherited out of the collector's reach
    _note("calls", f"{ref.ecosystem} {ref.name} {ref.version} {ref.archive or ''}")
    if ref.archive is not None:
        data = Path(ref.archive).read_bytes()
        _note("archives", f"{ref.name} {Path(ref.archive).name} {hashlib.sha256(data).hexdigest()}")
        _note("archive_dirs", str(Path(ref.archive).parent))
    _note("deps", f"{ref.name} {','.join(str(d) for d in options.deps_dirs)}")
    name = ref.name.split("/")[-1]
    if name.startswith("cacheprobe"):
        _note("caches", orjson.dumps(_warm_caches()).decode())
    if name.startswith("hang"):
        try:
            while True:
                time.sleep(1)
        finally:
            # Stands in for analyze's cleanup (cgroup kill, unmount): it must get to run.
            _note("cleanup", ref.name)
    if name.startswith("crash"):
        os.kill(os.getpid(), signal.SIGKILL)
    if name.startswith("fail"):
        raise RuntimeError(f"simulated analyzer failure for {ref.name}")
    if name.startswith("flaky"):
        state = _state()
        marker = state / f"flaky-{name}-{ref.version}" if state else None
        if marker is not None and not marker.exists():
            marker.touch()
            raise RuntimeError("simulated first-attempt failure")
    status = "completed"
    if name.startswith("sberr"):  # the sandbox "breaks" on the first attempt only
        state = _state()
        marker = state / f"sberr-{name}-{ref.version}" if state else None
        if marker is not None and not marker.exists():
            marker.touch()
            status = "error_analysis"
    started = time.time()
    out.mkdir(parents=True)
    result = {
        "Package": {"Ecosystem": ref.ecosystem, "Name": ref.name, "Version": ref.version},
        "CreatedTimestamp": int(started),
        "Analysis": {
            p: {
                "Status": "completed",
                "Stdout": "",
                "Stderr": "",
                "Files": [],
                "Sockets": [],
                "Commands": [],
                "DNS": [],
            }
            for p in options.phases
        },
    }
    (out / "result.json").write_bytes(orjson.dumps(result))
    (out / "events.jsonl").write_bytes(b"")
    (out / "network.jsonl").write_bytes(b"")
    # Slow part in the middle: a kill here must never leave a folder that counts as finished.
    slow = name.startswith("slow") and "FAKE_SLOW_SLEEP" in os.environ
    try:
        if slow:
            _note("sleeping", ref.name)  # inside the part whose kill must run the cleanup
        time.sleep(float(os.environ["FAKE_SLOW_SLEEP"] if slow else os.environ.get("FAKE_SLEEP", "0")))
    except BaseException:
        _note("cleanup", ref.name)  # stopped mid-analysis: the cleanup path ran
        raise
    phases = {
        p: {
            "status": status,
            "exit_code": 0,
            "wall_s": 0.01,
            "started": started,
            "timed_out": False,
            "events": 0,
        }
        for p in options.phases
    }
    run = {
        "tool": {"name": "osptrack", "version": "fake"},
        "package": {
            "ecosystem": ref.ecosystem,
            "name": ref.name,
            "version": ref.version,
            "archive": Path(ref.archive).name if ref.archive else None,
        },
        "phases": phases,
        "files": sorted(p.name for p in out.iterdir()),  # what existed before run.json: a checksum
        "timings": {"total_s": time.time() - started},
    }
    (out / "run.json").write_bytes(orjson.dumps(run))
    return FakeOutcome(
        ref=ref, out=out, statuses={p: status for p in options.phases}, wall_s=time.time() - started
    )
