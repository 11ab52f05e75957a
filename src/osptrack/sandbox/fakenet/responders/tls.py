"""TLS: read the ClientHello (its SNI goes into the record), then close as a failing server does."""

from __future__ import annotations

from osptrack.sandbox.fakenet.protocols import tls_handshake
from osptrack.sandbox.fakenet.responders.base import Flow


class TlsResponder:
    name = "tls"

    def serve(self, flow: Flow) -> None:
        for _chunk in flow.incoming():
            if tls_handshake(bytes(flow.cap.buf))[1]:
                return  # full ClientHello: closing now, so the client does not wait for the idle timeout
