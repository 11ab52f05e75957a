"""Per-run resource limits with cgroups, and a kill that reaches every process of the run.

The sandbox's processes (strace, bwrap and all they spawn) join a fresh cgroup before strace
execs, so memory, process count and the final kill cover daemons that escaped the process tree
(setsid, double fork): membership survives reparenting, the process tree does not.
cgroup v1 (memory, pids, freezer) and v2 (unified) are both handled; these machines run v1.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class Limits:
    memory_bytes: int = 2 << 30
    pids: int = 1024
    file_size_bytes: int = 1 << 30
    home_bytes: int = 2 << 30  # tmpfs quota of the writable home
    tmp_bytes: int = 1 << 30  # tmpfs quota of /tmp, per phase
    timeout_s: float = 300.0
    # The strace log lives on the host disk and is parsed into host memory: a syscall flood
    # (~10k traced calls/s, ~700 B a line) would otherwise grow it by GBs per phase. At this
    # size the phase is ended like a timeout and the outcome marks the trace as capped.
    trace_log_bytes: int = 256 << 20

    def as_dict(self) -> dict[str, float]:
        return {
            "memory_bytes": self.memory_bytes,
            "pids": self.pids,
            "file_size_bytes": self.file_size_bytes,
            "home_bytes": self.home_bytes,
            "tmp_bytes": self.tmp_bytes,
            "timeout_s": self.timeout_s,
            "trace_log_bytes": self.trace_log_bytes,
        }


@dataclass(frozen=True)
class LiveProcess:
    """A process of the run's cgroup as /proc showed it (host pid; exe as the host resolves it)."""

    pid: int
    exe: str | None
    argv: tuple[str, ...]
    started: float | None  # epoch seconds


SNAPSHOT_CAP = 256  # processes described at most (a fork bomb has thousands)


def describe(pid: int) -> LiveProcess | None:
    """pid, exe, argv and start time from /proc; None once the process is gone."""
    base = Path(f"/proc/{pid}")
    try:
        stat = (base / "stat").read_text()
        argv = tuple(
            a.decode(errors="backslashreplace") for a in (base / "cmdline").read_bytes().split(b"\0") if a
        )
    except OSError:
        return None
    try:
        exe: str | None = os.readlink(base / "exe")
    except OSError:
        exe = None  # a kernel thread, or a zombie
    started = None
    fields = stat[stat.rfind(")") + 2 :].split()
    if len(fields) > 19 and fields[19].isdigit():  # field 22, starttime, in clock ticks since boot
        started = _boot_time() + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    return LiveProcess(pid, exe, argv, round(started, 3) if started is not None else None)


def _boot_time() -> float:
    for line in _read(Path("/proc/stat")).splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    return 0.0


