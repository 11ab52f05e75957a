"""The fake network: a DNS responder and TCP/UDP catch-alls inside a loopback-only namespace.

Usage (run.py)::

    with FakeNetwork(run_id="abc123", online=False, allowed_registries=(), tokens=baits) as net:
        net.set_phase("install")                 # tags every later record
        subprocess.run([*net.nsenter_argv(), "bwrap", ...])   # or preexec_fn=net.enter_netns
        write_jsonl(out / "network.jsonl", net.records())     # settles open flows first
        net.hostnames_for("198.18.1.1")          # -> ["evil.example.com"]
        net.exfiltration()   # find_tokens-style findings over the first 64 KiB of every flow
    # on exit (also on exceptions): servers stopped, threads joined, sockets closed, netns deleted

What the sandbox sees (see netns.py for the plumbing):

* `net.resolver_address` (198.18.0.53) is what the sandbox's /etc/resolv.conf should name. Any
  query to port 53 of *any* address (8.8.8.8, 127.0.0.53, ...) reaches the same responder, and
  the record's `server` says which address the client aimed at.
* A queries get a sinkhole from 198.18.0.0/15, one per name (198.18.1.1, 198.18.1.2, ... in order
  of first query), so a later connect to that address maps back to the name (`hostname` field,
  `hostnames_for`). AAAA queries get the same sinkhole embedded in the ULA prefix
  fd5e:1800::/96 (198.18.1.1 <-> fd5e:1800::c612:101) rather than NODATA, so IPv6-first clients
  still connect and are still attributed to the name. Every other type is NOERROR/NODATA.
  DNS over TCP is answered too. Names are logged lower-cased without the trailing dot.
* TCP to any other address/port is accepted. The first 4 KiB are kept, HTTP request line + Host
  and TLS SNI are parsed. HTTP gets `200 OK` with an empty body once the request (including a
  Content-Length or chunked body, after a `100 Continue` if asked) has arrived; TLS is closed as
  soon as the ClientHello is complete; anything else is read until `idle_timeout` of silence or
  `max_connection_s`. `bytes` counts everything the client sent.
* SMTP ports (25, 587, 2525) get a banner and an accept-everything mail server (AUTH and DATA
  accepted, STARTTLS refused), so credentials and message bodies sent by mail are captured.
* UDP to any other address/port is recorded (first 4 KiB) and not answered.
* Online mode: `net.proxy_url` (http://198.18.0.80:3128) is an HTTP CONNECT proxy. Connections to
  that address are relayed byte for byte to the host-side `AllowlistProxy` (proxy.py) over a
  pathname unix socket -- the osptrack process straddles both namespaces -- and only the
  configured registry hosts get through. Everything else is still sinkholed.

Record format: exactly `network.jsonl` in docs/formats.md (`dns`, `tcp`, `udp`), sorted by `t`
(the time the query/connection/datagram arrived). `phase` is None before the first `set_phase`.
A TCP flow is logged when its connection ends, so read `records()` after the phase's processes
have exited (the handlers give up after `idle_timeout`). Floods are bounded: at most
`max_records` records are kept (`net.dropped` counts the rest) and at most `max_connections`
connections are served at once (further ones are logged with `bytes: 0` and closed).
`net.errors` counts packets/connections whose handling raised. run.py may put `dropped` and
`errors` into run.json.

Stale namespaces from a killed run: `osptrack.sandbox.netns.sweep_stale()` (e.g. at batch start).

Threads: one dispatcher thread joins the namespace (setns), binds the listeners there and serves
DNS/UDP inline; each TCP connection gets a short-lived handler thread. Threads created by the
dispatcher inherit its namespace, so nothing else in the osptrack process changes namespace.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import os
import re
import selectors
import socket
import struct
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dnslib import AAAA, QTYPE, RR, A, DNSRecord

from osptrack.sandbox.exfil import find_tokens
from osptrack.sandbox.netns import (
    DNS_PORT,
    TCP_CATCHALL_PORT,
    UDP_CATCHALL_PORT,
    NetNamespace,
    setns_fd,
)
from osptrack.sandbox.proxy import DEFAULT_REGISTRIES, AllowlistProxy, relay

FIRST_BYTES = 4096
PARSE_WINDOW = 64 * 1024
DNS_TTL = 60

RESOLVER_ADDRESS = "198.18.0.53"
PROXY_ADDRESS = ("198.18.0.80", 3128)
SINKHOLE_NET_V4 = ipaddress.IPv4Network("198.18.0.0/15")
SINKHOLE_FIRST = ipaddress.IPv4Address("198.18.1.1")
SINKHOLE_NET_V6 = ipaddress.IPv6Network("fd5e:1800::/96")

# Linux constants that the socket module does not export.
IP_TRANSPARENT = 19
IP_RECVORIGDSTADDR = 20
IPV6_RECVORIGDSTADDR = 74
IPV6_TRANSPARENT = 75

_HTTP_REQUEST_LINE = re.compile(rb"^([A-Z][A-Z-]{1,15}) (\S{1,8192}) HTTP/\d(?:\.\d)?\r?\n")
_HTTP_OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
_HTTP_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"

# SMTP is server-speaks-first: without a banner a client never sends what it came to send.
SMTP_PORTS = frozenset({25, 587, 2525})


def smtp_reply(line: bytes, state: str) -> tuple[bytes, str]:
    """(reply, next state) of an accept-everything SMTP server; state is "cmd", "data",
    "auth-user", "auth-pass" or "auth-plain". Credentials and DATA are accepted so they get sent."""
    if state == "data":
        return (b"250 2.0.0 queued\r\n", "cmd") if line.rstrip(b"\r\n") == b"." else (b"", "data")
    if state == "auth-user":
        return b"334 UGFzc3dvcmQ6\r\n", "auth-pass"
    if state in ("auth-pass", "auth-plain"):
        return b"235 2.7.0 authenticated\r\n", "cmd"
    words = line.strip().split()
    verb = words[0].upper() if words else b""
    if verb in (b"EHLO", b"HELO"):
        return b"250-mail.example\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n", "cmd"
    if verb == b"AUTH":
        mech = words[1].upper() if len(words) > 1 else b""
        if mech == b"LOGIN":
            return (
                (b"334 UGFzc3dvcmQ6\r\n", "auth-pass")
                if len(words) > 2
                else (b"334 VXNlcm5hbWU6\r\n", "auth-user")
            )
        if mech == b"PLAIN" and len(words) == 2:
            return b"334 \r\n", "auth-plain"
        return b"235 2.7.0 authenticated\r\n", "cmd"
    if verb == b"DATA":
        return b"354 end data with <CR><LF>.<CR><LF>\r\n", "data"
    if verb == b"QUIT":
        return b"221 2.0.0 bye\r\n", "quit"
    if verb == b"STARTTLS":
        return b"454 4.7.0 TLS not available\r\n", "cmd"
    return b"250 2.0.0 ok\r\n", "cmd"


# --------------------------------------------------------------------------- protocol parsing


def parse_http_request(data: bytes) -> dict[str, Any] | None:
    """`{"method", "path", "host"}` from the start of an HTTP/1.x request, or None."""
    m = _HTTP_REQUEST_LINE.match(data)
    if not m:
        return None
    host = None
    head_end = data.find(b"\r\n\r\n")
    head = data[: head_end if head_end >= 0 else len(data)]
    for line in head.split(b"\n")[1:]:
        name, sep, value = line.partition(b":")
        if sep and name.strip().lower() == b"host":
            host = value.strip().decode("latin-1")
            break
    return {"method": m.group(1).decode(), "path": m.group(2).decode("latin-1"), "host": host}


def _http_request_complete(data: bytes, total: int) -> tuple[bool, bool]:
    """(headers complete and `Expect: 100-continue` asked, whole request received)."""
    head_end = data.find(b"\r\n\r\n")
    if head_end < 0:
        return False, False
    head = data[:head_end].lower()
    body_received = total - (head_end + 4)
    expect = b"expect: 100-continue" in head
    length = re.search(rb"\ncontent-length:\s*(\d+)", head)
    if length:
        return expect, body_received >= int(length.group(1))
    if re.search(rb"\ntransfer-encoding:[^\n]*chunked", head):
        return expect, data.endswith(b"0\r\n\r\n")
    return expect, True


def _tls_handshake(data: bytes) -> tuple[bytes, bool]:
    """Concatenated handshake bytes from TLS records, and whether the first message is complete."""
    out = bytearray()
    i = 0
    while i + 5 <= len(data) and data[i] == 0x16:
        length = int.from_bytes(data[i + 3 : i + 5], "big")
        out += data[i + 5 : i + 5 + length]
        i += 5 + length
    if len(out) >= 4:
        msg_len = int.from_bytes(out[1:4], "big")
        return bytes(out), len(out) >= 4 + msg_len
    return bytes(out), False


def parse_tls_sni(data: bytes) -> str | None:
    """server_name from a TLS ClientHello (possibly split over several records), or None."""
    hs, _ = _tls_handshake(data)
    if len(hs) < 4 or hs[0] != 0x01:
        return None
    try:
        p = 4 + 2 + 32  # header, legacy_version, random
        p += 1 + hs[p]  # session id
        p += 2 + int.from_bytes(hs[p : p + 2], "big")  # cipher suites
        p += 1 + hs[p]  # compression methods
        ext_end = p + 2 + int.from_bytes(hs[p : p + 2], "big")
        p += 2
        while p + 4 <= min(ext_end, len(hs)):
            ext_type = int.from_bytes(hs[p : p + 2], "big")
            ext_len = int.from_bytes(hs[p + 2 : p + 4], "big")
            body = hs[p + 4 : p + 4 + ext_len]
            if ext_type == 0 and len(body) >= 5 and body[2] == 0:
                name_len = int.from_bytes(body[3:5], "big")
                return body[5 : 5 + name_len].decode("ascii", errors="replace") or None
            p += 4 + ext_len
    except IndexError:
        return None
    return None


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


# --------------------------------------------------------------------------- sinkhole names


IDLE_ROUND_S = 0.01  # dispatcher select timeout; settle() counts these rounds

class Sinkholes:
    """Name <-> sinkhole address, one address per name, stable for the run."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_name: dict[str, int] = {}
        self._by_index: dict[int, str] = {}

    def v4_for(self, name: str) -> str | None:
        with self._lock:
            index = self._by_name.get(name)
            if index is None:
                index = len(self._by_name)
                if int(SINKHOLE_FIRST) + index > int(SINKHOLE_NET_V4.broadcast_address):
                    return None  # exhausted: answer NODATA rather than reuse an address
                self._by_name[name] = index
                self._by_index[index] = name
        return str(ipaddress.IPv4Address(int(SINKHOLE_FIRST) + index))

    def v6_for(self, name: str) -> str | None:
        v4 = self.v4_for(name)
        if v4 is None:
            return None
        return str(
            ipaddress.IPv6Address(int(SINKHOLE_NET_V6.network_address) | int(ipaddress.IPv4Address(v4)))
        )

    def names_for(self, ip: str) -> list[str]:
        try:
            addr = ipaddress.ip_address(ip.split("%", 1)[0])
        except ValueError:
            return []
        if isinstance(addr, ipaddress.IPv6Address):
            if addr not in SINKHOLE_NET_V6:
                return []
            addr = ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
        index = int(addr) - int(SINKHOLE_FIRST)
        with self._lock:
            name = self._by_index.get(index)
        return [name] if name is not None else []


