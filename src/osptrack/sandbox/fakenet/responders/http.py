"""HTTP/1.x server (h11): every request captured, each answered by answers.py, keep-alive honoured.

h11 does the parsing and framing (Content-Length, chunked, `Expect: 100-continue`, pipelining,
HEAD), so what is recorded is what a real server would have understood. Per request the record's
`requests` list gets the request line, the headers as sent, and the body (de-chunked, kept up to
the flow's capture limit, `truncated` marked); per response `served` gets a summary. A request
that never finishes (the client went quiet) is still answered, so the client gets a response
rather than a reset. Special requests go to their own handlers: DNS over HTTPS (doh.py) and
WebSocket upgrades (websocket.py); `CONNECT` gets `200` and the tunnel is served again from the
top (`tunnel`), so TLS inside it is intercepted too.
"""

from __future__ import annotations

import base64
import contextlib
import http
from collections.abc import Callable, Iterator
from typing import Any

import h11

from osptrack.sandbox.fakenet.answers import Answer, choose, response_headers
from osptrack.sandbox.fakenet.responders.base import Flow
from osptrack.sandbox.fakenet.responders.doh import DohHandler
from osptrack.sandbox.fakenet.responders.websocket import is_upgrade, serve_websocket
from osptrack.sandbox.fakenet.stages import new_marker

MAX_HEAD = 64 * 1024
MAX_REQUESTS = 256  # per connection: a pipelining loop must not grow the record without bound


def response(status: int, headers: list[tuple[str, str]], informational: bool = False) -> Any:
    """An h11 response with the standard reason phrase (h11 sends none by default; servers do)."""
    try:
        reason = http.HTTPStatus(status).phrase.encode()
    except ValueError:
        reason = b""
    cls = h11.InformationalResponse if informational else h11.Response
    return cls(status_code=status, headers=headers, reason=reason)


class _Request:
    """One captured request."""

    def __init__(self, event: h11.Request, flow: Flow) -> None:
        self.method = event.method.decode("latin-1")
        self.target = event.target.decode("latin-1")
        self.raw_headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in event.headers.raw_items()]
        self.headers: dict[str, str] = {}
        for k, v in self.raw_headers:
            key = k.lower()
            self.headers[key] = f"{self.headers[key]}, {v}" if key in self.headers else v
        self.version = event.http_version.decode("latin-1")
        # A chunked body is interleaved with chunk sizes in the raw stream: only then does the
        # scan need the de-chunked copy.
        self.chunked = "chunked" in self.headers.get("transfer-encoding", "").lower()
        self.body = bytearray()
        self.body_bytes = 0
        self._flow = flow

    def add(self, data: bytes) -> None:
        self.body_bytes += len(data)
        self.body += self._flow.cap.keep(data, scan=self.chunked)

    def as_dict(self) -> dict[str, Any]:
        return {"method": self.method, "target": self.target, "version": self.version,
                "headers": [list(h) for h in self.raw_headers], "body": base64.b64encode(self.body).decode(),
                "body_bytes": self.body_bytes, "truncated": self.body_bytes > len(self.body)}  # fmt: skip


