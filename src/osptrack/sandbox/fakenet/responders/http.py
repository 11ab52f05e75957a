"""HTTP/1.x: wait for the whole request (after a `100 Continue` if asked), then answer `200 OK`."""

from __future__ import annotations

import contextlib

from osptrack.sandbox.fakenet.protocols import http_request_complete
from osptrack.sandbox.fakenet.responders.base import Flow

HTTP_OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
HTTP_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class HttpResponder:
    name = "http"

    def serve(self, flow: Flow) -> None:
        self.serve_started(flow)

    def serve_started(self, flow: Flow) -> None:
        """Serve a request whose first bytes may already be in `flow.cap` (read by the sniffer)."""
        sent_continue = False
        chunks = flow.incoming()
        while True:
            expect, complete = http_request_complete(bytes(flow.cap.buf), flow.cap.total)
            if expect and not sent_continue and not complete:
                flow.conn.sendall(HTTP_CONTINUE)
                sent_continue = True
            if complete:
                flow.conn.sendall(HTTP_OK)
                return
            if next(chunks, None) is None:
                break
        if flow.cap.total:
            # Timed out mid-request: still answer, so the client gets a response rather than a reset.
            with contextlib.suppress(OSError):
                flow.conn.sendall(HTTP_OK)
