"""Recognising what a client speaks from its first bytes: HTTP/1.x request heads and TLS ClientHellos.

These parse the *captured* bytes for the record (`http`, `tls_sni`); they never drive a conversation
on their own, so a malformed or truncated head only costs a field, never a flow.
"""

from __future__ import annotations

import re
from typing import Any

HTTP_REQUEST_LINE = re.compile(rb"^([A-Z][A-Z-]{1,15}) (\S{1,8192}) HTTP/\d(?:\.\d)?\r?\n")


def parse_http_request(data: bytes) -> dict[str, Any] | None:
    """`{"method", "path", "host"}` from the start of an HTTP/1.x request, or None."""
    m = HTTP_REQUEST_LINE.match(data)
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


def http_request_complete(data: bytes, total: int) -> tuple[bool, bool]:
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


def tls_handshake(data: bytes) -> tuple[bytes, bool]:
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
    hs, _ = tls_handshake(data)
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