class RunCgroup:
    """A cgroup (or a set of v1 cgroups) that holds one run's processes.

    Use `attach_fds()` before fork and `attach_in_child()` in the child (preexec), so the
    child joins before it can create anything. `kill_all()` ends every member by pid.
    """

    def __init__(self, name: str, limits: Limits) -> None:
        self.name = name
        self.limits = limits
        self.dirs: dict[str, Path] = {}
        self.version = 0
        self._fds: list[int] = []

    def __enter__(self) -> RunCgroup:
        sweep_stale_cgroups()
        v1 = {c: CGROUP_ROOT / c for c in ("memory", "pids", "freezer")}
        if all((d / "cgroup.procs").exists() for d in v1.values()):
            self.version = 1
            for ctrl, base in v1.items():
                path = base / self.name
                path.mkdir()
                self.dirs[ctrl] = path
            _write(self.dirs["memory"] / "memory.limit_in_bytes", self.limits.memory_bytes)
            with contextlib.suppress(OSError):  # absent without swap accounting
                _write(self.dirs["memory"] / "memory.memsw.limit_in_bytes", self.limits.memory_bytes)
            _write(self.dirs["pids"] / "pids.max", self.limits.pids)
        elif (CGROUP_ROOT / "cgroup.controllers").exists():
            self.version = 2
            path = CGROUP_ROOT / self.name
            path.mkdir()
            self.dirs["unified"] = path
            with contextlib.suppress(OSError):
                _write(path / "memory.max", self.limits.memory_bytes)
                _write(path / "memory.swap.max", 0)
                _write(path / "pids.max", self.limits.pids)
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill_all()
        self.close_fds()
        for path in self.dirs.values():
            for _ in range(50):
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:  # members still exiting
                    time.sleep(0.05)

    # -- joining --------------------------------------------------------------------------
    def attach_fds(self) -> list[int]:
        """Open every cgroup.procs now, in the parent, so the child only has to write."""
        self._fds = [os.open(d / "cgroup.procs", os.O_WRONLY) for d in self.dirs.values()]
        return self._fds

    def attach_in_child(self) -> None:
        for fd in self._fds:
            os.write(fd, b"0")  # "0" moves the writing process

    def close_fds(self) -> None:
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds = []

    # -- inspecting and ending ------------------------------------------------------------
    def pids(self) -> set[int]:
        found: set[int] = set()
        for d in self.dirs.values():
            with contextlib.suppress(OSError):
                found.update(int(x) for x in (d / "cgroup.procs").read_text().split())
        return found

    def snapshot(self, exclude: frozenset[int] = frozenset()) -> list[LiveProcess]:
        """The members, frozen while /proc is read so none forks or exits in between."""
        self._freeze(True)
        try:
            found = [describe(pid) for pid in sorted(self.pids() - exclude)[:SNAPSHOT_CAP]]
        finally:
            self._freeze(False)
        return [p for p in found if p is not None]

    def oom_killed(self) -> bool:
        # v1 memory.oom_control and v2 memory.events both carry an `oom_kill N` line.
        if self.version == 1:
            text = _read(self.dirs["memory"] / "memory.oom_control")
        else:
            text = _read(self.dirs.get("unified", Path("/nonexistent")) / "memory.events")
        counts = [line.split()[1] for line in text.splitlines() if line.startswith("oom_kill ")]
        return any(c != "0" for c in counts)

    def peak_memory(self) -> int | None:
        if self.version == 1:
            value = _read(self.dirs["memory"] / "memory.max_usage_in_bytes").strip()
        else:
            value = _read(self.dirs.get("unified", Path("/nonexistent")) / "memory.peak").strip()
        return int(value) if value.isdigit() else None

    def kill_all(self, spare: frozenset[int] = frozenset(), rounds: int = 100) -> None:
        """SIGKILL every member but `spare`; freeze first so a fork bomb cannot outrun us."""
        for _ in range(rounds):
            victims = self.pids() - spare
            if not victims:
                return
            self._freeze(True)
            for pid in victims:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self._freeze(False)
            time.sleep(0.02)

    def _freeze(self, frozen: bool) -> None:
        with contextlib.suppress(OSError, KeyError):
            if self.version == 1:
                _write(self.dirs["freezer"] / "freezer.state", "FROZEN" if frozen else "THAWED")
            elif self.version == 2:
                _write(self.dirs["unified"] / "cgroup.freeze", 1 if frozen else 0)


def sweep_stale_cgroups(prefix: str = "osptrack-", min_age_s: float = 120.0) -> list[Path]:
    """Remove empty run cgroups left by killed runs. A live phase's cgroup is never empty (strace
    is in it from before exec until the end), except for the instant between mkdir and attach,
    which the age check covers."""
    removed = []
    now = time.time()
    bases = [CGROUP_ROOT / c for c in ("memory", "pids", "freezer")] + [CGROUP_ROOT]
    for base in bases:
        for path in base.glob(f"{prefix}*"):
            try:
                if now - path.stat().st_mtime < min_age_s or (path / "cgroup.procs").read_text().strip():
                    continue
                path.rmdir()
                removed.append(path)
            except OSError:
                continue
    return removed


def _write(path: Path, value: object) -> None:
    path.write_text(str(value))


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""