# --------------------------------------------------------------------------- the network


class _Capture:
    """What one TCP client sent: the first PARSE_WINDOW bytes and the total count."""

    def __init__(self, t: float) -> None:
        self.t = t
        self.buf = bytearray()
        self.total = 0

    def feed(self, chunk: bytes) -> None:
        self.total += len(chunk)
        if len(self.buf) < PARSE_WINDOW:
            self.buf += chunk[: PARSE_WINDOW - len(self.buf)]


@dataclass(frozen=True)
class _Listener:
    sock: socket.socket
    role: str  # "tcp", "udp", "dns-udp", "dns-tcp"


class FakeNetwork:
    """Network namespace + fake services for one run. Use as a context manager."""

    def __init__(
        self,
        run_id: str,
        online: bool = False,
        allowed_registries: Iterable[str] = (),
        *,
        proxy_socket: Path | None = None,
        idle_timeout: float = 1.5,
        max_connection_s: float = 10.0,
        relay_idle_timeout: float = 120.0,
        max_records: int = 10_000,  # x ~6 KB each: a connect loop stays near 60 MB
        max_connections: int = 256,
        tokens: Mapping[str, str] | None = None,
    ) -> None:
        self.netns = NetNamespace(run_id)
        self.online = online
        # Online mode with no list given means the default registries, not "nothing allowed".
        self.allowed_registries = tuple(allowed_registries) or (DEFAULT_REGISTRIES if online else ())
        self.idle_timeout = idle_timeout
        self.max_connection_s = max_connection_s
        self.relay_idle_timeout = relay_idle_timeout
        self.max_records = max_records
        self.max_connections = max_connections
        self._tokens = dict(tokens or {})
        self._findings: list[dict[str, Any]] = []
        self.errors = 0  # packets/connections whose handling failed (they are still counted here)
        self.dropped = 0  # records not kept because max_records was reached (a flood)
        self.resolver_address = RESOLVER_ADDRESS
        self.proxy_address: tuple[str, int] | None = PROXY_ADDRESS if online else None
        self.proxy_url = f"http://{PROXY_ADDRESS[0]}:{PROXY_ADDRESS[1]}" if online else None
        self.proxy: AllowlistProxy | None = None  # set when we start our own
        self._proxy_socket = proxy_socket
        self.sinkholes = Sinkholes()
        self._phase: str | None = None
        self._records: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self._dispatcher: threading.Thread | None = None
        self._handlers: set[threading.Thread] = set()
        self._open_conns: set[socket.socket] = set()
        self._netns_fd: int | None = None
        self._idle_rounds = 0

    # ------------------------------------------------------------------ public API

    @property
    def netns_name(self) -> str:
        return self.netns.name

    @property
    def netns_path(self) -> Path:
        return self.netns.path

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
        timeout (default: idle_timeout + 1 s), e.g. a client that is still running.
        """
        deadline = time.time() + (self.idle_timeout + 1.0 if timeout is None else timeout)
        if self._dispatcher is None or not self._dispatcher.is_alive():
            return True
        # An idle select round that starts after now means every queued datagram was read.
        start_round = self._idle_rounds
        while time.time() < deadline:
            busy = any(h.is_alive() for h in list(self._handlers))
            if not busy and self._idle_rounds >= start_round + 2:
                return True
            time.sleep(IDLE_ROUND_S / 2)
        return False

    def exfiltration(self) -> list[dict[str, Any]]:
        """Bait values seen leaving, as `find_tokens` reports them, but searched in everything the
        flow sent within the first 64 KiB (not only the 4 KiB kept in `first_bytes`). Needs the
        `tokens=` argument; empty otherwise. Settles first, like `records()`."""
        self.settle()
        with self._lock:
            return sorted((dict(f) for f in self._findings), key=lambda f: f["t"])

    def hostnames_for(self, ip: str) -> list[str]:
        return self.sinkholes.names_for(ip)

    def nsenter_argv(self) -> list[str]:
        return self.netns.nsenter_argv()

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
            if self.online and self._proxy_socket is None:
                self.proxy = AllowlistProxy(self.allowed_registries)
                self.proxy.start()
                self._proxy_socket = self.proxy.unix_path
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

    def close(self) -> None:
        """Stop everything and delete the namespace. Safe to call twice and after a failed start."""
        self._stop.set()
        with self._lock:
            conns = list(self._open_conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._dispatcher is not None:
            self._dispatcher.join(10)
        for thread in list(self._handlers):
            thread.join(10)
        if self.proxy is not None:
            self.proxy.close()
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
        except BaseException as exc:
            self._start_error = exc
            self._ready.set()
            return
        self._ready.set()
        selector = selectors.DefaultSelector()
        try:
            for listener in listeners:
                selector.register(listener.sock, selectors.EVENT_READ, listener)
            while not self._stop.is_set():
                # Short rounds: settle() waits for two idle ones after every phase, and 50 ms
                # rounds made that a tenth of a second per call (measured: 28% of a small run).
                events = selector.select(IDLE_ROUND_S)
                if not events:
                    self._idle_rounds += 1
                for key, _ in events:
                    listener = key.data
                    try:
                        if listener.role in ("tcp", "dns-tcp"):
                            self._accept(listener)
                        else:
                            self._datagram(listener)
                    except (BlockingIOError, InterruptedError):
                        continue
                    except Exception:
                        self.errors += 1  # one bad packet/connection must not stop the network
        finally:
            selector.close()
            for listener in listeners:
                listener.sock.close()

    def _accept(self, listener: _Listener) -> None:
        conn, peer = listener.sock.accept()
        conn.setblocking(True)
        t = time.time()
        phase = self._phase
        self._handlers = {h for h in self._handlers if h.is_alive()}
        if len(self._handlers) >= self.max_connections:
            # A connection flood: log the attempt, but do not spend a thread on it.
            local = conn.getsockname()
            conn.close()
            self._add_tcp(t, phase, _norm_ip(local[0]), int(local[1]), b"", 0)
            return
        with self._lock:
            self._open_conns.add(conn)
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
            reply = self._answer_dns(data, dst, dst_port, t, phase)
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

    # ------------------------------------------------------------------ DNS

    def _answer_dns(
        self, data: bytes, server: str, server_port: int, t: float, phase: str | None
    ) -> bytes | None:
        try:
            request = DNSRecord.parse(data)
        except Exception:  # dnslib raises its own DNSError and struct errors on junk
            return None
        if request.header.qr or not request.questions:
            return None
        reply = request.reply()
        for question in request.questions:
            qname = str(question.qname).rstrip(".").lower()
            qtype = QTYPE.get(question.qtype, f"TYPE{question.qtype}")
            answer: list[str] = []
            address = None
            if question.qtype == QTYPE.A:
                address = self.sinkholes.v4_for(qname)
                if address:
                    reply.add_answer(RR(question.qname, QTYPE.A, rdata=A(address), ttl=DNS_TTL))
            elif question.qtype == QTYPE.AAAA:
                address = self.sinkholes.v6_for(qname)
                if address:
                    reply.add_answer(RR(question.qname, QTYPE.AAAA, rdata=AAAA(address), ttl=DNS_TTL))
            if address:
                answer.append(address)
            self._add({"t": t, "phase": phase, "kind": "dns", "qname": qname, "qtype": str(qtype),
                       "server": server, "server_port": server_port, "answer": answer})  # fmt: skip
        return bytes(reply.pack())

    def _dns_over_tcp(
        self, conn: socket.socket, cap: _Capture, server: str, server_port: int, phase: str | None
    ) -> bool:
        """Answer length-prefixed queries until the client goes quiet. False if the stream was not DNS."""
        buf = bytearray()
        for chunk in self._incoming(conn, cap):
            buf += chunk
            while len(buf) >= 2 and len(buf) >= 2 + int.from_bytes(buf[:2], "big"):
                size = int.from_bytes(buf[:2], "big")
                message, buf = bytes(buf[2 : 2 + size]), buf[2 + size :]
                reply = self._answer_dns(message, server, server_port, cap.t, phase)
                if reply is None:
                    return False
                conn.sendall(len(reply).to_bytes(2, "big") + reply)
        return not buf

    # ------------------------------------------------------------------ TCP

    def _tcp_connection(self, conn: socket.socket, role: str, t: float, phase: str | None) -> None:
        cap = _Capture(t)
        dst, dst_port = "", 0
        record = True
        try:
            local = conn.getsockname()
            dst, dst_port = _norm_ip(local[0]), int(local[1])
            if role == "dns-tcp":
                # Logged as dns records; only a stream that was not DNS becomes a tcp record.
                record = not self._dns_over_tcp(conn, cap, dst, dst_port, phase) and cap.total > 0
            elif self.proxy_address is not None and (dst, dst_port) == self.proxy_address:
                self._relay_to_proxy(conn, cap)
            else:
                if dst_port in SMTP_PORTS:
                    self._smtp(conn, cap)
                else:
                    self._converse(conn, cap)
        except Exception:
            self.errors += 1  # a reset or a parser surprise must not lose the flow, nor the network
        finally:
            with self._lock:
                self._open_conns.discard(conn)
            conn.close()
            if record and dst:
                self._add_tcp(t, phase, dst, dst_port, bytes(cap.buf), cap.total)

    def _smtp(self, conn: socket.socket, cap: _Capture) -> None:
        """Play an accepting mail server until QUIT or silence, so mail exfiltration is captured."""
        conn.settimeout(self.idle_timeout)
        conn.sendall(b"220 mail.example ESMTP\r\n")
        deadline = cap.t + self.max_connection_s
        pending = b""
        state = "cmd"
        while state != "quit" and time.time() < deadline and not self._stop.is_set():
            try:
                chunk = conn.recv(65536)
            except OSError:
                break
            if not chunk:
                break
            cap.feed(chunk)
            pending += chunk
            replies = b""
            while b"\n" in pending and state != "quit":
                line, pending = pending.split(b"\n", 1)
                reply, state = smtp_reply(line + b"\n", state)
                replies += reply
            pending = pending[-PARSE_WINDOW:]  # a newline-free flood must not grow without bound
            if replies:
                conn.sendall(replies)

    def _incoming(self, conn: socket.socket, cap: _Capture) -> Iterator[bytes]:
        """Chunks the client sends (each already captured) until it goes quiet, closes, or the
        connection's time is up; shared by the DNS-over-TCP and catch-all conversations."""
        conn.settimeout(self.idle_timeout)
        deadline = cap.t + self.max_connection_s
        while time.time() < deadline and not self._stop.is_set():
            try:
                chunk = conn.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            cap.feed(chunk)
            yield chunk

    def _converse(self, conn: socket.socket, cap: _Capture) -> None:
        """Read like a plausible server would, so the client shows what it meant to send."""
        sent_continue = False
        answered = False
        for _chunk in self._incoming(conn, cap):
            data = bytes(cap.buf)
            if data[:1] == b"\x16":
                if _tls_handshake(data)[1]:
                    break  # full ClientHello: closing now is what a failing TLS server does
            elif _HTTP_REQUEST_LINE.match(data):
                expect, complete = _http_request_complete(data, cap.total)
                if expect and not sent_continue and not complete:
                    conn.sendall(_HTTP_CONTINUE)
                    sent_continue = True
                if complete:
                    conn.sendall(_HTTP_OK)
                    answered = True
                    break
        if not answered and _HTTP_REQUEST_LINE.match(bytes(cap.buf)):
            # Timed out mid-request: still answer, so the client gets a response rather than a reset.
            with contextlib.suppress(OSError):
                conn.sendall(_HTTP_OK)

    def _relay_to_proxy(self, conn: socket.socket, cap: _Capture) -> None:
        """Copy bytes both ways between the in-namespace client and the host-side proxy."""
        assert self._proxy_socket is not None
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with self._lock:
            self._open_conns.add(upstream)
        try:
            upstream.connect(str(self._proxy_socket))
            relay(conn, upstream, self._stop, self.relay_idle_timeout, on_a_data=cap.feed)
        finally:
            with self._lock:
                self._open_conns.discard(upstream)
            upstream.close()

    def _add_tcp(self, t: float, phase: str | None, dst: str, dst_port: int, data: bytes, total: int) -> None:
        http = parse_http_request(data)
        tls = data
        if http is not None and http["method"] == "CONNECT":
            # Through a proxy the TLS ClientHello follows the CONNECT head.
            tls = data[data.find(b"\r\n\r\n") + 4 :] if b"\r\n\r\n" in data else b""
        sni = parse_tls_sni(tls) if tls[:1] == b"\x16" else None
        names = self.sinkholes.names_for(dst)
        hostname = names[0] if names else sni
        if hostname is None and http:
            # CONNECT names its target in the path; other requests in Host.
            target = http["path"] if http["method"] == "CONNECT" else http["host"]
            hostname = _strip_port(target) if target else None
            if hostname is not None and _is_ip_literal(hostname):
                hostname = None  # an address names nothing new
        self._add({"t": t, "phase": phase, "kind": "tcp", "dst": dst, "dst_port": dst_port, "bytes": total,
                   "first_bytes": _b64(data), "http": http, "tls_sni": sni, "hostname": hostname},
                  window=data)  # fmt: skip

    def _add(self, record: dict[str, Any], window: bytes | None = None) -> None:
        findings: list[dict[str, Any]] = []
        if self._tokens:
            scanned = (
                record if window is None else dict(record, first_bytes=base64.b64encode(window).decode())
            )
            for finding in find_tokens([scanned], self._tokens):
                finding["t"] = record["t"]
                findings.append(finding)
        with self._lock:
            if len(self._records) < self.max_records:
                self._records.append(record)
            else:
                self.dropped += 1
            # Findings are few and they are the point: kept even when the record itself is dropped.
            self._findings.extend(findings[: max(0, self.max_records - len(self._findings))])


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
