"""base64 (standard and URL-safe, wrapped or not, any padding), base32 and hex runs, decoded.

The token itself is matched in these encodings by its needles (any alignment) without
decoding; decoding is for what is nested *inside* them: base64 of a gzip body, hex of a zip,
base64 of base64. A run found in text may start a few characters early (a word of
base64-looking letters before it), so long runs are decoded at every alignment; short runs
(too short to hold a compressed secret) are decoded as found and joined into one blob, which
keeps the work per blob to a few children however many runs it has. A decoding that gives
noise (no text, no magic number) is dropped: nothing nested can hide in it.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator

from osptrack.sandbox.exfil.decoders import Blob

_B64_RUN = re.compile(rb"[A-Za-z0-9+/_\-=\r\n]{20,}")
_HEX_RUN = re.compile(rb"[0-9A-Fa-f]{32,}")
_B32_RUN = re.compile(rb"[A-Z2-7]{32,}=*|[a-z2-7]{32,}=*")
_PADDING = re.compile(rb"=+")
_URLSAFE = bytes.maketrans(b"-_", b"+/")
_B32_PAD = {2: 6, 4: 4, 5: 3, 7: 1}  # chars in the last group -> padding
# Bytes a decoding is worth searching further for: mostly text (NUL included, for UTF-16), or
# holding a container's magic number. Decoded noise is neither, and the token itself in the
# encoded text is found by its needles without decoding.
_TEXT = bytes([0, 9, 10, 13, *range(32, 127)])
_MAGICS = (
    b"\x1f\x8b\x08",
    b"PK\x03\x04",
    b"BZh",
    b"\xfd7zXZ\x00",
    b"ustar",
    b"\x78\x9c",
    b"\x78\xda",
    b"\x78\x01",
)
LONG_RUN = 64  # characters: decoded on its own, at every alignment
MAX_LONG_RUNS = 64  # per blob and alphabet; later long runs are decoded as short ones
MAX_RUNS = 8192  # per blob and alphabet (base64 runs, then hex and base32 runs inside them)


def _b64(text: bytes) -> bytes:
    """Decode alphabet-only base64 text of any length (a trailing lone char is dropped)."""
    whole = len(text) - len(text) % 4
    tail = text[whole:]
    out = binascii.a2b_base64(text[:whole]) if whole else b""
    if len(tail) >= 2:
        out += binascii.a2b_base64(tail + b"=" * (4 - len(tail)))
    return out


def _decode_b64(run: bytes, offset: int) -> bytes:
    # '=' inside a run separates concatenated padded segments, each decoded from its own start.
    text = run.translate(_URLSAFE).rstrip(b"=")
    parts = _PADDING.split(text) if b"=" in text else [text]
    parts[0] = parts[0][offset:]
    return b"".join(_b64(p) for p in parts if p)


def _decode_hex(run: bytes, offset: int) -> bytes:
    text = run[offset:]
    return binascii.unhexlify(text[: len(text) - len(text) % 2])


def _decode_b32(run: bytes, offset: int) -> bytes:
    text = run.rstrip(b"=").upper()[offset:]
    whole = len(text) - len(text) % 8
    tail = text[whole:]
    while tail and len(tail) not in _B32_PAD:
        tail = tail[:-1]  # a final group of 1, 3 or 6 chars has no valid padding: drop the extra
    out = base64.b32decode(text[:whole]) if whole else b""
    return out + (base64.b32decode(tail + b"=" * _B32_PAD[len(tail)]) if tail else b"")


_HEX_CHARS = b"0123456789abcdefABCDEF"
_B32_UPPER = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567="
_B32_LOWER = b"abcdefghijklmnopqrstuvwxyz234567="


def _mostly(run: bytes, label: str) -> bool:
    if label == "hex":
        return len(run.translate(None, _HEX_CHARS)) * 10 <= len(run)
    return min(len(run.translate(None, _B32_UPPER)), len(run.translate(None, _B32_LOWER))) * 10 <= len(run)


def worth_searching(data: bytes) -> bool:
    if len(data.translate(None, _TEXT)) * 5 <= len(data):
        return True
    return any(magic in data for magic in _MAGICS)


class BaseNDecoder:
    name = "basen"

    def decode(self, blob: Blob, cap: int) -> Iterator[Blob]:
        budget = cap
        # One regex pass over the blob: hex and base32 alphabets are inside base64's, so their
        # runs are looked for inside the base64 runs only.
        runs = [m.group() for _, m in zip(range(MAX_RUNS), _B64_RUN.finditer(blob.data), strict=False)]
        for label, finder, decode, alignments in (
            ("base64", None, _decode_b64, 4),
            ("hex", _HEX_RUN, _decode_hex, 2),
            ("base32", _B32_RUN, _decode_b32, 1),
        ):
            if finder is None:
                candidates = runs
            else:
                # Only runs mostly of this alphabet: a regex pass over every base64 run costs
                # more than the rest of the scan, and hex glued to base64 text is rare.
                candidates = [
                    m.group() for r in runs if len(r) >= 32 and _mostly(r, label) for m in finder.finditer(r)
                ][:MAX_RUNS]
            long_runs = 0
            short: list[bytes] = []
            for run in candidates:
                if budget <= 0:
                    break
                if label == "base64" and (b"\n" in run or b"\r" in run):
                    run = run.replace(b"\r", b"").replace(b"\n", b"")
                    if len(run) >= 20:
                        # Wrapped text (PEM, MIME): a secret may be cut by a line break.
                        budget -= len(run)
                        yield blob.child(run[:cap], "unwrap")
                if len(run) >= LONG_RUN and long_runs < MAX_LONG_RUNS:
                    long_runs += 1
                    for offset in range(alignments):
                        try:
                            out = decode(run, offset)
                        except (binascii.Error, ValueError):
                            continue
                        if out and budget > 0 and worth_searching(out):
                            budget -= len(out)
                            yield blob.child(out[:cap], label, text=False)
                else:
                    try:
                        short.append(decode(run, 0))
                    except (binascii.Error, ValueError):
                        continue
                    budget -= len(short[-1])
            joined = b"\n".join(s for s in short if s)
            if joined and worth_searching(joined):
                yield blob.child(joined[:cap], label, text=False)


DECODER = BaseNDecoder()
