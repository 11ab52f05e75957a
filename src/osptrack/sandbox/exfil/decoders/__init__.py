"""Decoders: each turns one blob into the blobs hidden inside it (one module per encoding).

A decoder is an object with a `name` (how a failure is reported) and `decode(blob, cap)`,
which yields child blobs, each at most `cap` bytes and labelled with the step that made it
(`gzip`, `base64`, ...); the scanner chains them breadth-first under its budgets. A decoder
returns nothing for input that is not its encoding and must not raise on any bytes; if it
does anyway, the scanner counts the error and goes on with the other decoders.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

# Bomb caps shared by the decoders that expand (compression, archives).
MAX_MEMBERS = 256  # archive members / multipart parts / compressed streams per blob
MAX_SNIFFS = 16  # magic numbers tried per blob (gzip, zip... embedded anywhere)
MAX_PIECES = 65536  # escaped pieces kept per blob (URL, JSON)
INPUT_CHUNK = 64 * 1024  # compressed input fed per call, so damage late in a stream keeps the start


@dataclass(frozen=True, slots=True)
class Blob:
    data: bytes
    chain: tuple[str, ...] = ()  # decoding steps from the captured bytes to here
    hints: Mapping[str, str] = field(default_factory=dict)  # lower-cased header -> value
    folded: bool = False  # lower-cased on the way (DNS names): compare case-insensitively
    depth: int = 0  # decoding steps taken, counting framing steps (HTTP) that add no label

    def child(
        self, data: bytes, label: str | None, hints: Mapping[str, str] | None = None, text: bool = True
    ) -> Blob:
        """A blob decoded from this one. `text`: a textual step (URL, JSON, framing) keeps the
        case folding; a binary step (base64, gzip) yields exact bytes."""
        chain = self.chain if label is None else (*self.chain, label)
        return Blob(data, chain, hints or {}, self.folded and text, self.depth + 1)


class Decoder(Protocol):
    name: str

    def decode(self, blob: Blob, cap: int) -> Iterator[Blob]: ...


def parse_headers(head: bytes) -> dict[str, str]:
    """`Name: value` lines (any bytes, latin-1) into a lower-cased dict; later lines win."""
    out: dict[str, str] = {}
    for line in head.split(b"\n"):
        name, sep, value = line.partition(b":")
        if sep and name.strip():
            out[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    return out


def pieces_with(data: bytes, pattern: re.Pattern[bytes], delimiters: bytes, cap: int) -> list[bytes]:
    """The pieces of `data` (between `delimiters`, a translate table mapping each delimiter to
    a newline) that hold a match of `pattern`, each once, in order, up to `cap` bytes in all.

    Found from the matches outwards with C-level find/rfind, and the search goes on after the
    piece: a blob costs one pass and one Python step per piece, however many escapes it has.
    """
    marked = data.translate(delimiters)
    out: list[bytes] = []
    size = 0
    m = pattern.search(data)
    while m is not None and size < cap and len(out) < MAX_PIECES:
        start = marked.rfind(b"\n", 0, m.start()) + 1
        end = marked.find(b"\n", m.end())
        end = len(data) if end < 0 else end
        out.append(data[start:end])
        size += end - start
        m = pattern.search(data, end)
    return out


def all_decoders() -> tuple[Decoder, ...]:
    from osptrack.sandbox.exfil.decoders import (
        archives,
        basen,
        compression,
        http,
        jsonesc,
        multipart,
        urlenc,
    )

    # Order matters only within one breadth-first level: framing and containers first.
    return (
        http.DECODER,
        multipart.DECODER,
        compression.DECODER,
        archives.DECODER,
        urlenc.DECODER,
        jsonesc.DECODER,
        basen.DECODER,
    )
