"""JSON (and JavaScript) string escapes: `\\uXXXX` with surrogate pairs, `\\/`, `\\n`, `\\xNN`.

A serializer may escape '/' and '+' (both in AWS secrets) or everything non-ASCII; the token
is then only in the payload after unescaping. A regex over bytes: nothing to raise on, and
unescaped text need not be valid JSON (a truncated capture rarely is). Only the pieces that
hold an escape are kept, joined by newlines.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from osptrack.sandbox.exfil.decoders import Blob, pieces_with

_ESCAPES = re.compile(
    rb"\\u([dD][89abAB][0-9a-fA-F]{2})\\u([dD][c-fC-F][0-9a-fA-F]{2})"  # surrogate pair
    rb"|\\u([0-9a-fA-F]{4})"
    rb"|\\x([0-9a-fA-F]{2})"
    rb"|\\([\"\\/bfnrt'])"
)
_SIMPLE = {b'"': b'"', b"\\": b"\\", b"/": b"/", b"b": b"\b", b"f": b"\f", b"n": b"\n", b"r": b"\r",
           b"t": b"\t", b"'": b"'"}  # fmt: skip


def _replace(m: re.Match[bytes]) -> bytes:
    high, low, unit, byte, simple = m.groups()
    if high is not None:
        cp = 0x10000 + ((int(high, 16) - 0xD800) << 10) + (int(low, 16) - 0xDC00)
        return chr(cp).encode()
    if unit is not None:
        # A lone surrogate has no UTF-8 form; surrogatepass keeps it as 3 bytes rather than raising.
        return chr(int(unit, 16)).encode("utf-8", "surrogatepass")
    if byte is not None:
        return bytes([int(byte, 16)])
    return _SIMPLE[simple]


# Quotes and whitespace end a piece (mapped to one byte for a C split); an escaped quote
# splits too, which is harmless: tokens hold no quotes.
_SPLIT = bytes.maketrans(b'" \t\r\x0b\x0c', b"\n" * 6)


class JsonEscapeDecoder:
    name = "json"

    def decode(self, blob: Blob, cap: int) -> Iterator[Blob]:
        if b"\\" not in blob.data:
            return
        # Only the pieces (between quotes and whitespace) that hold an escape are unescaped
        # and kept: the rest of the blob is searched already.
        pieces = pieces_with(blob.data, _ESCAPES, _SPLIT, cap)
        if pieces:
            yield blob.child(b"\n".join(_ESCAPES.sub(_replace, p) for p in pieces)[:cap], "json")


DECODER = JsonEscapeDecoder()
