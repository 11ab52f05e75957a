"""MIME multipart bodies (multipart/form-data uploads, multipart/mixed mail): each part's body,
with its own headers as hints, and its Content-Transfer-Encoding (base64, quoted-printable)
undone.

The boundary comes from the Content-Type hint (HTTP), from a `boundary=` parameter anywhere
in the blob (a mail's headers are inside the SMTP stream), or from a first delimiter line. Parts are split on the delimiter
line by hand: `email` would want the whole message well-formed, a cut capture rarely is.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Iterator

from osptrack.sandbox.exfil.decoders import MAX_MEMBERS, MAX_SNIFFS, Blob, parse_headers

_BOUNDARY = re.compile(rb'boundary="?([^"\r\n;]{1,70})"?', re.IGNORECASE)
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_FIRST_DELIMITER = re.compile(rb"--([!-~]{1,70})\r?\n")


def boundaries(blob: Blob) -> list[bytes]:
    found: list[bytes] = []
    hinted = _BOUNDARY.search(blob.hints.get("content-type", "").encode("latin-1", "replace"))
    if hinted:
        found.append(hinted.group(1).strip())
    # A body that opens with a delimiter line names its boundary itself (hand-built uploads
    # sent without the Content-Type header).
    first = _FIRST_DELIMITER.match(blob.data)
    if first and first.group(1) not in found:
        found.append(first.group(1))
    if b"oundary" not in blob.data and b"OUNDARY" not in blob.data:
        return found  # a plain find first: the case-blind regex is ten times slower on 1 MiB
    for m in _BOUNDARY.finditer(blob.data):
        if len(found) >= MAX_SNIFFS:
            break
        b = m.group(1).strip()
        if b and b not in found:
            found.append(b)
    return found


def parts(data: bytes, boundary: bytes) -> Iterator[tuple[dict[str, str], bytes]]:
    delimiter = b"--" + boundary
    pieces = data.split(delimiter, MAX_MEMBERS + 1)
    for piece in pieces[1 : MAX_MEMBERS + 1]:  # [0] is the preamble (or the headers before it)
        if piece.startswith(b"--"):
            return  # the close delimiter
        head_end = _HEAD_END.search(piece)
        if head_end is None:
            continue
        head = piece[: head_end.start()]
        body = piece[head_end.end() :]
        yield parse_headers(head), body.removesuffix(b"\r\n").removesuffix(b"\n")


class MultipartDecoder:
    name = "multipart"

    def decode(self, blob: Blob, cap: int) -> Iterator[Blob]:
        if b"--" not in blob.data:
            return
        budget = cap
        for boundary in boundaries(blob):
            for headers, body in parts(blob.data, boundary):
                if budget <= 0:
                    return
                body = body[:budget]
                budget -= len(body)
                transfer = headers.get("content-transfer-encoding", "").lower()
                hints: dict[str, str] = {
                    k: headers[k] for k in ("content-type", "content-encoding") if k in headers
                }
                if transfer == "base64":
                    try:
                        body = binascii.a2b_base64(body)  # ignores line breaks, unlike a run search
                        yield blob.child(body, "multipart", hints).child(body, "base64", hints, text=False)
                        continue
                    except binascii.Error:
                        pass
                elif transfer == "quoted-printable":
                    yield blob.child(body, "multipart", hints).child(binascii.a2b_qp(body), "qp", hints)
                    continue
                yield blob.child(body, "multipart", hints)


DECODER = MultipartDecoder()
