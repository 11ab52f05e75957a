"""HTTP/1.x requests in a captured client stream: each request's body, de-chunked, with its
Content-Type and Content-Encoding as hints for the next decoders.

Parsed with h11 as the server side would, so pipelined and keep-alive requests, chunked
bodies and `Expect: 100-continue` are handled as a real server handles them. The request
line and headers need no decoder: they are in the captured bytes the scanner searches anyway.
A stream h11 rejects (sloppy hand-written clients) falls back to "everything after the first
blank line", so a body is never lost to strictness.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import h11

from osptrack.sandbox.exfil.decoders import MAX_MEMBERS, Blob, parse_headers

_REQUEST_LINE = re.compile(rb"[A-Z][A-Z-]{1,15} \S")
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_HINTS = ("content-type", "content-encoding")
MAX_HEAD = 256 * 1024  # one request head (h11 refuses to buffer more)


def _requests(data: bytes, cap: int) -> Iterator[tuple[dict[str, str], bytes]]:
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
    conn.receive_data(data)
    headers: dict[str, str] = {}
    body = bytearray()
    started = False
    done = 0  # bytes of `data` that complete requests took
    for _ in range(MAX_MEMBERS):
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError:
            # A body h11 did not expect (a POST without Content-Length, sent until close) reads
            # as a broken next request: what follows the last complete request is the body (below).
            break
        if isinstance(event, h11.Request):
            started = True
            headers = {
                k.decode("latin-1"): v.decode("latin-1")
                for k, v in event.headers
                if k in (b"content-type", b"content-encoding")
            }
            body = bytearray()
            if event.method == b"CONNECT":
                return  # what follows is the tunnelled stream (TLS), not a body
        elif isinstance(event, h11.Data):
            body += event.data[: max(0, cap - len(body))]
        elif isinstance(event, h11.EndOfMessage):
            yield headers, bytes(body)
            started = False
            done = len(data) - len(conn.trailing_data[0])
            # Answer as the fake server did, so h11 lets the next request on this connection in.
            conn.send(h11.Response(status_code=200, headers=[("content-length", "0")]))
            conn.send(h11.EndOfMessage())
            try:
                conn.start_next_cycle()
            except h11.LocalProtocolError:
                return
        else:  # NEED_DATA (the capture ends mid-body), PAUSED, ConnectionClosed
            break
    if started:
        if body:
            yield headers, bytes(body)  # the capture ends mid-body
    elif done and (rest := data[done:]):
        # Not trailing_data: h11 may have eaten part of it as a head before giving up.
        yield headers, rest[:cap]  # most likely the body of the request before it


class HttpDecoder:
    name = "http"

    def decode(self, blob: Blob, cap: int) -> Iterator[Blob]:
        data = blob.data
        if blob.depth or not _REQUEST_LINE.match(data) or data.startswith(b"CONNECT "):
            return  # only the captured stream itself is a conversation; CONNECT tunnels TLS
        got = False
        try:
            for headers, body in _requests(data, cap):
                got = True
                if body:
                    yield blob.child(body, None, headers)
        except h11.ProtocolError:
            pass
        if not got:
            head_end = _HEAD_END.search(data)
            if head_end is not None and head_end.end() < len(data):
                head = parse_headers(data[: head_end.start()])
                hints = {k: head[k] for k in _HINTS if k in head}
                yield blob.child(data[head_end.end() :][:cap], None, hints)


DECODER = HttpDecoder()
