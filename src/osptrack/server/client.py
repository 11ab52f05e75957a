"""The console script's side: hand `osptrack analyze` to a warm server, or say to run direct.

Stdlib C modules only (see protocol.py): this runs before osptrack's own imports, and its whole
point is to cost less than they do. `serve()` returns None whenever the server has not accepted
the request (nothing answers, not root, a stale server...), and the caller then runs it in this
process as before; once the server has accepted, the request is the server's and is never run a
second time here.
"""

from __future__ import annotations

import _signal
import os
import sys

from osptrack.server import protocol

OFF_ENV = "OSPTRACK_SERVER"  # "0": always run direct
IDLE_ENV = "OSPTRACK_SERVER_IDLE_EXIT"  # seconds a spawned server waits for work (default 600)
NOTE_ENV = "OSPTRACK_SERVER_NOTE"  # a file: one line per run saying how it ran (tests, benchmarks)
ACCEPT_TIMEOUT_S = 30.0  # a server that does not accept in this time is given up (run direct)
FORWARDED = (_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP)


def _note(what: str) -> None:
    path = os.environ.get(NOTE_ENV)
    if path:
        try:  # noqa: SIM105 - as below
            with open(path, "a") as f:
                f.write(what + "\n")
        except OSError:
            pass


def _ignored_signals() -> list[int]:
    """Signals this process inherited ignored (nohup, `cmd &` in a script): a fresh interpreter
    keeps them ignored, so the child must too."""
    out = []
    for sig in _signal.valid_signals():
        try:
            if _signal.getsignal(sig) == _signal.SIG_IGN:
                out.append(int(sig))
        except (OSError, ValueError):
            continue
    return out


def _rlimits() -> dict[int, tuple[int, int]]:
    import resource

    out = {}
    for name in dir(resource):
        if name.startswith("RLIMIT_"):
            num = getattr(resource, name)
            try:
                out[num] = resource.getrlimit(num)
            except (OSError, ValueError):
                continue
    return out


def request(argv: list[str], key: dict[str, object], ignored: list[int]) -> dict[str, object]:
    umask = os.umask(0o22)
    os.umask(umask)
    return {
        "argv": list(argv),
        "env": dict(os.environ),
        "umask": umask,
        "rlimits": _rlimits(),
        "nice": os.getpriority(os.PRIO_PROCESS, 0),
        "affinity": sorted(os.sched_getaffinity(0)),
        "sched": (os.sched_getscheduler(0), os.sched_getparam(0).sched_priority),
        "ignored": ignored,
        "mask": sorted(int(s) for s in _signal.pthread_sigmask(_signal.SIG_BLOCK, [])),
        "key": key,
    }


def serve(argv: list[str]) -> int | None:
    """The wait status of the run the server did for `argv`, or None: run it here."""
    if os.environ.get(OFF_ENV) == "0":
        _note("direct: OSPTRACK_SERVER=0")
        return None
    if os.geteuid() != 0:
        _note("direct: not root")
        return None  # the server is root's only (it runs sandboxes): nothing to talk to
    try:
        key = protocol.key_material()
        path = protocol.socket_path(key)
    except (OSError, ValueError) as exc:
        _note(f"direct: {exc}")
        return None
    sock = protocol.new_socket()
    try:
        try:
            sock.connect(path)
        except OSError:
            _note("direct: started a server" if spawn(path) else "direct: a server is starting")
            return None
        ignored = _ignored_signals()
        relay = _Relay(sock, ignored)  # from before the request: a Ctrl-C just after acceptance
        reply = _hand_over(sock, argv, key, ignored)
        if reply is None or reply.get("accepted") is not True:
            relay.give_back()  # and a signal caught meanwhile goes to this process, as direct
            reason = (
                "no answer" if reply is None else str(reply.get("refused") or reply.get("stale") and "stale")
            )
            if reply is not None and reply.get("stale"):
                spawn(path)  # the stale one has gone: the next run gets fresh code
            _note(f"direct: {reason}")
            return None
        _note("served")
        relay.accepted()
        return _follow(sock)
    finally:
        sock.close()


