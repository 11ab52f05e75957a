"""Runs one phase: strace (outside) -> bwrap -> toolchain command, with limits and a real timeout.

The workspace is the run's host-side scratch: a tmpfs home with a size quota (it persists
across phases, so import sees what install wrote), the read-only input folder, generated /etc
files and the strace logs. It is removed, and the tmpfs unmounted, when the run ends.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import fcntl
import os
import resource
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from osptrack.sandbox import native
from osptrack.sandbox.bwrap import HOST_GID, HOST_UID, SandboxSpec, bwrap_argv, seccomp_filter_file, write_etc
from osptrack.sandbox.limits import Limits, LiveProcess, RunCgroup
from osptrack.sandbox.mounts import MS_NODEV, MS_NOSUID, mount, umount_detach

OUTPUT_TAIL = 4096  # package-analysis keeps the last 4 KiB of stdout and stderr
KILL_GRACE_S = 5.0
PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True)
LOG_POLL_S = 0.25  # how often the trace log's size is checked against Limits.trace_log_bytes


def work_root() -> Path:
    root = Path(os.environ.get("OSPTRACK_WORKDIR", "/var/tmp/osptrack-work"))
    root.mkdir(parents=True, exist_ok=True, mode=0o711)
    return root


# A workspace this old that nobody holds or names is a killed run's. Generous on purpose: runs
# of code older than the lock hold none, and a run lasts at most phases x (timeout + grace).
STALE_AFTER_S = 3600.0


def sweep_stale_workspaces(root: Path, min_age_s: float = STALE_AFTER_S) -> list[Path]:
    """Remove the workspaces of runs that were killed before they could clean up.

    A live Workspace holds an exclusive flock on its `.lock` for its whole life, so a lock we
    can take means its owner is gone (and no strace or bwrap command line names the folder);
    then its home tmpfs is unmounted and the folder removed.
    """
    removed = []
    now = time.time()
    for folder in root.glob("run-*"):
        try:
            if now - folder.stat().st_mtime < min_age_s:
                continue  # may be a run that has not taken its lock yet
            fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue  # a live run holds it
        try:
            if _named_by_a_process(folder):
                continue
            if os.path.ismount(folder / "home"):
                with contextlib.suppress(OSError):
                    umount_detach(folder / "home")
            if not os.path.ismount(folder / "home"):
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
        finally:
            os.close(fd)
    return removed


def _named_by_a_process(folder: Path) -> bool:
    needle = str(folder).encode()
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            with contextlib.suppress(OSError):
                if needle in Path(f"/proc/{pid}/cmdline").read_bytes():
                    return True
    return False


class Workspace:
    """Host-side scratch of one run; only `input` and `home` are ever visible to the sandbox."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._mounted = False
        self._lock: int | None = None
        self._remover: threading.Thread | None = None
        self.etc_written: object = None  # what run_phase last wrote to etc/ (the same every phase)

    def __enter__(self) -> Workspace:
        # Everything is created here, not in __init__, so a failure half-way is cleaned up.
        root = work_root()
        sweep_stale_workspaces(root)
        self.root = Path(tempfile.mkdtemp(prefix="run-", dir=root))
        self.home = self.root / "home"
        self.input = self.root / "input"
        self.etc = self.root / "etc"
        self.logs = self.root / "logs"
        try:
            # Held until __exit__: tells sweep_stale_workspaces (in other processes) we are alive.
            self._lock = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            fcntl.flock(self._lock, fcntl.LOCK_EX)
            self.root.chmod(0o711)
            for path, mode in (
                (self.home, 0o700),
                (self.input, 0o755),
                (self.etc, 0o755),
                (self.logs, 0o700),
            ):
                path.mkdir(mode=mode)
                path.chmod(mode)
            # mount(2) itself, not a `mount` process (5-10 ms of every run's set-up).
            opts = f"size={self.limits.home_bytes},mode=0700,uid={HOST_UID},gid={HOST_GID}"
            mount("osptrack-home", self.home, "tmpfs", MS_NOSUID | MS_NODEV, opts)
            self._mounted = True
        except BaseException as exc:
            self.__exit__(type(exc), exc, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        """Unmount the home now; remove the folder in a thread (`wait_removed` joins it).

        The folder holds the trace logs, the staged input and the generated /etc: removing them
        from an ext4 work root took 10 ms quiet and over 100 ms under load, while the run could
        already judge and write its folder. The lock is released only once the folder is gone,
        and a process killed meanwhile leaves a folder that `sweep_stale_workspaces` removes."""
        if self._mounted:
            # Detached: the kernel frees the tmpfs with everything in it, so only the small
            # host-side folders are left to remove.
            with contextlib.suppress(OSError):
                umount_detach(self.home)
            self._mounted = False
        if exc and exc[0] is not None:
            self._remove()  # a failed run: nothing left to overlap with
        elif self._remover is None:
            self._remover = threading.Thread(target=self._remove, name="workspace-remove")
            self._remover.start()

    def _remove(self) -> None:
        if hasattr(self, "root"):
            shutil.rmtree(self.root, ignore_errors=True)
        if self._lock is not None:
            with contextlib.suppress(OSError):
                os.close(self._lock)
            self._lock = None

    def wait_removed(self, timeout: float | None = None) -> bool:
        """Block until the folder is removed (after `__exit__`); False if still there at `timeout`."""
        if self._remover is None:
            return not hasattr(self, "root") or not self.root.exists()
        self._remover.join(timeout)
        return not self._remover.is_alive()


@dataclass(frozen=True)
class PhaseOutcome:
    exit_code: int | None
    timed_out: bool
    oom_killed: bool
    started: float
    wall_s: float
    stdout: bytes  # last OUTPUT_TAIL bytes
    stderr: bytes
    stdout_bytes: int  # total written, to mark truncation
    stderr_bytes: int
    peak_memory: int | None
    trace_log: Path
    trace_capped: bool = False  # ended early: the trace log reached Limits.trace_log_bytes
    ended_at: float = 0.0  # epoch seconds when the command ended or the limit was hit
    alive_at_end: tuple[LiveProcess, ...] = ()  # the run cgroup's processes at that moment


class _Tail:
    """Drains a pipe to the end, keeping only the last bytes, so floods cannot fill memory."""

    def __init__(self, stream: object) -> None:
        self.chunks: collections.deque[bytes] = collections.deque()
        self.kept = 0
        self.total = 0
        self.thread = threading.Thread(target=self._drain, args=(stream,), daemon=True)
        self.thread.start()

    def _drain(self, stream: object) -> None:
        read = stream.read1 if hasattr(stream, "read1") else stream.read  # type: ignore[attr-defined]
        while chunk := read(65536):
            self.total += len(chunk)
            self.chunks.append(chunk)
            self.kept += len(chunk)
            while self.kept - len(self.chunks[0]) >= OUTPUT_TAIL:
                self.kept -= len(self.chunks.popleft())

    def value(self) -> bytes:
        self.thread.join(timeout=KILL_GRACE_S)
        return b"".join(self.chunks)[-OUTPUT_TAIL:]


# benchmarks/cli_startup.py sets this to a file path: each phase appends the CLOCK_MONOTONIC time
# (shared by every process of the machine) at which it spawns its tracer, so the benchmark can
# tell how long `osptrack analyze` took from its own exec to the first phase's process.
SPAWN_MARK_ENV = "OSPTRACK_SPAWN_MARK"


def _mark_spawn(now: float) -> None:
    path = os.environ.get(SPAWN_MARK_ENV)
    if path:
        with open(path, "a") as fh:
            fh.write(f"{now:.6f}\n")


def trace_log(workspace: Workspace, name: str) -> Path:
    """Where phase `name`'s tracer writes its log (a follower reads it from there meanwhile)."""
    return workspace.logs / f"{name}.strace"


def run_phase(
    name: str,
    spec: SandboxSpec,
    workspace: Workspace,
    command: list[str],
    trace_prefix: Callable[[Path], list[str]],
    limits: Limits,
    enter_netns: Callable[[], None] | None,
    run_id: str,
    tracer_done: threading.Event | None = None,
    netns_fd: int | None = None,
    launch_env: Mapping[str, str] | None = None,
) -> PhaseOutcome:
    """Run `command` in the sandbox under strace; kill everything at the timeout.

    `launch_env`: variables the tracer itself needs in its environment on top of the sandbox's
    (strace's TZ, which its `-E TZ` keeps from the sandbox: trace/strace.py).

    `tracer_done` is set once the tracer has exited (its log is complete), or run_phase fails:
    what a follower of the log (osptrack.trace.follow) waits for to end at the end of the file.
    `netns_fd`, an fd of the namespace `enter_netns` joins, lets the built launcher join it
    (osptrack.sandbox.native): the phase is then spawned without a preexec_fn.
    """
    try:
        done = tracer_done or threading.Event()
        join = _Join(enter_netns, netns_fd)
        return _run_phase(
            name, spec, workspace, command, trace_prefix, limits, join, run_id, done, launch_env or {}
        )
    finally:
        if tracer_done is not None:
            tracer_done.set()


def _run_phase(
    name: str,
    spec: SandboxSpec,
    workspace: Workspace,
    command: list[str],
    trace_prefix: Callable[[Path], list[str]],
    limits: Limits,
    join: _Join,
    run_id: str,
    tracer_done: threading.Event,
    launch_env: Mapping[str, str],
) -> PhaseOutcome:
    log = trace_log(workspace, name)
    # The generated /etc, overlay and /usr/local are the same for every phase of a run (and
    # read-only in the sandbox): written once.
    written = (spec.etc_files, spec.overlay, spec.ro_binds)
    if workspace.etc_written != written:
        write_etc(spec, workspace.etc)
        workspace.etc_written = written
    with (
        open(seccomp_filter_file(), "rb") as seccomp,
        tempfile.TemporaryFile(dir=workspace.root) as init_cmd,
        RunCgroup(f"osptrack-{run_id}-{name}", limits) as cg,
    ):
        # The command reaches the sandbox's init through an fd, so it is on no process's argv.
        # NUL-terminated arguments: the init parses them without importing json (every module
        # it imports is a few hundred traced syscalls per phase).
        init_cmd.write(b"".join(os.fsencode(arg) + b"\0" for arg in command))
        init_cmd.seek(0)
        fds = (seccomp.fileno(), init_cmd.fileno())
        # Bind sources relative to the workspace, bwrap's working directory (bwrap_argv's `base`).
        bwrap = bwrap_argv(spec, workspace.etc, seccomp.fileno(), command, fds[1], base=workspace.root)
        argv = [*trace_prefix(log), *bwrap]
        cg_fds = cg.attach_fds()
        parent = os.getpid()
        launcher = join.launcher()
        preexec: Callable[[], None] | None = None
        if launcher is not None:
            # vfork+exec of the launcher, which does in C what enter_sandbox does below.
            netns = -1 if join.fd is None else join.fd
            cgs = ",".join(map(str, cg_fds)) or "-"
            argv = [str(launcher), str(parent), str(netns), str(limits.file_size_bytes), cgs, "--", *argv]
            fds = (*fds, *cg_fds, *(() if join.fd is None else (join.fd,)))
        else:

            def enter_sandbox() -> None:  # runs in the child between fork and exec
                # If osptrack dies (SIGKILL, OOM, a killed batch worker), strace must die with it:
                # otherwise the sandbox runs on untimed. bwrap's --die-with-parent then ends the
                # sandbox's pid namespace, and every process in it.
                _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
                if os.getppid() != parent:  # the parent died before prctl took effect
                    os._exit(1)
                if join.enter is not None:
                    join.enter()
                cg.attach_in_child()
                resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_size_bytes, limits.file_size_bytes))
                resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

            preexec = enter_sandbox

        started = time.time()
        t0 = time.monotonic()
        _mark_spawn(t0)
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=fds,
            preexec_fn=preexec,  # noqa: PLW1509 - setns/cgroup must precede exec (no launcher built)
            start_new_session=True,
            cwd=workspace.root,  # the bind sources' base
            env={**spec.env, **launch_env},  # bwrap hands spec.env on: no value goes on an argv
        )
        cg.close_fds()
        out, err = _Tail(proc.stdout), _Tail(proc.stderr)
        exited = _ExitWatch(proc)
        try:
            timed_out, capped = _wait(exited, t0 + limits.timeout_s, log, limits.trace_log_bytes)
            ended_at = time.time()
            # Who is still there, read before anything is killed (strace itself is not the package's).
            alive = cg.snapshot(exclude=frozenset({proc.pid}))
            if timed_out or capped:
                # Every process of the sandbox, daemons included; strace is spared so it can
                # finish writing the log once its tracees are gone.
                cg.kill_all(spare=frozenset({proc.pid}))
                if not exited.wait(KILL_GRACE_S):
                    proc.kill()
                    proc.wait()
        finally:
            exited.close()
        tracer_done.set()  # reaped (or killed): the tracer has written all it will
        wall = time.monotonic() - t0
        cg.kill_all()  # anything that outlived the command
        outcome = PhaseOutcome(
            exit_code=None if timed_out else proc.returncode,
            timed_out=timed_out,
            oom_killed=cg.oom_killed(),
            started=started,
            wall_s=wall,
            stdout=out.value(),
            stderr=err.value(),
            stdout_bytes=out.total,
            stderr_bytes=err.total,
            peak_memory=cg.peak_memory(),
            trace_log=log,
            trace_capped=capped,
            ended_at=ended_at,
            alive_at_end=tuple(alive),
        )
        for stream in (proc.stdout, proc.stderr):
            with contextlib.suppress(OSError):
                stream.close()  # type: ignore[union-attr]
    return outcome


