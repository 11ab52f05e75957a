"""Compressed bodies: `Content-Encoding` gzip, deflate (zlib or raw) and br, and gzip, zlib,
bzip2 and xz streams recognised by their magic numbers wherever they start.

Every stream is inflated incrementally with an output cap (the decompression-bomb bound) and
fed in chunks, so a stream damaged or cut off by the capture cap still yields what came
before the damage. Brotli has no magic number: it is tried only when the headers say `br`.
"""

from __future__ import annotations

import bz2
import lzma
import zlib
from collections.abc import Callable, Iterator
from typing import Any

from osptrack.sandbox.exfil.decoders import INPUT_CHUNK, MAX_MEMBERS, MAX_SNIFFS, Blob

try:  # pinned in pyproject; the scanner still runs (without br) where it is missing
    import brotli
except ImportError:  # pragma: no cover - brotli is a dependency
    brotli = None

GZIP_MAGIC = b"\x1f\x8b\x08"
BZ2_MAGIC = b"BZh"
XZ_MAGIC = b"\xfd7zXZ\x00"


def _chunks(data: bytes) -> Iterator[bytes]:
    for i in range(0, len(data), INPUT_CHUNK):
        yield data[i : i + INPUT_CHUNK]


def _zlib(data: bytes, wbits: int, cap: int) -> tuple[bytes, bytes | None]:
    """(output, bytes after the stream or None if it did not end). Partial output on damage."""
    d = zlib.decompressobj(wbits)
    out = bytearray()
    pos = 0
    buf = b""
    try:
        while len(out) < cap:
            if not buf:
                if pos >= len(data):
                    break
                buf, pos = data[pos : pos + INPUT_CHUNK], pos + INPUT_CHUNK
            out += d.decompress(buf, cap - len(out))
            if d.eof:
                return bytes(out), d.unused_data + data[pos:]
            buf = d.unconsumed_tail
    except zlib.error:
        pass
    return bytes(out[:cap]), None


def gunzip(data: bytes, cap: int) -> bytes:
    """All members of a gzip stream (`cat a.gz b.gz` is one valid gzip file)."""
    out = b""
    rest: bytes | None = data
    members = 0
    while rest and rest.startswith(GZIP_MAGIC) and len(out) < cap and members < MAX_MEMBERS:
        members += 1
        part, rest = _zlib(rest, 31, cap - len(out))
        out += part
    return out


def inflate(data: bytes, cap: int) -> bytes:
    """HTTP `deflate`: zlib-wrapped as the RFC says, or raw deflate as some servers send it."""
    out, _ = _zlib(data, 15, cap)
    return out or _zlib(data, -15, cap)[0]


def _stream(make: Callable[[], Any], data: bytes, cap: int) -> bytes:
    """bz2/lzma decompressor objects (same API): incremental, capped, partial on damage."""
    d = make()
    out = bytearray()
    try:
        for chunk in _chunks(data):
            out += d.decompress(chunk, cap - len(out))
            while not d.eof and not d.needs_input and len(out) < cap:
                out += d.decompress(b"", cap - len(out))
            if d.eof or len(out) >= cap:
                break
    except (OSError, EOFError, lzma.LZMAError, ValueError):
        pass
    return bytes(out[:cap])


def unbrotli(data: bytes, cap: int) -> bytes:
    if brotli is None:
        return b""
    d = brotli.Decompressor()
    out = bytearray()
    try:
        for chunk in _chunks(data):
            out += d.process(chunk, output_buffer_limit=cap - len(out))
            while not d.can_accept_more_data() and len(out) < cap:
                out += d.process(b"", output_buffer_limit=cap - len(out))
            if d.is_finished() or len(out) >= cap:
                break
    except brotli.error:
        pass
    return bytes(out[:cap])


CODINGS: dict[str, Callable[[bytes, int], bytes]] = {
    "gzip": gunzip,
    "x-gzip": gunzip,
    "deflate": inflate,
    "br": unbrotli,
    "bzip2": lambda d, cap: _stream(bz2.BZ2Decompressor, d, cap),
    "xz": lambda d, cap: _stream(lzma.LZMADecompressor, d, cap),
}
LABELS = {"x-gzip": "gzip"}


def _is_zlib(data: bytes) -> bool:
    return len(data) >= 2 and data[0] & 0x0F == 8 and data[0] >> 4 <= 7 and (data[0] << 8 | data[1]) % 31 == 0


def _find_all(data: bytes, magic: bytes) -> Iterator[int]:
    pos = data.find(magic)
    for _ in range(MAX_SNIFFS):
        if pos < 0:
            return
        yield pos
        pos = data.find(magic, pos + 1)


class CompressionDecoder:
    name = "compression"

    def decode(self, blob: Blob, cap: int) -> Iterator[Blob]:
        data = blob.data
        # Content-Encoding lists codings in the order applied: undo the last one first.
        codings = [c.strip().lower() for c in blob.hints.get("content-encoding", "").split(",") if c.strip()]
        while codings and codings[-1] == "identity":
            codings.pop()
        if codings and codings[-1] in CODINGS:
            coding = codings.pop()
            out = CODINGS[coding](data, cap)
            if out:
                yield blob.child(
                    out, LABELS.get(coding, coding), {"content-encoding": ", ".join(codings)}, text=False
                )
        for pos in _find_all(data, GZIP_MAGIC):
            out = gunzip(data[pos:], cap)
            if out:
                yield blob.child(out, "gzip", text=False)
        if _is_zlib(data):
            out, _ = _zlib(data, 15, cap)
            if out:
                yield blob.child(out, "zlib", text=False)
        for pos in _find_all(data, BZ2_MAGIC):
            if data[pos + 3 : pos + 4].isdigit() and data[pos + 4 : pos + 10] == b"1AY&SY":
                out = CODINGS["bzip2"](data[pos:], cap)
                if out:
                    yield blob.child(out, "bzip2", text=False)
        for pos in _find_all(data, XZ_MAGIC):
            out = CODINGS["xz"](data[pos:], cap)
            if out:
                yield blob.child(out, "xz", text=False)


DECODER = CompressionDecoder()