def _hand_over(
    sock: object, argv: list[str], key: dict[str, object], ignored: list[int]
) -> dict[str, object] | None:
    """Send the request; the server's first answer, or None if there was none."""
    cwd = -1
    try:
        cwd = os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        for fd in (0, 1, 2):
            os.fstat(fd)  # a closed standard fd: a direct run handles that as it does today
        sock.settimeout(ACCEPT_TIMEOUT_S)  # type: ignore[attr-defined]
        protocol.send(sock, request(argv, key, ignored), (cwd, 0, 1, 2))  # type: ignore[arg-type]
        reply, fds = protocol.recv(sock)  # type: ignore[arg-type]
        for fd in fds:
            os.close(fd)
        sock.settimeout(None)  # type: ignore[attr-defined]
        return reply
    except OSError:
        return None
    finally:
        if cwd >= 0:
            os.close(cwd)


class _Relay:
    """SIGINT, SIGTERM and SIGHUP (those not ignored) sent over the socket once the server has
    accepted; caught before that, kept, and sent or given back to this process."""

    def __init__(self, sock: object, ignored: list[int]) -> None:
        self.sock = sock
        self.pending: list[int] = []
        self.is_accepted = False
        self.previous = {}
        for sig in FORWARDED:
            if sig not in ignored:  # ignored here, so ignored by the child too: nothing to forward
                self.previous[sig] = _signal.signal(sig, self.handle)

    def handle(self, sig: int, frame: object) -> None:
        if self.is_accepted:
            self.send(sig)
        else:
            self.pending.append(sig)

    def send(self, sig: int) -> None:
        try:  # noqa: SIM105 - contextlib costs the client ~5 ms of imports
            protocol.send(self.sock, {"signal": int(sig)})  # type: ignore[arg-type]
        except OSError:
            pass

    def accepted(self) -> None:
        self.is_accepted = True
        for sig in self.pending:
            self.send(sig)

    def give_back(self) -> None:
        for sig, handler in self.previous.items():
            _signal.signal(sig, handler)
        for sig in self.pending:
            os.kill(os.getpid(), sig)


def _follow(sock: object) -> int:
    """After acceptance: wait for the exit status (signals go through _Relay). A server gone
    before it sent one is reported on one line, and the run counts as failed (70, EX_SOFTWARE)."""
    while True:
        try:
            message, fds = protocol.recv(sock)  # type: ignore[arg-type]
        except OSError:
            message, fds = None, []
        for fd in fds:
            os.close(fd)
        if message is None:
            sys.stderr.write("osptrack: error: the analyze server exited before the run finished\n")
            return 70 << 8
        if "status" in message:
            status = message["status"]
            return status if isinstance(status, int) else 70 << 8


def spawn(path: str) -> bool:
    """Start a server for `path`, detached (own session, stdio to a log beside the socket), and
    do not wait for it: it preloads, then binds the socket itself. False when none was started
    (one is starting already, or the folder is unusable): the run stays direct, as it is."""
    folder = os.path.dirname(path)
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        st = os.lstat(folder)
        if st.st_uid != 0 or (st.st_mode & 0o170000) != 0o040000:
            return False  # someone else's folder, or a symlink: no root socket there
        os.chmod(folder, 0o700)  # root's only, as the eBPF tracer's
        if _starting(path):
            return False  # still preloading: one starter is enough
    except OSError:
        return False
    import subprocess  # only here: the spawn path is once per idle period

    idle = os.environ.get(IDLE_ENV) or str(protocol.IDLE_EXIT_S)
    boot = "import sys; sys.path[:] = sys.argv[3:]; from osptrack.server.daemon import main; main(sys.argv[1], float(sys.argv[2]))"
    argv = [sys.executable, *subprocess._args_from_interpreter_flags(), "-c", boot, path, idle, *sys.path]  # type: ignore[attr-defined]
    log = path[: -len(".sock")] + ".log"
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the intermediate process
        try:
            os.setsid()
            if os.fork() == 0:
                null = os.open(os.devnull, os.O_RDONLY)
                out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                os.dup2(null, 0)
                os.dup2(out, 1)
                os.dup2(out, 2)
                os.chdir("/")
                os.umask(0o077)
                os.closerange(3, 1 << 16)
                os.execv(sys.executable, argv)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    return True


def _starting(path: str) -> bool:
    """Whether a server for `path` holds its start lock (daemon.start_lock) right now."""
    import fcntl

    fd = os.open(path[: -len(".sock")] + ".start", os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # releases it at once
    return False
