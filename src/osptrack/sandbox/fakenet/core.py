"""The fake network's core: the namespace, the listeners, dispatch to responders, and the records.

See the package docstring (`osptrack.sandbox.fakenet`) for what the sandbox sees. Threads: one
dispatcher thread joins the namespace (setns), binds the listeners there and serves DNS/UDP
inline; each TCP connection gets a short-lived handler thread that runs the responder its route
picks. Threads created by the dispatcher inherit its namespace, so nothing else in the osptrack
process changes namespace.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import ipaddress
import os
import select
import selectors
import socket
import struct
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from osptrack.sandbox.fakenet.ca import CertAuthority
from osptrack.sandbox.fakenet.protocols import parse_http_request, parse_tls_sni
from osptrack.sandbox.fakenet.responders.base import (
    CAPTURE_BUDGET,
    MAX_CAPTURE,
    Capture,
    CaptureBudget,
    Flow,
    Responder,
    Route,
)
from osptrack.sandbox.fakenet.responders.dns import DnsResponder
from osptrack.sandbox.fakenet.responders.smtp import SMTP_PORTS, SmtpResponder
from osptrack.sandbox.fakenet.sinkholes import Sinkholes
from osptrack.sandbox.fakenet.stages import new_marker
from osptrack.sandbox.netns import (
    DNS_PORT,
    TCP_CATCHALL_PORT,
    UDP_CATCHALL_PORT,
    Eth0,
    NetNamespace,
    setns_fd,
)

if TYPE_CHECKING:
    from osptrack.sandbox.exfil import Scanner

FIRST_BYTES = 4096

RESOLVER_ADDRESS = "198.18.0.53"

# Linux constants that the socket module does not export.
IP_TRANSPARENT = 19
IP_RECVORIGDSTADDR = 20
IPV6_RECVORIGDSTADDR = 74
IPV6_TRANSPARENT = 75

# The dispatcher's select() blocks until a listener or close()'s wake-up pipe is readable: a
# timeout of IDLE_ROUND_S woke it 100 times a second for nothing, about 10 ms of CPU per second of
# every run beside the package (docs/performance.md, "Batch: where a worker's CPU goes").
# benchmarks/strace_levers.py's replay of the old settle, which counts idle rounds, sets it back.
DISPATCH_TIMEOUT_S: float | None = None
IDLE_ROUND_S = 0.01  # the select timeout before that
SETTLE_POLL_S = 0.001  # settle() re-checks this often while traffic is still in flight
RECORDING_WAIT_S = 120.0  # settle() waits this long at most for flows still being scanned


def _parse_origdst(ancdata: list[tuple[int, int, bytes]]) -> tuple[str, int] | None:
    for level, kind, data in ancdata:
        if level == socket.IPPROTO_IP and kind == IP_RECVORIGDSTADDR and len(data) >= 8:
            return socket.inet_ntop(socket.AF_INET, data[4:8]), struct.unpack("!H", data[2:4])[0]
        if level == socket.IPPROTO_IPV6 and kind == IPV6_RECVORIGDSTADDR and len(data) >= 24:
            return socket.inet_ntop(socket.AF_INET6, data[8:24]), struct.unpack("!H", data[2:4])[0]
    return None


def _b64(data: bytes) -> str:
    return base64.b64encode(data[:FIRST_BYTES]).decode()


def _norm_ip(ip: str) -> str:
    return str(ipaddress.ip_address(ip.split("%", 1)[0]))


@dataclass(frozen=True)
class _Listener:
    sock: socket.socket
    role: str  # "tcp", "udp", "dns-udp", "dns-tcp"


class FakeNetwork:
    """Network namespace + fake services for one run. Use as a context manager."""

    def __init__(
        self,
        run_id: str,
        *,
        idle_timeout: float = 1.5,
        max_connection_s: float = 10.0,
        max_records: int = 10_000,  # x ~6 KB each: a connect loop stays near 60 MB
        max_connections: int = 256,
        tokens: Mapping[str, str] | None = None,
        routes: Sequence[Route] = (),
        intercept_tls: bool = True,
        capture_bytes: int = MAX_CAPTURE,
        capture_budget: int = CAPTURE_BUDGET,
        eth0: Eth0 | None = None,
        static_names: Mapping[str, str] | None = None,
    ) -> None:
        self.netns = NetNamespace(run_id, eth0=eth0)
        self.idle_timeout = idle_timeout
        self.max_connection_s = max_connection_s
        self.max_records = max_records
        self.max_connections = max_connections
        self._tokens = dict(tokens) if tokens else None
        self._scanner_made: Scanner | None = None  # made with the first record (see _scanner)
        self._scanner_lock = threading.Lock()
        self._findings: list[dict[str, Any]] = []
        self.errors = 0  # packets/connections whose handling failed (they are still counted here)
        self.error_reasons: collections.Counter[str] = collections.Counter()  # why, where known
        self.dropped = 0  # records not kept because max_records was reached (a flood)
        self.resolver_address = RESOLVER_ADDRESS
        self.sinkholes = Sinkholes(static_names)
        # TCP dispatch: `routes` (first match wins) are tried before the built-in one that
        # start() appends (SMTP ports); the sniffer takes everything else.
        self.routes: list[Route] = list(routes)
        self._dns = DnsResponder(self.sinkholes, self._add)
        # The machine's CA (ca.py): its keys never leave this process; sandbox/trust.py puts
        # `ca.cert_pem` into the sandbox's trust stores. Services on routes may mint from it too
        # (ca.server_context).
        self.ca: CertAuthority | None = CertAuthority.for_machine() if intercept_tls else None
        self.marker = new_marker()  # what served second stages write: run.py looks for it in events
        self.capture_bytes = capture_bytes
        self._budget = CaptureBudget(capture_budget)
        self._catchall_responder: Responder | None = None  # the sniffer: made with the first connection
        self._catchall_lock = threading.Lock()
        self._phase: str | None = None
        self._records: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake: tuple[int, int] | None = None  # close() writes to [1]; the dispatcher selects [0]
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self._dispatcher: threading.Thread | None = None
        self._handlers: set[threading.Thread] = set()
        self._open_conns: set[socket.socket] = set()
        self._netns_fd: int | None = None
        self._listen_socks: tuple[socket.socket, ...] = ()
        self._dispatching = False  # the dispatcher is handling a round's events
        self._handled = 0  # rounds with events handled so far (settle() checks it did not move)
        self._idle_rounds = 0
        self._recording = 0  # handlers whose connection ended and that are scanning/recording it

    # ------------------------------------------------------------------ public API

    @property
    def netns_name(self) -> str:
        return self.netns.name

    @property
    def netns_path(self) -> Path:
        return self.netns.path

    def add_routes(self, routes: Sequence[Route]) -> None:
        """Routes known only once the network is starting (the run's registry service, made once
        its target is resolved): tried first, before the built-in ones, as `routes=` would be.
        Only before the first connection: the sandbox's first phase has not started yet."""
        self.routes[:0] = list(routes)

    def set_phase(self, phase: str | None) -> None:
        self._phase = phase

    def records(self, settle: bool = True) -> list[dict[str, Any]]:
        """The records so far, sorted by time. By default first `settle()`s, so flows of processes
        that have just exited are included."""
        if settle:
            self.settle()
        with self._lock:
            return sorted((dict(r) for r in self._records), key=lambda r: r["t"])

    def settle(self, timeout: float | None = None) -> bool:
        """Wait until open TCP flows are finished and queued datagrams are handled.

        A flow is recorded when its connection ends and a datagram when the dispatcher reads it,
        both a moment after the client is gone. Returns False if flows were still open at the
        timeout (default: idle_timeout + 1 s), e.g. a client that is still running. Flows whose
        connection has ended but that are still being scanned (a big body) are always waited for,
        up to RECORDING_WAIT_S: their client is gone, the work is bounded, and a record must not
        miss network.jsonl because the scan was slow.

        The end of traffic is read from the kernel, not waited out: no listener has anything
        queued (no datagram to read, no connection to accept), the dispatcher is between rounds
        and no handler thread is alive. When the network is quiet that costs a few poll()s, so
        settling after each phase and again for each read of the records is nearly free.
        """
        deadline = time.time() + (self.idle_timeout + 1.0 if timeout is None else timeout)
        if self._dispatcher is None or not self._dispatcher.is_alive():
            return True
        settled = False
        while True:
            if self._quiet():
                settled = True
                break
            if time.time() >= deadline:
                break
            time.sleep(SETTLE_POLL_S)
        late = time.time() + RECORDING_WAIT_S
        while self._recording and time.time() < late:
            time.sleep(SETTLE_POLL_S)
        return settled

    def _quiet(self) -> bool:
        """Nothing in flight right now: see settle(). Race-free against the dispatcher because
        it bumps `_handled` for every round it handles, and that must not change meanwhile."""
        handled = self._handled
        if self._dispatching or any(h.is_alive() for h in list(self._handlers)):
            return False
        poller = select.poll()
        for sock in self._listen_socks:
            with contextlib.suppress(ValueError, OSError):  # closed by a concurrent close()
                poller.register(sock, select.POLLIN)
        if poller.poll(0):
            return False  # a datagram or a connection is queued
        return not self._dispatching and self._handled == handled

    def exfiltration(self) -> list[dict[str, Any]]:
        """Bait values seen leaving, as `find_tokens` reports them, but searched in everything the
        flow sent as captured (not only the 4 KiB kept in `first_bytes`), then in the DNS queries
        put together (tunnels). Needs the `tokens=` argument; empty otherwise. Settles first,
        like `records()`; call it at the end of a phase or run."""
        self.settle()
        with self._lock:
            findings = [dict(f) for f in self._findings]
            dns = [r for r in self._records if r.get("kind") == "dns"]
        # Without DNS queries there is no tunnel to look for: the scanner (its import and its
        # compiled needles, ~10 ms) is made only for a run that has them.
        scanner = self._scanner if dns else None
        if scanner is not None:
            from osptrack.sandbox.exfil import find_tunnels

            tunnels, errors = find_tunnels(dns, scanner, findings)
            self._count_errors(errors)
            findings += tunnels
        return sorted(findings, key=lambda f: f["t"])

    def _count_errors(self, reasons: Iterable[str]) -> None:
        with self._lock:
            for reason in reasons:
                self.errors += 1
                self.error_reasons[reason] += 1

    def health(self) -> dict[str, Any]:
        """run.json's `network`: what was lost or failed, and what TLS interception did."""
        with self._lock:
            tls = [r["tls"] for r in self._records if r.get("kind") == "tcp" and r.get("tls")]
            reasons = dict(self.error_reasons)
        return {
            "dropped_records": self.dropped,
            "errors": self.errors,
            "error_reasons": reasons,
            "tls": {
                "intercepted": sum(1 for t in tls if t.get("intercepted")),
                "rejected": sum(1 for t in tls if not t.get("intercepted")),
                "leaves_minted": self.ca.minted if self.ca else 0,
            },
        }

    def hostnames_for(self, ip: str) -> list[str]:
        return self.sinkholes.names_for(ip)

    def nsenter_argv(self) -> list[str]:
        return self.netns.nsenter_argv()

    @property
    def netns_fd(self) -> int | None:
        """The namespace's fd (opened in `start()`), for a launcher that joins it itself."""
        return self._netns_fd

    def enter_netns(self) -> None:
        """subprocess preexec_fn: join the namespace. Uses an fd opened in `start()` so the
        forked child only makes one syscall (preexec_fn in a threaded parent must stay minimal)."""
        if self._netns_fd is None:
            raise RuntimeError("FakeNetwork is not started")
        setns_fd(self._netns_fd)

    def __enter__(self) -> FakeNetwork:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        try:
            self.netns.create()
            self._netns_fd = os.open(self.netns.path, os.O_RDONLY | os.O_CLOEXEC)
            self.routes.extend(self._builtin_routes())
            self._wake = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            self._dispatcher = threading.Thread(
                target=self._serve, name=f"fakenet-{self.netns.name}", daemon=True
            )
            self._dispatcher.start()
            self._ready.wait(10)
            if self._start_error is not None:
                raise self._start_error
            if not self._ready.is_set():
                raise RuntimeError("fake network did not start within 10 s")
        except BaseException:
            self.close()
            raise

    def _builtin_routes(self) -> list[Route]:
        return [Route(SmtpResponder(), ports=SMTP_PORTS)]

    def close(self) -> None:
        """Stop everything and delete the namespace. Safe to call twice and after a failed start."""
        self._stop.set()
        if self._wake is not None:
            with contextlib.suppress(OSError):
                os.write(self._wake[1], b"x")
        with self._lock:
            conns = list(self._open_conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._dispatcher is not None:
            self._dispatcher.join(10)
        if self._wake is not None and (self._dispatcher is None or not self._dispatcher.is_alive()):
            for fd in self._wake:
                os.close(fd)
            self._wake = None
        for thread in list(self._handlers):
            thread.join(10)
        if self._netns_fd is not None:
            os.close(self._netns_fd)
            self._netns_fd = None
        self.netns.delete()

    def threads_alive(self) -> list[threading.Thread]:
        """Threads of this network still running (empty after close)."""
        threads = [*self._handlers]
        if self._dispatcher is not None:
            threads.append(self._dispatcher)
        return [t for t in threads if t.is_alive()]

    # ------------------------------------------------------------------ dispatcher (inside the netns)

    def _bind_all(self) -> list[_Listener]:
        listeners: list[_Listener] = []
        try:
            for family, any_addr in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
                for role, kind, port in (
                    ("tcp", socket.SOCK_STREAM, TCP_CATCHALL_PORT),
                    ("dns-tcp", socket.SOCK_STREAM, DNS_PORT),
                    ("udp", socket.SOCK_DGRAM, UDP_CATCHALL_PORT),
                    ("dns-udp", socket.SOCK_DGRAM, DNS_PORT),
                ):
                    sock = socket.socket(family, kind)
                    listeners.append(_Listener(sock, role))
                    _make_transparent(sock, family)
                    if kind == socket.SOCK_DGRAM:
                        if family == socket.AF_INET:
                            sock.setsockopt(socket.IPPROTO_IP, IP_RECVORIGDSTADDR, 1)
                        else:
                            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVORIGDSTADDR, 1)
                    sock.bind((any_addr, port))
                    if kind == socket.SOCK_STREAM:
                        sock.listen(128)
                    sock.setblocking(False)
        except BaseException:
            for listener in listeners:
                listener.sock.close()
            raise
        return listeners

    def _serve(self) -> None:
        try:
            assert self._netns_fd is not None
            setns_fd(self._netns_fd)
            listeners = self._bind_all()
            self._listen_socks = tuple(listener.sock for listener in listeners)  # before settle() may look
        except BaseException as exc:
            self._start_error = exc
            self._ready.set()
            return
        self._ready.set()
        selector = selectors.DefaultSelector()
        try:
            for listener in listeners:
                selector.register(listener.sock, selectors.EVENT_READ, listener)
            assert self._wake is not None
            selector.register(self._wake[0], selectors.EVENT_READ, None)
            while not self._stop.is_set():
                events = [
                    (key, ev) for key, ev in selector.select(DISPATCH_TIMEOUT_S) if key.data is not None
                ]
                if not events:
                    self._idle_rounds += (
                        1  # only benchmarks/strace_levers.py's replay of the old settle reads it
                    )
                    continue
                self._dispatching = True
                try:
                    for key, _ in events:
                        listener = key.data
                        try:
                            if listener.role in ("tcp", "dns-tcp"):
                                self._accept(listener)
                            else:
                                self._datagram(listener)
                        except (BlockingIOError, InterruptedError):
                            continue
                        except Exception as exc:
                            self._error(
                                f"{listener.role} {type(exc).__name__}"
                            )  # one bad packet must not stop the network
                finally:
                    self._handled += 1
                    self._dispatching = False
        finally:
            selector.close()
            for listener in listeners:
                listener.sock.close()

    def _accept(self, listener: _Listener) -> None:
        conn, peer = listener.sock.accept()
        conn.setblocking(True)
        with contextlib.suppress(OSError):  # replies are whole messages: never hold them for Nagle
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        t = time.time()
        phase = self._phase
        self._handlers = {h for h in self._handlers if h.is_alive()}
        if len(self._handlers) >= self.max_connections:
            # A connection flood: log the attempt, but do not spend a thread on it.
            local = conn.getsockname()
            conn.close()
            self._add_tcp(Flow(conn, _norm_ip(local[0]), int(local[1]), t, phase, self, Capture(t)))
            return
        self.track(conn)
        thread = threading.Thread(
            target=self._tcp_connection, args=(conn, listener.role, t, phase), name="fakenet-tcp", daemon=True
        )
        self._handlers.add(thread)
        thread.start()

    def _datagram(self, listener: _Listener) -> None:
        data, ancdata, _flags, peer = listener.sock.recvmsg(65535, 256)
        t = time.time()
        phase = self._phase
        orig = _parse_origdst(ancdata)
        if orig is None:
            return
        dst, dst_port = _norm_ip(orig[0]), orig[1]
        if listener.role == "dns-udp":
            reply = self._dns.answer(data, dst, dst_port, t, phase)
            if reply is not None:
                self._send_from(listener.sock.family, (orig[0], dst_port), peer, reply)
                return
        self._add({"t": t, "phase": phase, "kind": "udp", "dst": dst, "dst_port": dst_port,
                   "bytes": len(data), "first_bytes": _b64(data)}, window=data)  # fmt: skip

    def _send_from(self, family: int, src: tuple[str, int], peer: Any, payload: bytes) -> None:
        """Reply from the address the client aimed at, so a connected UDP client accepts it."""
        with socket.socket(family, socket.SOCK_DGRAM) as out:
            _make_transparent(out, family)
            out.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            out.bind(src)
            out.sendto(payload, peer)

    # ------------------------------------------------------------------ TCP

    def responder_for(self, dst: str, dst_port: int) -> Responder:
        """The first route matching the original destination, else the sniffing catch-all."""
        for route in self.routes:
            if route.matches(dst, dst_port):
                return route.responder
        return self._catchall

    @property
    def _scanner(self) -> Scanner | None:
        """The exfiltration scanner for the run's tokens (None without tokens), imported and made
        with the first record: during the first phase, in a responder's thread, rather than
        before it."""
        if self._tokens is None:
            return None
        with self._scanner_lock:
            if self._scanner_made is None:
                from osptrack.sandbox.exfil import Scanner

                self._scanner_made = Scanner(self._tokens)
            return self._scanner_made

    @property
    def _catchall(self) -> Responder:
        """The sniffer with its HTTP (h11), WebSocket (wsproto), DoH and TLS responders, imported
        and made with the first connection that needs them (~40 ms of imports an offline run's
        start-up need not wait for)."""
        with self._catchall_lock:
            if self._catchall_responder is None:
                from osptrack.sandbox.fakenet.responders.doh import DohHandler
                from osptrack.sandbox.fakenet.responders.sniff import SniffResponder

                self._catchall_responder = SniffResponder(
                    ca=self.ca, doh=DohHandler(self._dns), marker=self.marker
                )
            return self._catchall_responder

    def _tcp_connection(self, conn: socket.socket, role: str, t: float, phase: str | None) -> None:
        flow = Flow(conn, "", 0, t, phase, self, Capture(t, self.capture_bytes, self._budget))
        try:
            local = conn.getsockname()
            flow.dst, flow.dst_port = _norm_ip(local[0]), int(local[1])
            responder = self._dns if role == "dns-tcp" else self.responder_for(flow.dst, flow.dst_port)
            responder.serve(flow)
        except Exception as exc:
            # A reset or a parser surprise must not lose the flow, nor the network.
            self._error(f"tcp {type(exc).__name__}")
        finally:
            for sock in {conn, flow.conn}:
                self.untrack(sock)
                with contextlib.suppress(OSError):
                    sock.close()
            if flow.record and flow.dst:
                with self._lock:
                    self._recording += 1
                try:
                    self._add_tcp(flow)
                finally:
                    with self._lock:
                        self._recording -= 1

    # NetworkContext for responders

    @property
    def stop(self) -> threading.Event:
        return self._stop

    def track(self, sock: socket.socket) -> None:
        with self._lock:
            self._open_conns.add(sock)

    def untrack(self, sock: socket.socket) -> None:
        with self._lock:
            self._open_conns.discard(sock)

    def _add_tcp(self, flow: Flow) -> None:
        t, phase, dst, dst_port = flow.t, flow.phase, flow.dst, flow.dst_port
        data, total = bytes(flow.cap.buf), flow.cap.total
        fields = dict(flow.fields)
        requests = fields.pop("requests", None)
        http = _first_request(requests) if requests else parse_http_request(data)
        tls = data
        if http is not None and http["method"] == "CONNECT":
            # Through a proxy the TLS ClientHello follows the CONNECT head.
            tls = data[data.find(b"\r\n\r\n") + 4 :] if b"\r\n\r\n" in data else b""
        sni = (
            fields.pop("tls_sni")
            if "tls_sni" in fields
            else parse_tls_sni(tls)
            if tls[:1] == b"\x16"
            else None
        )
        names = self.sinkholes.names_for(dst)
        hostname = names[0] if names else sni
        if hostname is None and http:
            # CONNECT names its target in the path; other requests in Host.
            target = http["path"] if http["method"] == "CONNECT" else http["host"]
            hostname = _strip_port(target) if target else None
            if hostname is not None and _is_ip_literal(hostname):
                hostname = None  # an address names nothing new
        record = {"t": t, "phase": phase, "kind": "tcp", "dst": dst, "dst_port": dst_port, "bytes": total,
                  "first_bytes": _b64(data), "http": http, "tls_sni": sni, "hostname": hostname,
                  "tls": fields.pop("tls", None), "requests": requests, "served": fields.pop("served", []),
                  "truncated": flow.cap.truncated, **fields}  # fmt: skip
        # The scan reads the raw stream (plaintext when intercepted) and the decoded views
        # (de-chunked bodies, WebSocket messages), all within the flow's capture limit.
        window = b"\n".join([data, *flow.cap.extra]) if flow.cap.extra else data
        self._add(record, window=window)

    def _add(self, record: dict[str, Any], window: bytes | None = None) -> None:
        findings: list[dict[str, Any]] = []
        scanner = self._scanner
        if scanner is not None:
            # Never raises: a scanner failure is counted with its reason and the record kept.
            findings, errors = scanner.scan_record(record, window)
            self._count_errors(errors)
        with self._lock:
            if len(self._records) < self.max_records:
                self._records.append(record)
            else:
                self.dropped += 1
            # Findings are few and they are the point: kept even when the record itself is dropped.
            self._findings.extend(findings[: max(0, self.max_records - len(self._findings))])

    def _error(self, reason: str) -> None:
        self._count_errors([reason])


def _first_request(requests: list[dict[str, Any]]) -> dict[str, Any]:
    """The legacy `http` field ({method, path, host}) from the first captured request."""
    first = requests[0]
    host = next((v for k, v in first["headers"] if k.lower() == "host"), None)
    return {"method": first["method"], "path": first["target"], "host": host}


def _make_transparent(sock: socket.socket, family: int) -> None:
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.setsockopt(socket.IPPROTO_IPV6, IPV6_TRANSPARENT, 1)
    else:
        sock.setsockopt(socket.IPPROTO_IP, IP_TRANSPARENT, 1)


def _strip_port(host: str) -> str:
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _is_ip_literal(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
