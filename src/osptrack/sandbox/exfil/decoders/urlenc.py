"""Percent and plus URL-encoding, decoded on bytes so any escape (`%ff`, `%00`) is safe.

`urllib.parse.unquote_plus` on text had to round-trip through latin-1 and raised on escapes
that decode to other code points; `unquote_to_bytes` never leaves bytes.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterator

from osptrack.sandbox.exfil.decoders import Blob

_ESCAPE = re.compile(rb"%[0-9A-Fa-f]{2}")


class UrlDecoder:
    name = "url"

    def decode(self, blob: Blob, cap: int) -> Iterator[Blob]:
        data = blob.data
        if not _ESCAPE.search(data) and b"+" not in data:
            return
        # Plus means space in forms, but base64 secrets contain a literal '+': try both readings.
        plain = urllib.parse.unquote_to_bytes(data)
        if plain != data:
            yield blob.child(plain[:cap], "url")
        if b"+" in data:
            plus = urllib.parse.unquote_to_bytes(data.replace(b"+", b" "))
            if plus != plain:
                yield blob.child(plus[:cap], "url")


DECODER = UrlDecoder()
