"""What one honeytoken looks like in a blob: as-is, hex, base64 or base32 at any alignment.

We encode the *token* (a few dozen needles) rather than decode every possible run of the
payload, so matching one blob is a fixed number of substring searches, linear in its size.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from dataclasses import dataclass

# Tokens shorter than this would match by chance in arbitrary payloads.
MIN_TOKEN_LEN = 6


@dataclass(frozen=True, slots=True)
class Needle:
    form: str  # "raw", "hex", "base64" or "base32": the last step of the decoding chain
    text: bytes  # lower-cased when `folded`
    folded: bool  # compare against the lower-cased blob (hex and base32 are case-free alphabets)


def _cores(token: bytes, encode: Callable[[bytes], bytes], group: int, bits: int) -> list[bytes]:
    """Substrings present in any base64/base32 text that encodes `token`, whatever its offset.

    Prefixing k filler bytes shifts the token to offset k (mod the encoding's byte group); the
    characters that mix filler or trailing bits with token bits are cut off, the rest is fixed
    for that alignment.
    """
    cores: list[bytes] = []
    for k in range(group):
        enc = encode(b"\0" * k + token)
        start = (k * 8 + bits - 1) // bits  # first char built only from token bits
        end = (k + len(token)) * 8 // bits  # chars fully covered by token bits
        core = enc[start:end]
        if len(core) >= MIN_TOKEN_LEN:
            cores.append(core)
    return cores


def needles_for(value: str) -> tuple[Needle, ...]:
    raw = value.encode()
    out = [Needle("raw", raw, False), Needle("hex", raw.hex().encode(), True)]
    for core in _cores(raw, base64.b64encode, 3, 6):
        out.append(Needle("base64", core, False))
        urlsafe = core.replace(b"+", b"-").replace(b"/", b"_")
        if urlsafe != core:
            out.append(Needle("base64", urlsafe, False))
    # base32 is what DNS tunnels use (case-insensitive alphabet, fits in labels).
    out += [Needle("base32", core.lower(), True) for core in _cores(raw, base64.b32encode, 5, 5)]
    return tuple(out)


class TokenSet:
    """The needles of every usable token, and the search of one blob for them."""

    def __init__(self, tokens: Mapping[str, str]) -> None:
        self.needles: dict[str, tuple[Needle, ...]] = {
            kind: needles_for(value)
            for kind, value in tokens.items()
            if value and len(value) >= MIN_TOKEN_LEN
        }

    def __len__(self) -> int:
        return len(self.needles)

    def match(self, data: bytes, folded: bool, skip: Mapping[str, object]) -> list[tuple[str, str]]:
        """(token kind, needle form) for every token not in `skip` that `data` contains.

        `folded`: the blob was lower-cased on the way (DNS names), so every needle is compared
        case-insensitively; base64 then still matches, only with a lower chance of being unique.
        """
        hits: list[tuple[str, str]] = []
        lowered: bytes | None = None
        for kind, needles in self.needles.items():
            if kind in skip:
                continue
            for needle in needles:
                if needle.folded or folded:
                    if lowered is None:
                        lowered = data.lower()
                    found = (needle.text if needle.folded else needle.text.lower()) in lowered
                else:
                    found = needle.text in data
                if found:
                    hits.append((kind, needle.form))
                    break
        return hits
