"""The resident analyze server: imports the analyzer once, then forks one child per request.

Single-threaded (it forks), one poll loop. Per request, over the connection:

    client -> {argv, env, umask, rlimits, nice, affinity, ignored, mask, key} + fds [cwd, 0, 1, 2]
    server -> {"refused": why} | {"stale": True}        the client runs the request itself
    server -> {"accepted": True}                         from here on the request is the server's
    client -> {"signal": N} ...                          SIGINT/SIGTERM/SIGHUP, sent on to the child
    server -> {"status": wait status}                    the child's, from waitpid

The child does its set-up (child.setup) before the server accepts, and waits on a pipe for the go:
a set-up that fails, or a client that left meanwhile, never starts the run. The server checks the
peer's uid (SO_PEERCRED) and namespaces, that the client's key is its own, and that its code is
unchanged (stamp.py) before every fork; stale code makes it answer "stale" and exit. If the
client goes away (EOF) the child gets SIGTERM and cleans up, as a direct run does on SIGTERM;
if the server dies, its children get SIGTERM from the kernel (parent-death signal).
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import os
import select
import signal
import socket
import struct
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from osptrack.server import child, protocol
from osptrack.server.stamp import stamp

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@dataclass
class Job:
    conn: socket.socket
    pid: int
    pidfd: int
    ready: int  # the child's set-up pipe (-1 once it has reported)
    go: int
    accepted: bool = False
    client_gone: bool = False
    fds: list[int] = field(default_factory=list)


class Server:
    def __init__(self, path: str, idle_s: float) -> None:
        self.path = path
        self.idle_s = idle_s
        self.key = protocol.key_material()
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        self.listener.setblocking(False)
        self.jobs: dict[int, Job] = {}  # by the fd poll reports: conn, pidfd and ready pipe
        self.code = stamp(protocol.package_dir())  # before the preload: an edit during it shows
        self.stopping = False
        self.last_activity = time.monotonic()
        self.template = {
            name: (stream.encoding, stream.errors or "strict", bool(getattr(stream, "write_through", False)))
            for name, stream in (("<stdin>", sys.stdin), ("<stdout>", sys.stdout), ("<stderr>", sys.stderr))
        }
        self.inode = 0

    def bind(self) -> bool:
        """Listen on the path unless another server already does (one starter at a time)."""
        with open(os.path.join(os.path.dirname(self.path), "analyze.lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            probe = protocol.new_socket()
            try:
                probe.connect(self.path)
                return False  # a live server: this one is not needed
            except OSError:
                pass
            finally:
                probe.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
            old = os.umask(0o077)
            try:
                self.listener.bind(self.path)
            finally:
                os.umask(old)
            os.chmod(self.path, 0o600)
            self.inode = os.stat(self.path).st_ino
            self.listener.listen(64)
            with open(self.path[: -len(".sock")] + ".pid", "w") as f:
                f.write(f"{os.getpid()}\n")
        return True

    def unlink(self) -> None:
        """Remove the socket if it is still this server's (a successor may have bound it)."""
        with contextlib.suppress(OSError):
            if os.stat(self.path).st_ino == self.inode:
                os.unlink(self.path)
                os.unlink(self.path[: -len(".sock")] + ".pid")

    def serve(self) -> None:
        poller = select.poll()
        poller.register(self.listener.fileno(), select.POLLIN)
        while not (self.stopping and not self.jobs):
            timeout = None
            if not self.jobs:
                timeout = max(0.0, self.idle_s - (time.monotonic() - self.last_activity))
                if timeout == 0:
                    break
            events = [fd for fd, _ in poller.poll(None if timeout is None else int(timeout * 1000) + 1)]
            for fd in events:  # the jobs' first: an accept may reuse the numbers of fds they close
                if fd != self.listener.fileno() and fd in self.jobs:
                    self.step(poller, fd)
            if self.stopping and self.listener.fileno() >= 0:
                # Stale: no new requests (those already queued read EOF and run direct).
                poller.unregister(self.listener.fileno())
                self.listener.close()
            elif self.listener.fileno() in events:
                self.accept(poller)
            if self.jobs:
                self.last_activity = time.monotonic()
        self.unlink()

    def accept(self, poller: select.poll) -> None:
        try:
            conn_obj, _ = self.listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        try:
            self.start(poller, conn_obj)
        except Exception as exc:  # one bad request must not take the server down
            with contextlib.suppress(OSError):
                protocol.send(conn_obj, {"refused": f"server error: {exc}"})
            conn_obj.close()

    def start(self, poller: select.poll, conn: socket.socket) -> None:
        conn.setblocking(True)
        conn.settimeout(10.0)
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        peer_pid, peer_uid, _ = struct.unpack("3i", creds)
        if peer_uid != os.geteuid():
            protocol.send(conn, {"refused": "not the server's user"})
            conn.close()
            return
        req, fds = protocol.recv(conn)
        if req is None:
            conn.close()
            return
        why = self.refusal(req, fds, peer_pid)
        if why is not None:
            for fd in fds:
                os.close(fd)
            if why == "stale":
                self.stopping = True  # no new requests; exit once the running ones are done
                self.unlink()
                protocol.send(conn, {"stale": True})
            else:
                protocol.send(conn, {"refused": why})
            conn.close()
            return
        conn.settimeout(None)
        self.fork(poller, conn, req, fds)

    def refusal(self, req: dict[str, Any], fds: list[int], peer_pid: int) -> str | None:
        if len(fds) != 4:
            return "bad request"
        if req.get("key") != self.key:
            return "not this server's interpreter or source tree"
        if protocol.namespaces(str(peer_pid)) != self.key["ns"]:
            return "another namespace"
        if stamp(protocol.package_dir()) != self.code:
            return "stale"
        return None

    def fork(self, poller: select.poll, conn: socket.socket, req: dict[str, Any], fds: list[int]) -> None:
        assert threading.active_count() == 1, "the server forks: it must stay single-threaded"
        ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
        go_r, go_w = os.pipe2(os.O_CLOEXEC)
        me = os.getpid()
        pid = os.fork()
        if pid == 0:
            self.in_child(req, fds, me, conn, (ready_r, go_w), ready_w, go_r)
        for fd in (*fds, ready_w, go_r):
            os.close(fd)
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            os.close(go_w)  # the child reads EOF and exits before running anything
            os.close(ready_r)
            os.waitpid(pid, 0)
            raise
        job = Job(conn=conn, pid=pid, pidfd=pidfd, ready=ready_r, go=go_w)
        for fd in (conn.fileno(), job.pidfd, ready_r):
            self.jobs[fd] = job
            poller.register(fd, select.POLLIN)

    def in_child(
        self, req: dict[str, Any], fds: list[int], server: int, conn: socket.socket,
        server_ends: tuple[int, int], ready_w: int, go_r: int,
    ) -> None:  # fmt: skip
        try:
            self.listener.close()
            conn.close()
            held = {
                fd for job in self.jobs.values() for fd in (job.conn.fileno(), job.pidfd, job.ready, job.go)
            }
            for fd in held | set(server_ends):
                with contextlib.suppress(OSError):
                    os.close(fd)
            child.setup(req, fds, server, self.template)
            os.write(ready_w, b"r")
            os.close(ready_w)
            if os.read(go_r, 1) != b"g":
                os._exit(0)  # not accepted: nothing ran
            os.close(go_r)
        except BaseException as exc:
            with contextlib.suppress(BaseException):
                os.write(ready_w, f"e{type(exc).__name__}: {exc}".encode()[:200])
            os._exit(0)
        child.run([int(s) for s in req["mask"]], [int(s) for s in req["ignored"]])

    def step(self, poller: select.poll, fd: int) -> None:
        job = self.jobs[fd]
        if fd == job.ready:
            answer = os.read(fd, 256)
            self.forget(poller, job, fd)
            os.close(fd)
            job.ready = -1
            if answer == b"r" and not job.client_gone:
                try:
                    protocol.send(job.conn, {"accepted": True})
                    job.accepted = True
                    os.write(job.go, b"g")
                except OSError:
                    pass  # the client left: the child reads EOF and exits without running
            elif not job.client_gone:
                why = answer[1:].decode(errors="replace") or "the child exited during set-up"
                with contextlib.suppress(OSError):
                    protocol.send(job.conn, {"refused": f"set-up failed: {why}"})
            os.close(job.go)
            job.go = -1
        elif fd == job.pidfd:
            _, status = os.waitpid(job.pid, 0)
            if job.accepted and not job.client_gone:
                with contextlib.suppress(OSError):
                    protocol.send(job.conn, {"status": status})
            for other in [k for k, v in self.jobs.items() if v is job]:
                self.forget(poller, job, other)
            os.close(job.pidfd)
            if job.ready >= 0:
                os.close(job.ready)
            if job.go >= 0:
                os.close(job.go)
            job.conn.close()
        else:  # the connection: a signal to pass on, or the client's end
            try:
                message, extra = protocol.recv(job.conn)
            except OSError:
                message, extra = None, []
            for x in extra:
                os.close(x)
            if message is None:
                job.client_gone = True
                self.forget(poller, job, fd)
                if job.accepted:  # as a closed terminal: the run stops and cleans up
                    with contextlib.suppress(OSError):
                        signal.pidfd_send_signal(job.pidfd, signal.SIGTERM)
            elif job.accepted and message.get("signal") in FORWARDED:
                with contextlib.suppress(OSError):
                    signal.pidfd_send_signal(job.pidfd, int(str(message["signal"])))

    def forget(self, poller: select.poll, job: Job, fd: int) -> None:
        if self.jobs.get(fd) is job:
            del self.jobs[fd]
            poller.unregister(fd)


