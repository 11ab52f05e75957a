"""Online mode: an allowlisting HTTP CONNECT proxy that runs on the host, outside the sandbox.

The sandbox's namespace has no route out. Its clients are told to use `FakeNetwork.proxy_url`
(http://198.18.0.80:3128); the fake network relays those connections, byte for byte, to this
proxy's pathname unix socket (pathname sockets are reached through the file system, not the
network namespace, so the relay works across namespaces without opening any port). The socket
lives in a fresh 0700 directory that the sandbox never has mounted.

Policy: only `CONNECT host:port` where `host` is exactly one of the allowed registry host names
(case-insensitive, no wildcards, no IP literals) and `port` is in `allowed_ports` (443) is
tunnelled. Everything else -- other hosts, plain `GET http://...` requests, malformed heads --
gets `403` and is closed; the decision is logged in `decisions`. The proxy resolves names with the
host's resolver, so the sandbox never learns or picks the upstream address.

One proxy can serve several FakeNetworks (pass `FakeNetwork(proxy_socket=proxy.unix_path)`), e.g.
a single proxy for a whole batch.
"""

from __future__ import annotations

import contextlib
import re
import selectors
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_REGISTRIES = ("pypi.org", "files.pythonhosted.org", "registry.npmjs.org")

_CONNECT = re.compile(rb"^CONNECT ([A-Za-z0-9.-]{1,253}):(\d{1,5}) HTTP/1\.[01]\r?\n")
_MAX_HEAD = 16 * 1024

Connector = Callable[[str, int], socket.socket]


@dataclass(frozen=True)
class ProxyDecision:
    t: float
    request: str  # the request line as received (truncated), for the log
    host: str | None
    port: int | None
    allowed: bool
    reason: str


def default_connector(host: str, port: int) -> socket.socket:
    return socket.create_connection((host, port), timeout=15)


class AllowlistProxy:
    """Threaded CONNECT proxy on a unix socket (and optionally a loopback TCP port)."""

    def __init__(
        self,
        allowed_hosts: Iterable[str] = DEFAULT_REGISTRIES,
        *,
        allowed_ports: Iterable[int] = (443,),
        connector: Connector = default_connector,
        upstream_overrides: Mapping[str, tuple[str, int]] | None = None,
        idle_timeout: float = 120.0,
    ) -> None:
        self.allowed_hosts = frozenset(h.strip().lower().rstrip(".") for h in allowed_hosts if h.strip())
        self.allowed_ports = frozenset(allowed_ports)
        self._connector = connector
        # Tests point a registry name at a loopback stub; never used to widen the allowlist.
        self._overrides = {k.lower(): v for k, v in (upstream_overrides or {}).items()}
        self.idle_timeout = idle_timeout
        self.decisions: list[ProxyDecision] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._dir: Path | None = None
        self._server: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._handlers: set[threading.Thread] = set()
        self._conns: set[socket.socket] = set()

    @property
    def unix_path(self) -> Path:
        if self._dir is None:
            raise RuntimeError("proxy is not started")
        return self._dir / "proxy.sock"

    def check(self, host: str | None, port: int | None) -> tuple[bool, str]:
        """The allowlist decision for one CONNECT target."""
        if host is None or port is None:
            return False, "not a CONNECT request"
        if host.lower().rstrip(".") not in self.allowed_hosts:
            return False, f"host {host} not in allowlist"
        if port not in self.allowed_ports:
            return False, f"port {port} not allowed"
        return True, "allowlisted registry"

    def start(self) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="osptrack-proxy-"))  # mode 0700
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(str(self.unix_path))
        server.listen(64)
        server.settimeout(0.2)
        self._server = server
        self._thread = threading.Thread(target=self._accept_loop, name="osptrack-proxy", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(10)
        for thread in list(self._handlers):
            thread.join(10)
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> AllowlistProxy:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept_loop(self) -> None:
        assert self._server is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(
                target=self._handle, args=(conn,), name="osptrack-proxy-conn", daemon=True
            )
            self._handlers = {h for h in self._handlers if h.is_alive()}
            self._handlers.add(thread)
            thread.start()

    def _track(self, sock: socket.socket, add: bool) -> None:
        with self._lock:
            (self._conns.add if add else self._conns.discard)(sock)

    def _handle(self, client: socket.socket) -> None:
        self._track(client, True)
        upstream: socket.socket | None = None
        try:
            head, rest = _read_head(client, 10.0)
            m = _CONNECT.match(head)
            host, port = (m.group(1).decode(), int(m.group(2))) if m else (None, None)
            allowed, reason = self.check(host, port)
            if allowed:
                assert host is not None and port is not None
                try:
                    target = self._overrides.get(host.lower().rstrip("."), (host, port))
                    upstream = self._connector(*target)
                except OSError as exc:
                    allowed, reason = False, f"upstream connect failed: {exc.strerror or exc}"
            line = head.split(b"\n", 1)[0][:300].decode("latin-1").rstrip("\r")
            with self._lock:
                self.decisions.append(ProxyDecision(time.time(), line, host, port, allowed, reason))
            if not allowed or upstream is None:
                status = b"403 Forbidden" if "upstream" not in reason else b"502 Bad Gateway"
                client.sendall(b"HTTP/1.1 " + status + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                return
            self._track(upstream, True)
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            if rest:
                upstream.sendall(rest)
            relay(client, upstream, self._stop, self.idle_timeout)
        except OSError:
            pass
        finally:
            if upstream is not None:
                self._track(upstream, False)
                upstream.close()
            self._track(client, False)
            client.close()


def _read_head(sock: socket.socket, timeout: float) -> tuple[bytes, bytes]:
    """Read up to the blank line ending the request head; returns (head, bytes after it)."""
    sock.settimeout(timeout)
    buf = b""
    while b"\r\n\r\n" not in buf and len(buf) < _MAX_HEAD:
        chunk = sock.recv(4096)
        if not chunk:
            break
        buf += chunk
    head, sep, rest = buf.partition(b"\r\n\r\n")
    return head + sep, rest


def relay(
    a: socket.socket,
    b: socket.socket,
    stop: threading.Event,
    idle_timeout: float,
    on_a_data: Callable[[bytes], None] | None = None,
) -> None:
    """Copy both ways until both directions ended, `stop` is set or nothing moved for `idle_timeout`.

    `on_a_data` sees every chunk read from `a` (the fake network uses it to capture the head).
    """
    for s in (a, b):
        s.setblocking(False)
    selector = selectors.DefaultSelector()
    selector.register(a, selectors.EVENT_READ, b)
    selector.register(b, selectors.EVENT_READ, a)
    open_ends = 2
    last = time.time()
    try:
        while open_ends and not stop.is_set() and time.time() - last < idle_timeout:
            for key, _ in selector.select(0.2):
                src: socket.socket = key.fileobj  # type: ignore[assignment]
                dst: socket.socket = key.data
                try:
                    chunk = src.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    chunk = b""
                last = time.time()
                if not chunk:
                    selector.unregister(src)
                    open_ends -= 1
                    with contextlib.suppress(OSError):
                        dst.shutdown(socket.SHUT_WR)
                    continue
                if on_a_data is not None and src is a:
                    on_a_data(chunk)
                # A bounded blocking send: a peer that stops reading cannot wedge the relay forever.
                dst.settimeout(idle_timeout)
                try:
                    dst.sendall(chunk)
                finally:
                    dst.setblocking(False)
    finally:
        selector.close()
