"""One attempt = one worker process, so a hung or crashing analysis can be killed by pid.

`run_isolated` (called by a local scheduler thread or inside a Dask task) starts
`python -m osptrack.batch.worker JOB` in its own session and process group, waits with the
per-package wall limit, and on timeout or Ctrl-C kills exactly that group: the worker and
everything it started (strace, bwrap), nothing else. The worker asks the kernel to SIGKILL it
if its parent dies, so a `kill -9` of the batch does not leave analyses running on.

Inside the worker: stage the archive privately, call `analyze` into `<attempt>/run`, delete the
staged sample, move the finished run folder into place, and leave a small `report.json`.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import os
import pickle
import resource
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import orjson

from osptrack.batch.model import (
    CRASHED,
    FAILED,
    FINISHED,
    INTERRUPTED,
    PLAIN,
    TIMEOUT,
    AttemptResult,
    BatchTarget,
)
from osptrack.batch.model import DEFAULT_ANALYZER as DEFAULT_ANALYZER
from osptrack.batch.store import RUN_JSON, Destination, phase_findings, phase_statuses, read_run_json
from osptrack.jsonio import atomic_write_json

KILL_GRACE_S = 10.0  # SIGTERM -> SIGKILL: time for analyze to kill its cgroup and unmount
_PARENT_ENV = "OSPTRACK_BATCH_PARENT_PID"
_LOG_TAIL = 400


@dataclass(frozen=True)
class Job:
    target: BatchTarget
    options: Any  # osptrack.run.AnalyzeOptions; typed loosely so the lead can add fields freely
    dest_root: str
    attempt: int
    package_timeout_s: float
    replace: bool = False
    analyzer: str = DEFAULT_ANALYZER  # "module:function", imported in the worker


def resolve_analyzer(spec: str) -> Callable[..., Any]:
    module, _, attr = spec.partition(":")
    if not module or not attr:
        raise ValueError(f"analyzer must be 'module:function', got {spec!r}")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj  # type: ignore[no-any-return]


# -- parent side ---------------------------------------------------------------------------------


def child_env() -> dict[str, str]:
    env = os.environ.copy()
    # The worker must import what this process can (the project, a test's fake analyzer).
    paths = [p for p in sys.path if p] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env[_PARENT_ENV] = str(os.getpid())
    return env


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


class Launcher(Protocol):
    """Starts worker processes, each the leader of its own process group, and reaps them.

    `exited` and `wait` must not reap: the unreaped zombie keeps its process-group id reserved
    until `reap` has swept the group, so a sweep can never hit an unrelated group that reused the id.
    """

    def start(self, job_file: Path, log: Path) -> int: ...

    def exited(self, pid: int) -> bool: ...

    def wait(self, pid: int, timeout_s: float) -> bool:
        """Block until the worker has exited or timeout_s has passed; True if it has exited."""
        ...

    def reap(self, pid: int) -> int: ...


def wait_pidfd(pidfd: int, timeout_s: float) -> bool:
    """A pidfd turns readable when its process exits: waiting on it ends at the exit itself, where
    a sleep-and-check loop noticed it up to a poll interval late (50 ms a slot, per attempt)."""
    readable, _, _ = select.select([pidfd], [], [], max(0.0, timeout_s))
    return bool(readable)


class SpawnLauncher:
    """A fresh `python -m osptrack.batch.worker` per attempt (works anywhere, e.g. in Dask)."""

    def __init__(self) -> None:
        self._procs: dict[int, subprocess.Popen[bytes]] = {}
        self._pidfds: dict[int, int] = {}
        self._lock = threading.Lock()

    def start(self, job_file: Path, log: Path) -> int:
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "osptrack.batch.worker", str(job_file)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: killable as a unit, no Ctrl-C echo
                env=child_env(),
                close_fds=True,
            )
        pidfd = os.pidfd_open(proc.pid)  # our unreaped child: the pid cannot be reused meanwhile
        with self._lock:
            self._procs[proc.pid] = proc
            self._pidfds[proc.pid] = pidfd
        return proc.pid

    def exited(self, pid: int) -> bool:
        return self.wait(pid, 0.0)

    def wait(self, pid: int, timeout_s: float) -> bool:
        return wait_pidfd(self._pidfds[pid], timeout_s)

    def reap(self, pid: int) -> int:
        _signal_group(pid, signal.SIGKILL)  # anything the worker left behind (daemonised children)
        with self._lock:
            proc = self._procs.pop(pid)
            pidfd = self._pidfds.pop(pid)
        try:
            return proc.wait()
        finally:
            os.close(pidfd)

    def close(self) -> None:
        pass


def _stop_worker(launcher: Launcher, pid: int) -> None:
    """SIGTERM the worker's group, give it a moment to clean up, then SIGKILL the group."""
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + KILL_GRACE_S
    while time.monotonic() < deadline and not launcher.exited(pid):
        time.sleep(0.05)
    _signal_group(pid, signal.SIGKILL)


