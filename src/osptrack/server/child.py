"""The forked child: turn a copy of the warm server into the process a direct run would be, then
run the console script's main() and exit as it does.

Everything the client's process has that a fresh interpreter would have inherited or computed is
set here: environment (wholesale), cwd (fchdir on the client's fd, so a renamed or unreadable
cwd still works), umask, fds 0/1/2, rlimits, nice value, CPU affinity and scheduling policy, the signal dispositions
and mask a fresh interpreter sets up from what it inherited, sys.stdin/stdout/stderr made anew
for the new fds, sys.argv, and a re-seeded `random`. What the server is keyed on (interpreter,
flags, sys.path, PYTHON*/locale variables, namespaces, cgroup: protocol.key_material) is already
the same. Set-up that fails is reported before the server accepts, and the client runs direct.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import os
import signal
import sys
import time
import traceback
from typing import Any

# A fresh CPython ignores these itself (see Python/pylifecycle.c), whatever it inherited.
PYTHON_IGNORES = (signal.SIGPIPE, signal.SIGXFSZ)
PR_SET_PDEATHSIG = 1


def _reset_signals(ignored: list[int]) -> None:
    for sig in signal.valid_signals():
        if sig in (signal.SIGKILL, signal.SIGSTOP):
            continue
        with contextlib.suppress(OSError, ValueError):
            signal.signal(sig, signal.SIG_IGN if sig in ignored or sig in PYTHON_IGNORES else signal.SIG_DFL)
    if signal.SIGINT not in ignored:  # Python installs its KeyboardInterrupt only over SIG_DFL
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _stdio(template: dict[str, tuple[str, str, bool]]) -> None:
    """sys.stdin/stdout/stderr for fds 0/1/2 as a fresh interpreter makes them (create_stdio in
    pylifecycle.c): the encoding and errors it chose at start (the same PYTHONIOENCODING and
    locale as the client's: the server is keyed on them), stdout line-buffered on a tty, stderr
    always line-buffered, write-through under -u (as the server's own streams were made)."""
    streams: list[Any] = []
    for fd, mode in ((0, "rb"), (1, "wb"), (2, "wb")):
        name = ("<stdin>", "<stdout>", "<stderr>")[fd]
        encoding, errors, unbuffered = template[name]
        raw = io.FileIO(fd, mode, closefd=False)
        buffered: Any
        if unbuffered and fd != 0:
            buffered = raw
        else:
            buffered = io.BufferedReader(raw) if fd == 0 else io.BufferedWriter(raw)
        tty = raw.isatty()
        text = io.TextIOWrapper(
            buffered, encoding=encoding, errors=errors, newline=None if fd == 0 else "\n",
            line_buffering=fd == 2 or (tty and not unbuffered and fd == 1) or (unbuffered and fd != 0),
            write_through=unbuffered and fd != 0,
        )  # fmt: skip
        text.mode = "r" if fd == 0 else "w"  # type: ignore[misc]
        streams.append(text)
    sys.stdin = sys.__stdin__ = streams[0]  # type: ignore[misc]
    sys.stdout = sys.__stdout__ = streams[1]  # type: ignore[misc]
    sys.stderr = sys.__stderr__ = streams[2]  # type: ignore[misc]


def setup(
    req: dict[str, Any], fds: list[int], server_pid: int, template: dict[str, tuple[str, str, bool]]
) -> None:
    """Raises on anything it cannot reproduce; nothing of the request has run yet."""
    import random
    import resource

    os.setpgid(0, 0)
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)  # the server's kill -9
    if os.getppid() != server_pid:
        raise RuntimeError("the server exited")
    _reset_signals([int(s) for s in req["ignored"]])
    cwd, stdin, stdout, stderr = fds
    for new, old in ((0, stdin), (1, stdout), (2, stderr)):
        os.dup2(old, new, inheritable=True)
    os.fchdir(cwd)
    for fd in set(fds):
        if fd > 2:
            os.close(fd)
    os.umask(int(req["umask"]))
    os.environ.clear()
    os.environ.update({str(k): str(v) for k, v in dict(req["env"]).items()})
    time.tzset()
    for num, (soft, hard) in dict(req["rlimits"]).items():
        if resource.getrlimit(num) != (soft, hard):
            resource.setrlimit(num, (soft, hard))
    os.setpriority(os.PRIO_PROCESS, 0, int(req["nice"]))
    os.sched_setaffinity(0, list(req["affinity"]))
    policy, priority = req["sched"]
    if (os.sched_getscheduler(0), os.sched_getparam(0).sched_priority) != (policy, priority):
        os.sched_setscheduler(0, int(policy), os.sched_param(int(priority)))
    _stdio(template)
    sys.argv = [str(a) for a in req["argv"]]
    random.seed()  # forked children would otherwise share the server's sequence
    platform = sys.modules.get("platform")
    if platform is not None and hasattr(platform, "_uname_cache"):
        platform._uname_cache = None  # type: ignore[attr-defined]  # filled at import by a preloaded module: hostname, release


def run(mask: list[int], ignored: list[int]) -> None:
    """The console script's main() and exit path (osptrack.entry.run); never returns.

    One difference from a direct run, on purpose: SIGTERM and SIGHUP (what the server sends when
    the client went away, what the kernel sends when the server dies, or forwarded) stop the run
    as Ctrl-C does, so its sandbox is cleaned up, and the child then dies of that signal as a
    direct run would have at once, leaving its sandbox behind."""
    from osptrack import entry

    stopped: list[int] = []

    def stop(sig: int, frame: object) -> None:
        if not stopped:
            stopped.append(sig)
            raise KeyboardInterrupt

    for sig in (signal.SIGTERM, signal.SIGHUP):
        if sig not in ignored:
            signal.signal(sig, stop)
    code = 1
    try:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        code = entry.call_main()
        if not stopped:
            entry.end(code)  # the fast exit; returns only when it cannot take it
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if not isinstance(exc.code, int | None):
            print(exc.code, file=sys.stderr)
    except KeyboardInterrupt:
        if not stopped:
            traceback.print_exc()
            stopped.append(signal.SIGINT)  # as CPython ends on an uncaught KeyboardInterrupt
    except BaseException:
        sys.excepthook(*sys.exc_info())
        code = 1
    _finish(code, stopped[0] if stopped else None)


def _finish(code: int, sig: int | None) -> None:
    """What the interpreter's exit does that is seen from outside (threads joined, atexit,
    flushed streams), without the teardown: this process is a fork of the server. Then exit
    with `code`, or die of `sig`."""
    import atexit
    import threading

    for sig_ in (signal.SIGTERM, signal.SIGHUP):
        with contextlib.suppress(OSError, ValueError):
            signal.signal(sig_, signal.SIG_IGN)  # a second one must not cut the exit short
    with contextlib.suppress(BaseException):
        shutdown = getattr(threading, "_shutdown", None)
        if shutdown is not None:
            shutdown()
    with contextlib.suppress(BaseException):
        run_exitfuncs = getattr(atexit, "_run_exitfuncs", None)
        if run_exitfuncs is not None:
            run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            code = code or 120  # as CPython when flushing stdout fails at exit
    if sig is not None:
        signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [sig])
        os.kill(os.getpid(), sig)
    os._exit(code & 0xFF)
