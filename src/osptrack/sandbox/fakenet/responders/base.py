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

PARSE_WINDOW = 64 * 1024  # bytes of each flow kept for parsing and the token scan


class Capture:
    """What one TCP client sent: the first PARSE_WINDOW bytes and the total count."""

    def __init__(self, t: float) -> None:
        self.t = t
        self.buf = bytearray()
        self.total = 0

    def feed(self, chunk: bytes) -> None:
        self.total += len(chunk)
        if len(self.buf) < PARSE_WINDOW:
            self.buf += chunk[: PARSE_WINDOW - len(self.buf)]


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