_default_launcher: SpawnLauncher | None = None


def run_isolated(
    job: Job,
    should_stop: Callable[[], bool] | None = None,
    poll_s: float = 0.05,
    launcher: Launcher | None = None,
) -> AttemptResult:
    """Run one attempt in a fresh worker process; never raises for the package's faults.
    `poll_s` is how often the limit and `should_stop` are checked; the worker's exit is seen at once."""
    global _default_launcher
    if launcher is None:
        _default_launcher = _default_launcher or SpawnLauncher()
        launcher = _default_launcher
    dest = Destination(job.dest_root)
    attempt_dir = dest.new_attempt_dir()
    started = time.monotonic()
    outcome: str | None = None
    try:
        job_file = attempt_dir / "job.pkl"
        job_file.write_bytes(pickle.dumps(job))
        pid = launcher.start(job_file, attempt_dir / "worker.log")
        try:
            while not launcher.wait(pid, poll_s):
                if time.monotonic() - started > job.package_timeout_s:
                    outcome = TIMEOUT
                    _stop_worker(launcher, pid)
                    break
                if should_stop is not None and should_stop():
                    outcome = INTERRUPTED
                    _stop_worker(launcher, pid)
                    break
        finally:
            returncode = launcher.reap(pid)
        wall = time.monotonic() - started
        return _result(job, attempt_dir, outcome, returncode, wall, pid, started)
    finally:
        shutil.rmtree(attempt_dir, ignore_errors=True)


def _result(
    job: Job,
    attempt_dir: Path,
    outcome: str | None,
    returncode: int,
    wall: float,
    pid: int,
    started: float = 0.0,
) -> AttemptResult:
    report: dict[str, Any] = {}
    report_file = attempt_dir / "report.json"
    if report_file.is_file():
        try:
            report = orjson.loads(report_file.read_bytes())
        except orjson.JSONDecodeError:
            report = {}
    error = str(report.get("error") or "")
    if outcome is None:
        if report.get("finalized") is not None:
            outcome = FINISHED if not error else FAILED
        elif report:
            outcome = FAILED
        else:
            outcome = CRASHED
            error = f"worker exited with {_describe_exit(returncode)}; log: {_log_tail(attempt_dir)}"
    elif outcome == TIMEOUT:
        error = f"no result within the per-package limit of {job.package_timeout_s:g} s; killed"
    elif outcome == INTERRUPTED:
        error = "stopped by the user"
    return AttemptResult(
        target=job.target,
        outcome=outcome,
        attempt=job.attempt,
        statuses=dict(report.get("statuses") or {}),
        findings={str(k): str(v) for k, v in dict(report.get("findings") or {}).items()},
        wall_s=wall,
        analysis_s=float(report.get("analysis_s") or 0.0),
        worker=str(report.get("worker") or f"{socket.gethostname()}:{pid}"),
        error=error,
        started_s=started,
        cpu_host_s=float(report.get("cpu_host_s") or 0.0),
        cpu_sandbox_s=float(report.get("cpu_sandbox_s") or 0.0),
    )


def _describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal {-returncode}"
    return f"status {returncode}"


