"""Prove exfiltration: find honeytoken values in everything the fake network captured.

A bait value counts as exfiltrated when it shows up in a flow's captured bytes or in DNS
query names, as-is or under any chain of the encodings malware uses to smuggle it: URL and
JSON escapes, base64/base32/hex, gzip/deflate/brotli/zlib/bzip2/xz, zip and tar members,
multipart parts, HTTP bodies (chunked, Content-Encoding), and DNS tunnels (chunks spread over
queries). Findings name the chain (`encoding`: `raw`, `url`, `gzip>base64`, `dns-tunnel>hex`,
...), the token (`kind`) and the flow.

* `Scanner(tokens).scan_record(record, window)` -- one flow, at record time (fakenet);
* `find_tunnels(dns_records, scanner, already)` -- the DNS records of a phase or run, at its end;
* `find_tokens(records, tokens)` -- both over finished records (tests, re-analysis).

Layout: scanner.py (budgets, breadth-first chaining), needles.py (token -> encoded forms),
decoders/ (one module per encoding, behind `Decoder`), dnstunnel.py (query reassembly).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from osptrack.sandbox.exfil.dnstunnel import find_tunnels
from osptrack.sandbox.exfil.needles import MIN_TOKEN_LEN
from osptrack.sandbox.exfil.scanner import Hit, Limits, Scanner, ScanResult

__all__ = ["MIN_TOKEN_LEN", "Hit", "Limits", "ScanResult", "Scanner", "find_tokens", "find_tunnels"]


def find_tokens(records: Iterable[Mapping[str, Any]], tokens: Mapping[str, str]) -> list[dict[str, Any]]:
    """One finding per (token kind, record) `{"kind", "phase", "encoding", "flow", "t"}`, then
    one per token found only by putting DNS queries together. Scanner errors are dropped here;
    the fake network counts them (`FakeNetwork.errors`)."""
    scanner = Scanner(tokens)
    records = list(records)
    findings: list[dict[str, Any]] = []
    for record in records:
        findings += scanner.scan_record(record)[0]
    dns = [r for r in records if r.get("kind") == "dns"]
    if dns:
        findings += find_tunnels(dns, scanner, findings)[0]
    return findings
