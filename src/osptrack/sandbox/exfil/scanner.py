"""The exfiltration scanner: search a captured flow, and everything decoded from it, for honeytokens.

The captured bytes are searched whole (no window), then handed to every decoder
(decoders/); what they yield is searched and decoded again, breadth first, so the first
chain that proves a token is the shortest one (`gzip>base64`: gunzipped, then the token was
there in base64). The work per flow is bounded by `Limits`:

* every byte of the capture is searched once per needle (about 15 needles per token);
* decoders may add at most `derived_bytes` (16 MiB) in all, each call at most `decode_bytes`,
  so a decompression bomb or a base64-of-base64 tower stops at the budget;
* at most `max_depth` (6) decoding steps deep and `max_blobs` (4096) blobs per flow.

So one scan costs O(needles x (capture + 16 MiB)) substring searches, whatever the input.
A decoder that raises does not stop the scan: its error is returned as a reason
(`exfil/<decoder>: <Exception>`) for `network.errors`, and the other decoders go on.
"""

from __future__ import annotations

import base64
import binascii
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from osptrack.sandbox.exfil.decoders import Blob, Decoder, all_decoders
from osptrack.sandbox.exfil.needles import TokenSet


@dataclass(frozen=True, slots=True)
class Limits:
    max_depth: int = 6
    derived_bytes: int = 16 * 1024 * 1024
    decode_bytes: int = 8 * 1024 * 1024
    max_blobs: int = 4096


@dataclass(frozen=True, slots=True)
class Hit:
    kind: str  # the honeytoken's kind, e.g. aws_secret_access_key
    chain: str  # decoding steps, then the token's form: "raw", "gzip", "url>base64", ...


@dataclass(frozen=True, slots=True)
class ScanResult:
    hits: tuple[Hit, ...] = ()
    errors: tuple[str, ...] = ()  # one reason per decoder failure
    exhausted: bool = False  # a budget ran out before every decoding was tried
    blobs: int = 0
    derived: int = field(default=0)  # bytes the decoders produced


def chain_label(chain: tuple[str, ...], form: str) -> str:
    steps = (*chain, form) if form != "raw" else chain
    return ">".join(steps) or "raw"


class Scanner:
    """Prepared for one run's tokens; thread-safe (holds no per-scan state)."""

    def __init__(
        self,
        tokens: Mapping[str, str],
        limits: Limits | None = None,
        decoders: tuple[Decoder, ...] | None = None,
    ) -> None:
        self.tokens = TokenSet(tokens)
        self.limits = limits or Limits()
        self._decoders = decoders
        self._decoders_lock = threading.Lock()

    @property
    def decoders(self) -> tuple[Decoder, ...]:
        """The decoders, imported with the first scan (h11, the archive and compression readers):
        a run's scanner is made before its first phase, its first scan comes during it."""
        if self._decoders is None:
            with self._decoders_lock:
                if self._decoders is None:
                    self._decoders = all_decoders()
        return self._decoders

    def scan(
        self,
        data: bytes,
        hints: Mapping[str, str] | None = None,
        *,
        folded: bool = False,
        chain: tuple[str, ...] = (),
        limits: Limits | None = None,
    ) -> ScanResult:
        """Every token found in `data` or in what the decoders find inside it."""
        if not len(self.tokens) or not data:
            return ScanResult()
        lim = limits or self.limits
        found: dict[str, str] = {}
        errors: list[str] = []
        seen = {(len(data), hash(data))}
        queue = deque([Blob(data, chain, dict(hints or {}), folded)])
        left = lim.derived_bytes
        blobs = 0
        exhausted = False
        while queue and len(found) < len(self.tokens):
            blob = queue.popleft()
            blobs += 1
            for kind, form in self.tokens.match(blob.data, blob.folded, found):
                found[kind] = chain_label(blob.chain, form)
            if blob.depth >= lim.max_depth:
                continue
            for decoder in self.decoders:
                if left <= 0 or blobs + len(queue) >= lim.max_blobs:
                    exhausted = True
                    break
                try:
                    for child in decoder.decode(blob, min(lim.decode_bytes, left)):
                        key = (len(child.data), hash(child.data))
                        if not child.data or key in seen:
                            continue
                        seen.add(key)
                        left -= len(child.data)
                        queue.append(child)
                        if left <= 0 or blobs + len(queue) >= lim.max_blobs:
                            exhausted = True
                            break
                except Exception as exc:  # noqa: BLE001 - a decoder bug must not lose the flow
                    errors.append(f"exfil/{decoder.name}: {type(exc).__name__}")
        hits = tuple(Hit(kind, how) for kind, how in found.items())
        return ScanResult(hits, tuple(errors), exhausted, blobs, lim.derived_bytes - left)

    def scan_record(
        self, record: Mapping[str, Any], window: bytes | None = None
    ) -> tuple[list[dict[str, Any]], list[str]]:
        """(findings, error reasons) for one network.jsonl record; never raises.

        `window` is everything the flow sent as captured (the record's `first_bytes` keeps only
        its start); without it `first_bytes` is scanned. DNS names are scanned as logged
        (lower-cased) and with their labels joined, so a token split over labels is found.
        """
        try:
            if record.get("kind") == "dns":
                qname = str(record.get("qname") or "").encode("utf-8", "replace")
                result = self.scan(qname + b"\n" + qname.replace(b".", b""), folded=True)
            else:
                data = window
                if data is None:
                    payload = record.get("first_bytes")
                    data = base64.b64decode(payload, validate=False) if payload else b""
                result = self.scan(data)
        except (binascii.Error, ValueError, TypeError) as exc:
            return [], [f"exfil/record: {type(exc).__name__}"]
        except Exception as exc:  # noqa: BLE001 - the scanner itself must never lose the record
            return [], [f"exfil/scanner: {type(exc).__name__}"]
        findings = [
            {"kind": hit.kind, "phase": record.get("phase"), "encoding": hit.chain, "flow": flow_of(record),
             "t": record.get("t")}
            for hit in result.hits
        ]  # fmt: skip
        return findings, list(result.errors)


def flow_of(record: Mapping[str, Any]) -> dict[str, Any]:
    if record.get("kind") == "dns":
        return {"kind": "dns", "qname": record.get("qname"), "server": record.get("server")}
    return {"kind": record.get("kind"), "dst": record.get("dst"), "dst_port": record.get("dst_port")}