def _log_tail(attempt_dir: Path) -> str:
    try:
        data = (attempt_dir / "worker.log").read_bytes()[-_LOG_TAIL:]
    except OSError:
        return ""
    return data.decode("utf-8", "replace").strip()


# -- worker side ---------------------------------------------------------------------------------


class Stopped(BaseException):
    """SIGTERM in a worker: unwind through analyze's context managers (cgroup kill, tmpfs
    unmount, fake network shutdown) instead of dying on the spot and orphaning the sandbox, whose
    strace runs in its own session out of reach of the worker's process group."""


def _raise_stopped(signum: int, frame: object) -> None:
    raise Stopped(signal.Signals(signum).name)


def stop_on_sigterm() -> None:
    signal.signal(signal.SIGTERM, _raise_stopped)


def die_with_parent(expected_parent: int | None = None, sig: int = signal.SIGKILL) -> None:
    """Have the kernel send `sig` when the process that started this one dies (kill -9 of the
    batch). Workers ask for SIGTERM, so they still clean up their sandbox."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, sig, 0, 0, 0)
    except (OSError, AttributeError):
        return
    expected = expected_parent or int(os.environ.get(_PARENT_ENV, "0"))
    if expected and os.getppid() != expected:
        os._exit(70)  # the parent died before prctl took effect


def execute(job: Job, attempt_dir: Path) -> dict[str, Any]:
    """Do the attempt inside this process; returns the report (also on failure)."""
    from osptrack.target import PackageRef

    report: dict[str, Any] = {"worker": f"{socket.gethostname()}:{os.getpid()}", "finalized": None}
    stage = attempt_dir / "stage"
    run_dir = attempt_dir / "run"
    target = job.target
    try:
        analyze = resolve_analyzer(job.analyzer)
        if target.packing == PLAIN:
            archive = Path(target.archive) if target.archive else None
        else:
            from osptrack.batch.staging import stage_archive  # pyzipper + crypto: only when needed

            archive = stage_archive(target, stage)
        ref = PackageRef(target.ecosystem, target.name, target.version, archive)
        options = job.options
        if target.deps_dirs:
            options = replace(
                options, deps_dirs=tuple(options.deps_dirs) + tuple(Path(d) for d in target.deps_dirs)
            )
        t0 = time.perf_counter()
        cpu0 = _cpu()
        outcome = analyze(ref, options, run_dir)
        report["analysis_s"] = time.perf_counter() - t0
        cpu1 = _cpu()
        report["cpu_host_s"], report["cpu_sandbox_s"] = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
        statuses = dict(getattr(outcome, "statuses", None) or {}) or phase_statuses(
            read_run_json(run_dir / RUN_JSON)
        )
        report["statuses"] = statuses
        report["findings"] = dict(getattr(outcome, "findings", None) or {}) or phase_findings(
            read_run_json(run_dir / RUN_JSON)
        )
        shutil.rmtree(stage, ignore_errors=True)  # the decrypted sample never outlives the attempt
        report["finalized"] = Destination(job.dest_root).finalize(target, run_dir, job.replace)
    except Exception as exc:  # the package's or analyzer's fault: report it, let the batch retry
        report["error"] = f"{type(exc).__name__}: {exc}"
        report["finalized"] = None
    except Stopped as exc:  # analyze has unwound and cleaned up by now
        report["error"] = f"stopped by {exc}"
        report["finalized"] = None
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return report


def _cpu() -> tuple[float, float]:
    """(this process, its reaped descendants) user+system CPU seconds."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, children.ru_utime + children.ru_stime


def run_job_file(job_file: Path) -> int:
    job: Job = pickle.loads(job_file.read_bytes())
    report = execute(job, job_file.parent)
    atomic_write_json(job_file.parent / "report.json", report)
    return 0


def main(argv: list[str]) -> int:
    stop_on_sigterm()
    die_with_parent(sig=signal.SIGTERM)
    return run_job_file(Path(argv[0]))


if __name__ == "__main__":
    code = main(sys.argv[1:])
    # The report is on disk (fsynced); skip interpreter teardown of the whole sandbox stack,
    # which costs a noticeable share of a short analysis on a busy machine.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
