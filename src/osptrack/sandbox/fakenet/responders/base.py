"""The responder interface: what a TCP service of the fake network gets, and how it is chosen.

A `Responder` plays one kind of server on an accepted connection (`serve(flow)`). The core picks
it from an ordered list of `Route`s, matched on the connection's original destination (address
and/or port, as tproxy keeps them); the first match wins, and the catch-all (`SniffResponder`,
which looks at the first bytes) takes everything no route claims. To serve something on a fixed
fake-network address -- e.g. the package registries -- add a route ahead of the defaults::

    FakeNetwork(run_id, routes=[Route(RegistryResponder(...), address="198.18.0.81", ports={443})])

Recording is the core's job: a responder feeds what the client sent into `flow.cap` (through
`flow.incoming()` or `flow.cap.feed`) and may put extra record fields into `flow.fields`; the core
writes one `tcp` record per flow when `serve` returns (or raises), unless `flow.record` is False.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

PARSE_WINDOW = 64 * 1024  # bytes a line-oriented responder (SMTP) keeps pending at most
MAX_CAPTURE = 1 << 20  # default bytes kept per flow (AnalyzeOptions.capture_bytes)
CAPTURE_BUDGET = 256 << 20  # bytes kept over all flows of a run: a flood of big flows stays bounded


class CaptureBudget:
    """Bytes left to keep over all flows of one network (thread-safe)."""

    def __init__(self, total: int = CAPTURE_BUDGET) -> None:
        self.left = total
        self._lock = threading.Lock()

    def take(self, want: int) -> int:
        with self._lock:
            granted = min(want, self.left)
            self.left -= granted
            return granted


class Capture:
    """What one TCP client sent: the first `limit` bytes (as the budget allows) and the total count.

    For an intercepted TLS flow this is the decrypted stream. `extra` holds decoded views the
    responder made (de-chunked HTTP bodies, WebSocket messages) that the token scan also reads.
    """

    def __init__(self, t: float, limit: int = MAX_CAPTURE, budget: CaptureBudget | None = None) -> None:
        self.t = t
        self.limit = limit
        self.budget = budget
        self.buf = bytearray()
        self.total = 0
        self.extra: list[bytes] = []
        self._extra_bytes = 0

    @property
    def truncated(self) -> bool:
        return self.total > len(self.buf)

    def _grant(self, want: int) -> int:
        return want if self.budget is None or want <= 0 else self.budget.take(want)

    def feed(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self._grant(min(len(chunk), self.limit - len(self.buf)))
        if room > 0:
            self.buf += chunk[:room]

    def keep(self, data: bytes, scan: bool = True) -> bytes:
        """Keep a decoded view within the same per-flow limit; returns what was kept. `scan`:
        also hand it to the token scan (not needed when the raw stream already holds it verbatim,
        e.g. a Content-Length body: scanning it twice would double the scan's work)."""
        room = self._grant(min(len(data), self.limit - self._extra_bytes))
        kept = data[: max(room, 0)]
        if kept:
            self._extra_bytes += len(kept)
            if scan:
                self.extra.append(kept)
        return kept


class NetworkContext(Protocol):
    """The parts of the fake network a responder may use."""

    idle_timeout: float
    max_connection_s: float

    @property
    def stop(self) -> threading.Event:
        """Set when the network is closing: responders end their conversation."""

    def track(self, sock: socket.socket) -> None:
        """Shut `sock` down when the network closes (for sockets a responder opens itself)."""

    def untrack(self, sock: socket.socket) -> None: ...


@dataclass
class Flow:
    """One accepted TCP connection, as a responder sees it."""

    conn: socket.socket
    dst: str
    dst_port: int
    t: float
    phase: str | None
    net: NetworkContext
    cap: Capture
    record: bool = True  # False: the responder logged the flow itself (DNS over TCP)
    raw: socket.socket | None = None  # the accepted socket when `conn` is a TLS layer over it
    depth: int = 0  # times the sniffer has served this flow (CONNECT tunnels nest)
    fields: dict[str, Any] = field(default_factory=dict)  # extra keys for the tcp record

    @property
    def deadline(self) -> float:
        return self.t + self.net.max_connection_s

    def live(self) -> bool:
        return time.time() < self.deadline and not self.net.stop.is_set()

    def incoming(self) -> Iterator[bytes]:
        """Chunks the client sends (each already captured) until it goes quiet, closes, or the
        connection's time is up."""
        self.conn.settimeout(self.net.idle_timeout)
        while self.live():
            try:
                chunk = self.conn.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            self.cap.feed(chunk)
            yield chunk


class Responder(Protocol):
    """One kind of server. `serve` returns when the conversation is over; the core closes the socket."""

    name: str

    def serve(self, flow: Flow) -> None: ...


@dataclass(frozen=True)
class Route:
    """Send connections to `address` (any if None) and a port in `ports` (any if None) to `responder`."""

    responder: Responder
    address: str | None = None
    ports: frozenset[int] | None = None

    def __post_init__(self) -> None:
        # Compare as the core does: normalised addresses, a frozenset of ports (a set is accepted).
        if self.address is not None:
            object.__setattr__(self, "address", str(ipaddress.ip_address(self.address)))
        if self.ports is not None:
            object.__setattr__(self, "ports", frozenset(self.ports))

    def matches(self, dst: str, dst_port: int) -> bool:
        return (self.address is None or self.address == dst) and (
            self.ports is None or dst_port in self.ports
        )