def preload() -> None:
    """The modules `osptrack analyze` imports, and nothing else: caches that depend on the
    environment or the machine's state are filled by each child, as a direct run fills them."""
    import osptrack.cli  # noqa: F401
    import osptrack.cli.analyze  # noqa: F401
    import osptrack.run

    osptrack.run.preload()  # what a direct run imports only once its first phase runs


def start_lock(path: str) -> int | None:
    """The starter's lock for `path` (held from start to listening), or None if another holds it."""
    fd = os.open(path[: -len(".sock")] + ".start", os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    for _ in range(5):  # a client's probe (client._starting) holds it for microseconds
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except OSError:
            time.sleep(0.02)
    os.close(fd)
    return None


def main(path: str, idle_s: float) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    lock = start_lock(path)
    if lock is None:
        return  # another server for this key is starting
    server = Server(path, idle_s)
    # Preload first, at idle CPU priority, and only then listen: the run that spawned this
    # server (and any that start meanwhile) run direct at full speed, and none waits on a
    # server that is still importing.
    policy, param = os.sched_getscheduler(0), os.sched_getparam(0)
    with contextlib.suppress(OSError):
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    try:
        preload()
    except Exception as exc:
        print(f"osptrack analyze server: preload failed: {exc}", file=sys.stderr)
    finally:
        with contextlib.suppress(OSError):
            os.sched_setscheduler(0, policy, param)
    # The preloaded objects go to the collector's permanent generation: the children's
    # collections then neither scan them nor touch their pages (each touch a copy-on-write fault).
    gc.collect()
    gc.freeze()
    if not server.bind():
        return

    def stop(sig: int, frame: object) -> None:
        server.unlink()
        os._exit(0)  # the children get SIGTERM from their parent-death signal

    signal.signal(signal.SIGTERM, stop)
    os.close(lock)
    print(f"osptrack analyze server {os.getpid()} listening on {path}", file=sys.stderr, flush=True)
    try:
        server.serve()
    finally:
        server.unlink()