class HttpResponder:
    name = "http"

    def __init__(
        self,
        marker: str | None = None,
        doh: DohHandler | None = None,
        tunnel: Callable[[Flow], None] | None = None,
    ) -> None:
        self.marker = marker or new_marker()
        self.doh = doh
        self.tunnel = tunnel

    def serve(self, flow: Flow) -> None:
        self.serve_started(flow, b"")

    def serve_started(self, flow: Flow, head: bytes) -> None:
        """Serve HTTP on `flow.conn`; `head` is what the sniffer already read (and captured)."""
        requests: list[dict[str, Any]] = flow.fields.setdefault("requests", [])
        served: list[dict[str, Any]] = flow.fields.setdefault("served", [])
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        if head:
            conn.receive_data(head)
        chunks = flow.incoming()
        current: _Request | None = None
        try:
            while len(requests) < MAX_REQUESTS:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    if current is not None and conn.they_are_waiting_for_100_continue:
                        self._send(flow, conn, response(100, [], informational=True))
                        served.append({"status": 100, "kind": "continue", "content_type": None, "bytes": 0})
                    chunk = next(chunks, None)
                    if chunk is None:
                        break
                    conn.receive_data(chunk)
                elif isinstance(event, h11.Request):
                    current = _Request(event, flow)
                elif isinstance(event, h11.Data) and current is not None:
                    current.add(event.data)
                elif isinstance(event, h11.EndOfMessage) and current is not None:
                    requests.append(current.as_dict())
                    done = current
                    current = None
                    if self._special(flow, conn, done, served, chunks):
                        return
                    self._respond(flow, conn, done, served)
                    if conn.our_state is h11.MUST_CLOSE or conn.their_state is not h11.DONE:
                        return
                    conn.start_next_cycle()
                elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                    return
        except h11.RemoteProtocolError as exc:
            flow.fields["http_error"] = str(exc)[:200]
            if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                with contextlib.suppress(OSError, h11.LocalProtocolError):
                    self._send(flow, conn, response(400, [("Content-Length", "0"), ("Connection", "close")]))  # fmt: skip
                    served.append({"status": 400, "kind": "error", "content_type": None, "bytes": 0})
            for _chunk in chunks:
                pass  # keep reading what comes, as the raw responder would
        finally:
            if current is not None:
                # Timed out or reset mid-request: record it, and still answer while we can.
                requests.append(current.as_dict())
                if conn.our_state is h11.SEND_RESPONSE:
                    with contextlib.suppress(OSError, h11.LocalProtocolError):
                        self._respond(flow, conn, current, served, close=True)

    def _special(
        self,
        flow: Flow,
        conn: h11.Connection,
        req: _Request,
        served: list[dict[str, Any]],
        chunks: Iterator[bytes],
    ) -> bool:
        """DoH, WebSocket and CONNECT. True when the connection was handed over (serving ends)."""
        if req.method == "CONNECT":
            self._send(
                flow, conn, h11.Response(status_code=200, headers=[], reason=b"Connection established")
            )
            served.append({"status": 200, "kind": "connect", "content_type": None, "bytes": 0})
            leftover = conn.trailing_data[0]
            if self.tunnel is not None and not leftover:
                self.tunnel(flow)
            else:
                flow.cap.keep(leftover)
                for _chunk in chunks:
                    pass
            return True
        if is_upgrade(req.headers):
            serve_websocket(flow, conn, req.headers, served)
            return True
        return False

    def _respond(
        self,
        flow: Flow,
        conn: h11.Connection,
        req: _Request,
        served: list[dict[str, Any]],
        close: bool = False,
    ) -> None:
        answer: Answer | None = None
        if self.doh is not None:
            answer = self.doh.answer(flow, req.method, req.target, req.headers, bytes(req.body))
        if answer is None:
            answer = choose(req.method, req.target, req.headers, self.marker)
        close = close or req.headers.get("connection", "").lower() == "close"
        headers = response_headers(answer, close)
        status = answer.status
        send_body = bool(answer.body) and req.method != "HEAD" and status not in (204, 304)
        # One write per response: separate small writes of head and body meet Nagle and the
        # client's delayed ACK (measured: +40 ms per intercepted POST).
        data = conn.send(response(status, headers)) or b""
        if send_body:
            data += conn.send(h11.Data(data=answer.body)) or b""
        data += conn.send(h11.EndOfMessage()) or b""
        flow.conn.sendall(data)
        served.append(answer.summary(sent_body=send_body))

    @staticmethod
    def _send(flow: Flow, conn: h11.Connection, event: Any) -> None:
        data = conn.send(event)
        if data:
            flow.conn.sendall(data)
