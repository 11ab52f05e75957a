"""Percent and plus URL-encoding, decoded on bytes so any escape (`%ff`, `%00`) is safe.

`urllib.parse.unquote_plus` on text had to round-trip through latin-1 and raised on escapes
that decode to other code points; `unquote_to_bytes` never leaves bytes. Only the pieces that
hold an escape (between URL and text delimiters) are decoded and kept, joined by newlines:
the rest of the blob is searched already. '+' stays '+' (not a form's space): a space never
makes a token appear, while base64 inside a form needs its '+'.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterator

from osptrack.sandbox.exfil.decoders import Blob, pieces_with

_ESCAPE = re.compile(rb"%[0-9A-Fa-f]{2}")
# Delimiters of URL pieces and of the text around them, all mapped to one byte for a C split.
_SPLIT = bytes.maketrans(b" \t\r\x0b\x0c&=?;,\"'<>", b"\n" * 14)


class UrlDecoder:
    name = "url"

    def decode(self, blob: Blob, cap: int) -> Iterator[Blob]:
        pieces = pieces_with(blob.data, _ESCAPE, _SPLIT, cap)
        if pieces:
            yield blob.child(b"\n".join(urllib.parse.unquote_to_bytes(p) for p in pieces)[:cap], "url")


DECODER = UrlDecoder()