@dataclass(frozen=True)
class _Join:
    """How the phase joins the run's network namespace: `enter` in a preexec_fn, or the built
    launcher given the namespace's fd (a phase with no namespace to join needs no fd)."""

    enter: Callable[[], None] | None
    fd: int | None

    def launcher(self) -> Path | None:
        if self.enter is not None and self.fd is None:
            return None  # only a preexec_fn knows how to join it
        return native.launch_path()


class _ExitWatch:
    """Blocks until the command exits, or a timeout: poll() on a pidfd, no sleep-and-retry.

    Popen.wait(timeout) sleeps in growing steps (up to 50 ms) between checks, which added tens of
    milliseconds to every phase. A pidfd becomes readable the moment the process exits; then
    Popen.wait() reaps it at once. Without pidfd_open (kernel < 5.3), Popen.wait(timeout).
    """

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.fd: int | None = None
        with contextlib.suppress(OSError, AttributeError):
            self.fd = os.pidfd_open(proc.pid)

    def wait(self, timeout: float) -> bool:
        """True once the command has exited (and is reaped) within `timeout` seconds."""
        if self.proc.returncode is not None:
            return True
        if self.fd is None:
            try:
                self.proc.wait(timeout=max(timeout, 0.0))
            except subprocess.TimeoutExpired:
                return False
            return True
        poller = select.poll()
        poller.register(self.fd, select.POLLIN)
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            try:
                ready = poller.poll(max(0, int((deadline - time.monotonic()) * 1000) + 1))
            except InterruptedError:
                ready = []
            if ready:
                self.proc.wait()
                return True
            if time.monotonic() >= deadline:
                return False

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _wait(exited: _ExitWatch, deadline: float, log: Path, log_cap: int) -> tuple[bool, bool]:
    """Wait for the command; (timed_out, capped). Wakes every LOG_POLL_S so a runaway trace log
    is caught early, and at once when the command exits."""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return True, False
        if exited.wait(min(remaining, LOG_POLL_S)):
            return False, False
        try:
            if log.stat().st_size > log_cap:
                return False, True
        except OSError:
            pass  # strace has not created it yet
