"""JSON (and JavaScript) string escapes: `\\uXXXX` with surrogate pairs, `\\/`, `\\n`, `\\xNN`.

A serializer may escape '/' and '+' (both in AWS secrets) or everything non-ASCII; the token
is then only in the payload after unescaping. A regex over bytes: nothing to raise on, and
unescaped text need not be valid JSON (a truncated capture rarely is).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from osptrack.sandbox.exfil.decoders import Blob

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


class JsonEscapeDecoder:
    name = "json"

    def decode(self, blob: Blob, cap: int) -> Iterator[Blob]:
        if b"\\" not in blob.data:
            return
        out = _ESCAPES.sub(_replace, blob.data)
        if out != blob.data:
            yield blob.child(out[:cap], "json")


DECODER = JsonEscapeDecoder()
