"""A preloaded, single-threaded process that forks one worker per attempt.

Starting `python -m osptrack.batch.worker` costs an interpreter start plus importing the whole
sandbox stack for every package (about 0.2 s of CPU, more on a loaded machine): on short analyses
that is a visible share of the batch. The zygote imports the analyzer once and then forks; each
child is as isolated as a spawned worker (own session and process group, stdout/stderr to the
attempt's log, SIGKILL if the zygote dies) but starts in about a millisecond.

It must stay single-threaded (forking a threaded process is unsafe), so it is a separate process
rather than the batch itself, which runs scheduler threads and a progress bar. The batch talks to
it over a pipe, one JSON line each way:

    {"cmd": "run", "job": PATH, "log": PATH}  ->  {"pid": N}
    {"cmd": "reap", "pid": N}                 ->  {"code": returncode}   (sweeps N's group first)

The batch watches the children with pidfds (they are the zygote's children, not its own), and the
zygote reaps a child only when asked, so its process-group id stays reserved until the sweep.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import signal
import subprocess
import sys
import threading
import traceback
from pathlib import Path
from typing import IO, Any

import orjson

from osptrack.batch.worker import (
    SpawnLauncher,
    child_env,
    die_with_parent,
    resolve_analyzer,
    run_job_file,
    stop_on_sigterm,
    wait_pidfd,
)


class ZygoteLauncher:
    """Batch-side handle; a `Launcher` (see worker.py). Create it on the main thread: the
    zygote's parent-death signal follows the thread that started it."""

    def __init__(self, analyzer: str) -> None:
        self._lock = threading.Lock()
        self._pidfds: dict[int, int] = {}
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "osptrack.batch.zygote", analyzer],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            start_new_session=True,  # terminal Ctrl-C goes to the batch, which stops workers in order
            env=child_env(),
            close_fds=True,
        )
        ready = self._read()
        if ready.get("ready") is not True:
            self.close()
            raise RuntimeError("batch zygote failed to start")

    def _read(self) -> dict[str, Any]:
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError("batch zygote exited")
        reply: dict[str, Any] = orjson.loads(line)
        return reply

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self._proc.stdin is not None
        with self._lock:
            self._proc.stdin.write(orjson.dumps(request) + b"\n")
            self._proc.stdin.flush()
            return self._read()

    def start(self, job_file: Path, log: Path) -> int:
        pid = int(self._ask({"cmd": "run", "job": str(job_file), "log": str(log)})["pid"])
        self._pidfds[pid] = os.pidfd_open(pid)
        return pid

    def exited(self, pid: int) -> bool:
        return self.wait(pid, 0.0)

    def wait(self, pid: int, timeout_s: float) -> bool:
        return wait_pidfd(self._pidfds[pid], timeout_s)

    def reap(self, pid: int) -> int:
        try:
            return int(self._ask({"cmd": "reap", "pid": pid})["code"])
        finally:
            os.close(self._pidfds.pop(pid))

    def close(self) -> None:
        if self._proc.stdin is not None:
            with contextlib.suppress(OSError):
                self._proc.stdin.close()
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()


