"""TLS interception: terminate the client's TLS with a leaf from the run's CA, then serve the inside.

The ClientHello is *peeked* (not consumed) until complete, so its SNI picks the leaf before the
handshake starts (no SNI: a leaf for the destination address) and OpenSSL then reads the very
same bytes. After the handshake the decrypted stream is served exactly as a plain connection is
(`inner`: HTTP via h11, or raw), and recorded as such: `first_bytes`, `requests` and the token
scan see the plaintext. The record's `tls` says what happened:

    {"sni": "evil.example.com", "alpn": "http/1.1", "version": "TLSv1.3", "intercepted": true}
    {"sni": "pinned.example.net", "alpn": null, "version": null, "intercepted": false,
     "rejected": "TLSV1_ALERT_UNKNOWN_CA"}

`rejected` is the reason OpenSSL gives for a failed handshake: a client alert (`..._ALERT_UNKNOWN_CA`,
`..._ALERT_BAD_CERTIFICATE`, `..._ALERT_CERTIFICATE_UNKNOWN`) is a client that does not trust the
CA or pins its certificate; anything else is a broken or non-TLS client. For those flows the
captured bytes are the ClientHello, as before interception existed. Without a CA (`ca=None`) the
responder only reads the ClientHello and closes, as a failing server does.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import time
from collections.abc import Callable

from osptrack.sandbox.fakenet.ca import CertAuthority  # no cryptography at import (ca.py)
from osptrack.sandbox.fakenet.protocols import parse_tls_sni, tls_handshake
from osptrack.sandbox.fakenet.responders.base import Flow

MAX_HELLO = 16 * 1024  # a ClientHello with post-quantum key shares is ~2 KB; 16 KiB is the record limit
PEEK_POLL_S = 0.002


def peek_client_hello(flow: Flow) -> bytes:
    """The ClientHello bytes available without consuming them, waiting (briefly) for all of it."""
    conn = flow.conn
    conn.settimeout(flow.net.idle_timeout)
    deadline = min(flow.deadline, time.time() + flow.net.idle_timeout)
    data = b""
    while True:
        try:
            data = conn.recv(MAX_HELLO, socket.MSG_PEEK)
        except OSError:
            return data
        if not data or tls_handshake(data)[1] or len(data) >= MAX_HELLO or time.time() > deadline:
            return data
        time.sleep(PEEK_POLL_S)  # peeked data stays readable: poll() would not wait for more


class TlsResponder:
    name = "tls"

    def __init__(self, ca: CertAuthority | None = None, inner: Callable[[Flow], None] | None = None) -> None:
        self.ca = ca
        self.inner = inner

    def serve(self, flow: Flow) -> None:
        if self.ca is None:
            self._close_after_hello(flow)
            return
        hello = peek_client_hello(flow)
        sni = parse_tls_sni(hello)
        info: dict[str, object] = {"sni": sni, "alpn": None, "version": None, "intercepted": False}
        flow.fields["tls"] = info
        flow.fields["tls_sni"] = sni
        ctx = self.ca.server_context(sni or flow.dst)
        raw = flow.conn
        wrapped = ctx.wrap_socket(raw, server_side=True, do_handshake_on_connect=False)  # detaches `raw`
        flow.raw, flow.conn = raw, wrapped
        flow.net.track(wrapped)
        wrapped.settimeout(flow.net.idle_timeout)
        try:
            wrapped.do_handshake()
        except (ssl.SSLError, OSError) as exc:
            info["rejected"] = _reason(exc)
            flow.cap.feed(hello)  # what the client sent is its ClientHello (and maybe an alert)
            return
        info.update(intercepted=True, alpn=wrapped.selected_alpn_protocol(), version=wrapped.version())
        try:
            if self.inner is not None:
                self.inner(flow)
        finally:
            # close_notify, as a real server sends, without waiting for the client's reply.
            with contextlib.suppress(OSError, ValueError):
                wrapped.settimeout(0.0)
                wrapped.unwrap()

    def _close_after_hello(self, flow: Flow) -> None:
        for _chunk in flow.incoming():
            if tls_handshake(bytes(flow.cap.buf))[1]:
                return  # full ClientHello: closing now, so the client does not wait for the idle timeout


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason)
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timeout"
    if isinstance(exc, ConnectionResetError):
        return "reset"
    return type(exc).__name__
