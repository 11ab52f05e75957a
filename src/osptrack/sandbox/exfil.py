"""Find honeytoken values in what the fake network captured.

A bait value counts as exfiltrated when it shows up in a flow's captured bytes (TCP/UDP
`first_bytes`) or in a DNS query name, either as-is or in one of the encodings malware uses to
smuggle it: base64 (standard and URL-safe, at any alignment inside a larger blob), base32 (DNS
tunnels), percent/plus URL-encoding, and hex. We decode the *payload* for URL-encoding (one pass) and encode the *token*
for base64/hex, so the search stays linear in the payload size.
"""

from __future__ import annotations

import base64
import binascii
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from typing import Any

# Tokens shorter than this would match by chance in arbitrary payloads.
MIN_TOKEN_LEN = 6


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


def _needles(value: str) -> list[tuple[str, bytes, bool]]:
    """(encoding, needle, case_insensitive) for one token value."""
    raw = value.encode()
    needles: list[tuple[str, bytes, bool]] = [("raw", raw, False), ("hex", raw.hex().encode(), True)]
    for core in _cores(raw, base64.b64encode, 3, 6):
        needles.append(("base64", core, False))
        urlsafe = core.replace(b"+", b"-").replace(b"/", b"_")
        if urlsafe != core:
            needles.append(("base64", urlsafe, False))
    # base32 is what DNS tunnels use (case-insensitive alphabet, fits in labels).
    needles += [("base32", core, True) for core in _cores(raw, base64.b32encode, 5, 5)]
    return needles


def _haystacks(record: Mapping[str, Any]) -> list[tuple[str, bytes]]:
    """(how it was read, bytes) for one network.jsonl record."""
    kind = record.get("kind")
    if kind == "dns":
        qname = str(record.get("qname") or "").encode()
        # DNS names are case-insensitive and we log them lower-cased; labels are joined by dots.
        return [("", qname), ("", qname.replace(b".", b""))]
    payload = record.get("first_bytes")
    if not payload:
        return []
    try:
        data = base64.b64decode(payload, validate=False)
    except (binascii.Error, ValueError):
        return []
    out = [("", data)]
    unquoted = urllib.parse.unquote_plus(data.decode("latin-1")).encode("latin-1")
    if unquoted != data:
        out.append(("url+", unquoted))
    return out


def _flow(record: Mapping[str, Any]) -> dict[str, Any]:
    if record.get("kind") == "dns":
        return {"kind": "dns", "qname": record.get("qname"), "server": record.get("server")}
    return {"kind": record.get("kind"), "dst": record.get("dst"), "dst_port": record.get("dst_port")}


def find_tokens(records: Iterable[Mapping[str, Any]], tokens: Mapping[str, str]) -> list[dict[str, Any]]:
    """One finding per (token kind, record): `{"kind", "phase", "encoding", "flow"}`.

    `tokens` maps a bait kind (e.g. `aws_secret_access_key`) to its planted value. `encoding` is
    `raw`, `url`, `base64`, `base32` or `hex` (`url+base64` etc. when both layers were needed).
    """
    prepared = [
        (kind, _needles(value)) for kind, value in tokens.items() if value and len(value) >= MIN_TOKEN_LEN
    ]
    findings: list[dict[str, Any]] = []
    for record in records:
        is_dns = record.get("kind") == "dns"
        stacks = _haystacks(record)
        if not stacks:
            continue
        for kind, needles in prepared:
            hit = _first_hit(stacks, needles, is_dns)
            if hit is not None:
                findings.append(
                    {"kind": kind, "phase": record.get("phase"), "encoding": hit, "flow": _flow(record)}
                )
    return findings


def _first_hit(
    stacks: list[tuple[str, bytes]], needles: list[tuple[str, bytes, bool]], is_dns: bool
) -> str | None:
    for layer, data in stacks:
        lowered = data.lower()
        for encoding, needle, case_insensitive in needles:
            found = needle.lower() in lowered if case_insensitive or is_dns else needle in data
            if found:
                if layer == "url+":
                    return "url" if encoding == "raw" else f"url+{encoding}"
                return encoding
    return None