def _name_process(name: bytes) -> None:
    """Show forked workers as `osptrack-worker` in ps/top (their argv is the zygote's)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(15, ctypes.c_char_p(name), 0, 0, 0)  # PR_SET_NAME


def _child(job: str, log: str, zygote_pid: int) -> None:
    """In the forked child: detach into its own session, redirect output, run the attempt."""
    code = 70
    try:
        os.setsid()
        for sig in (signal.SIGINT, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_DFL)
        stop_on_sigterm()
        die_with_parent(zygote_pid, signal.SIGTERM)
        _name_process(b"osptrack-worker")
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        os.close(null)
        code = run_job_file(Path(job))
    except BaseException:
        with contextlib.suppress(Exception):
            traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _warm_caches() -> None:
    """Fill, once per batch, the per-process caches every analysis fills the same way, so each
    forked worker inherits them instead of paying them per package (measured at load 13 on
    2 cores: ~110 ms for `osptrack-ebpf --check`, whose BPF verification is kernel CPU, ~33 ms
    for the host's certificate bundles, ~20 ms for the verdict rules). Each is what the
    analysis would compute itself, from the same machine state; a failure leaves it to them."""
    from osptrack.sandbox import trust
    from osptrack.trace.tracers import choose, default_name
    from osptrack.verdict.engine import load_rules

    for warm in (lambda: choose(default_name()), load_rules, trust._system_bundles):
        with contextlib.suppress(Exception):
            warm()


def preload(analyzer: str) -> None:
    """The analyzer, osptrack.run (whose AnalyzeOptions every job unpickles) with the modules it
    defers to its first phase (osptrack.run.DEFERRED), and the caches.
    A failure here shows up in each attempt's report instead."""
    with contextlib.suppress(Exception):
        import osptrack.run

        osptrack.run.preload()  # what a cold analyze imports only during its first phase
    with contextlib.suppress(Exception):
        resolve_analyzer(analyzer)
    with contextlib.suppress(Exception):
        _warm_caches()


def freeze_preloaded() -> None:
    """Move everything preloaded out of the collector's reach before forking (gc.freeze): a
    worker's full collections then walk only what its analysis made, not the ~32,000 inherited
    objects (~8 ms a walk), and do not write their headers, which copied the zygote's pages into
    every worker. They are module-level state that lives as long as the process anyway."""
    gc.collect()  # what preload left as garbage is freed once here, not in every worker
    gc.freeze()


def serve(analyzer: str, requests: IO[bytes], replies: IO[bytes]) -> None:
    preload(analyzer)
    freeze_preloaded()
    me = os.getpid()

    def reply(obj: dict[str, Any]) -> None:
        replies.write(orjson.dumps(obj) + b"\n")
        replies.flush()

    reply({"ready": True})
    for line in requests:
        request = orjson.loads(line)
        if request["cmd"] == "run":
            pid = os.fork()
            if pid == 0:
                _child(request["job"], request["log"], me)
            reply({"pid": pid})
        elif request["cmd"] == "reap":
            pid = int(request["pid"])
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)  # sweep while the zombie still holds the group id
            _, status = os.waitpid(pid, 0)
            reply({"code": os.waitstatus_to_exitcode(status)})
    # The batch closed the pipe (done, or dead): children die with us via their death signal.


def main(argv: list[str]) -> int:
    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the batch decides when workers stop
    serve(argv[0], sys.stdin.buffer, sys.stdout.buffer)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


class PreloadedLauncher:
    """The zygote while it works, fresh interpreters once it does not (it died, or never started):
    a lost zygote must cost speed, not the rest of the batch."""

    def __init__(self, analyzer: str) -> None:
        self._spawn = SpawnLauncher()
        self._zygote: ZygoteLauncher | None = None
        with contextlib.suppress(OSError, RuntimeError):
            self._zygote = ZygoteLauncher(analyzer)
        self._owner: dict[int, Any] = {}
        self._lock = threading.Lock()

    def start(self, job_file: Path, log: Path) -> int:
        launcher: Any = self._spawn
        if self._zygote is not None:
            try:
                pid = self._zygote.start(job_file, log)
                launcher = self._zygote
            except (OSError, RuntimeError, ValueError):
                self._zygote = None  # keep going without it
                pid = self._spawn.start(job_file, log)
        else:
            pid = self._spawn.start(job_file, log)
        with self._lock:
            self._owner[pid] = launcher
        return pid

    def exited(self, pid: int) -> bool:
        return bool(self._owner[pid].exited(pid))

    def wait(self, pid: int, timeout_s: float) -> bool:
        return bool(self._owner[pid].wait(pid, timeout_s))

    def reap(self, pid: int) -> int:
        with self._lock:
            launcher = self._owner.pop(pid)
        return int(launcher.reap(pid))

    def close(self) -> None:
        if self._zygote is not None:
            self._zygote.close()
