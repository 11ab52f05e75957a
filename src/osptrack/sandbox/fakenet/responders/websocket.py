"""WebSocket: accept the upgrade (101) and capture the frames the client sends (wsproto's parser).

Pings are answered, a close is echoed; text and binary messages go into the record's `websocket`
list (opcode, size, payload up to the flow's capture limit) and into the token scan.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import h11
from wsproto.frame_protocol import FrameProtocol, Opcode, ParseFailed
from wsproto.utilities import generate_accept_token

from osptrack.sandbox.fakenet.responders.base import Flow

MAX_FRAMES = 1024  # recorded per connection; later frames are still read and scanned


def is_upgrade(headers: Mapping[str, str]) -> bool:
    return headers.get("upgrade", "").lower() == "websocket" and "sec-websocket-key" in headers


def serve_websocket(
    flow: Flow, conn: h11.Connection, headers: Mapping[str, str], served: list[dict[str, Any]]
) -> None:
    accept = generate_accept_token(headers["sec-websocket-key"].encode("latin-1"))
    response = h11.InformationalResponse(
        status_code=101,
        headers=[
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", accept.decode()),
        ],
        reason=b"Switching Protocols",
    )
    flow.conn.sendall(conn.send(response) or b"")
    served.append({"status": 101, "kind": "websocket", "content_type": None, "bytes": 0})
    frames: list[dict[str, Any]] = flow.fields.setdefault("websocket", [])
    proto = FrameProtocol(client=False, extensions=[])
    pending = [conn.trailing_data[0]]
    message = bytearray()

    def handle(data: bytes) -> bool:
        proto.receive_bytes(data)
        for frame in proto.received_frames():
            if frame.opcode is Opcode.CLOSE:
                flow.conn.sendall(proto.close())
                return False
            raw = frame.payload
            if isinstance(raw, tuple):
                continue  # (code, reason): only CLOSE carries these
            payload = raw.encode() if isinstance(raw, str) else bytes(raw)
            if frame.opcode is Opcode.PING:
                flow.conn.sendall(proto.pong(payload))
                continue
            message.extend(payload)
            if frame.message_finished:
                kept = flow.cap.keep(bytes(message))
                if len(frames) < MAX_FRAMES:
                    frames.append({"opcode": frame.opcode.name.lower(), "bytes": len(message),
                                   "data": base64.b64encode(kept).decode(),
                                   "truncated": len(kept) < len(message)})  # fmt: skip
                message.clear()
        return True

    try:
        for data in pending:
            if data and not handle(data):
                return
        for chunk in flow.incoming():
            if not handle(chunk):
                return
    except ParseFailed as exc:
        flow.fields["websocket_error"] = str(exc)[:200]
        for _chunk in flow.incoming():
            pass  # not WebSocket after all: keep capturing, as the raw responder would
