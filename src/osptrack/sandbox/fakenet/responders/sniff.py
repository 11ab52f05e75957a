"""The catch-all: tell TLS, HTTP and anything else apart from the first bytes, then hand over.

TLS is recognised by peeking (nothing consumed), so the TLS interceptor gets the untouched
stream; once decrypted, the inside comes back here (`serve_plain`) and is told apart the same
way. HTTP and raw are told apart on the bytes read so far: a request line makes it HTTP, a first
line that is not one makes it raw. A `CONNECT` tunnel is served from the top again (`serve`).
"""

from __future__ import annotations

import socket
import ssl

from osptrack.sandbox.fakenet.ca import CertAuthority  # no cryptography at import (ca.py)
from osptrack.sandbox.fakenet.protocols import HTTP_REQUEST_LINE
from osptrack.sandbox.fakenet.responders.base import Flow
from osptrack.sandbox.fakenet.responders.doh import DohHandler
from osptrack.sandbox.fakenet.responders.http import HttpResponder
from osptrack.sandbox.fakenet.responders.raw import RawResponder
from osptrack.sandbox.fakenet.responders.tls import TlsResponder

_MAX_REQUEST_LINE = 8192 + 40
MAX_NESTING = 3  # CONNECT inside TLS inside CONNECT ...: enough for any real client


def classify(head: bytes) -> str | None:
    """ "tls", "http", "raw", or None while the first line is still incomplete."""
    if head[:1] == b"\x16":
        return "tls"
    if HTTP_REQUEST_LINE.match(head):
        return "http"
    if b"\n" in head or len(head) > _MAX_REQUEST_LINE:
        return "raw"
    return None


def peek_first_byte(flow: Flow) -> bytes:
    """The client's first byte without consuming it; b"" if it closed or stayed silent."""
    flow.conn.settimeout(flow.net.idle_timeout)
    try:
        return flow.conn.recv(1, socket.MSG_PEEK)
    except OSError:
        return b""


class SniffResponder:
    name = "sniff"

    def __init__(
        self, ca: CertAuthority | None = None, doh: DohHandler | None = None, marker: str | None = None
    ) -> None:
        self.tls = TlsResponder(ca, inner=self.serve_plain)
        self.http = HttpResponder(marker=marker, doh=doh, tunnel=self.serve)
        self.raw = RawResponder()

    def serve(self, flow: Flow) -> None:
        flow.depth += 1
        if flow.depth > MAX_NESTING:
            self.raw.serve(flow)
            return
        if isinstance(flow.conn, ssl.SSLSocket):
            self.serve_plain(
                flow
            )  # a tunnel inside intercepted TLS: no second layer to peel (no peeking either)
            return
        first = peek_first_byte(flow)
        if not first:
            return
        if first == b"\x16":
            self.tls.serve(flow)
            return
        self.serve_plain(flow)

    def serve_plain(self, flow: Flow) -> None:
        """HTTP or raw on a stream that is not TLS (also the inside of an intercepted TLS stream)."""
        head = bytearray()
        for chunk in flow.incoming():
            head += chunk
            kind = classify(bytes(head[: _MAX_REQUEST_LINE + 1]))
            if kind == "http":
                self.http.serve_started(flow, bytes(head))
                return
            if kind is not None:
                self.raw.serve(flow)
                return
