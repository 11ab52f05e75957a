"""DNS tunnels: a secret cut into chunks, one chunk per query, under one parent domain.

Run over the DNS records of a phase or run (not one record at a time, as the flow scanner
is). For every parent -- each suffix of 2 to 4 labels, and the name minus its leftmost label
-- the labels left of it are taken from the queries under it in time order (each distinct
name once: clients ask A and AAAA for the same name), concatenated, and the result scanned
like a flow: `abcd.t.evil.example` then `ef01.t.evil.example` gives `abcdef01` under
`t.evil.example`. A tunnel that numbers its chunks (`0.abcd.evil.example`) is read three
ways: all the labels left of the parent, the leftmost one only, and the one next to the
parent only. Names are logged lower-cased, so the search folds case; hex and base32 (the
tunnel alphabets) are unaffected.

Bounds: at most MAX_GROUPS parents (those with the most distinct chunks first), MAX_GROUP_BYTES
of labels each, and a small scanner budget (TUNNEL_LIMITS) per parent.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from osptrack.sandbox.exfil.scanner import Limits, Scanner

MAX_PARENT_LABELS = 4
MAX_GROUPS = 256
MAX_GROUP_BYTES = 64 * 1024
TUNNEL_LIMITS = Limits(max_depth=4, derived_bytes=1024 * 1024, decode_bytes=512 * 1024, max_blobs=256)


def chunk_groups(
    records: Iterable[Mapping[str, Any]],
) -> dict[tuple[str, str], list[tuple[str, Mapping[str, Any]]]]:
    """(parent, reading) -> [(chunk, record)] in time order, for parents with 2+ distinct chunks."""
    seen: set[str] = set()
    groups: dict[tuple[str, str], list[tuple[str, Mapping[str, Any]]]] = defaultdict(list)
    for record in sorted(records, key=lambda r: r.get("t") or 0.0):
        name = str(record.get("qname") or "").rstrip(".").lower()
        if record.get("kind") != "dns" or not name or name in seen:
            continue
        seen.add(name)
        labels = name.split(".")
        n = len(labels)
        sizes = {*range(2, min(n - 1, MAX_PARENT_LABELS) + 1)}
        if n >= 3:
            sizes.add(n - 1)
        for k in sizes:
            parent, left = ".".join(labels[n - k :]), labels[: n - k]
            groups[(parent, "all")].append(("".join(left), record))
            if len(left) > 1:
                groups[(parent, "first")].append((left[0], record))
                groups[(parent, "last")].append((left[-1], record))
    return {key: chunks for key, chunks in groups.items() if len({c for c, _ in chunks}) >= 2}


def find_tunnels(
    records: Iterable[Mapping[str, Any]],
    scanner: Scanner,
    already: Iterable[Mapping[str, Any]] = (),
) -> tuple[list[dict[str, Any]], list[str]]:
    """(findings, error reasons): tokens found only once the queries are put together.

    `already`: findings of the per-record scan; a token already proven by one query under a
    parent is not reported again as a tunnel there.
    """
    by_name: dict[str, set[str]] = defaultdict(set)
    for f in already:
        flow = f.get("flow") or {}
        if flow.get("kind") == "dns":
            by_name[str(flow.get("qname"))].add(str(f.get("kind")))
    # Most chunks first; among equals the most specific parent, which keeps a blob read twice.
    groups = sorted(chunk_groups(records).items(), key=lambda kv: (-len(kv[1]), -kv[0][0].count(".")))
    groups = groups[:MAX_GROUPS]
    errors: list[str] = []
    candidates: list[tuple[str, str, str, list[tuple[str, Mapping[str, Any]]]]] = []
    scanned: set[bytes] = set()
    for (parent, _reading), chunks in groups:
        blob = "".join(c for c, _ in chunks).encode("utf-8", "replace")[:MAX_GROUP_BYTES]
        if blob in scanned:
            continue
        scanned.add(blob)
        try:
            result = scanner.scan(blob, folded=True, chain=("dns-tunnel",), limits=TUNNEL_LIMITS)
        except Exception as exc:  # noqa: BLE001 - never lose the run's findings to one group
            errors.append(f"exfil/dnstunnel: {type(exc).__name__}")
            continue
        errors += result.errors
        single = set().union(*(by_name.get(str(r.get("qname")), set()) for _, r in chunks))
        candidates += [(hit.kind, hit.chain, parent, chunks) for hit in result.hits if hit.kind not in single]
    # One tunnel shows under each of its parents (t.evil.example, evil.example, where the second
    # also holds the domain's other names): report it once, under the most specific parent.
    candidates.sort(key=lambda c: -c[2].count("."))
    findings: list[dict[str, Any]] = []
    reported: dict[str, list[str]] = defaultdict(list)  # token kind -> parents
    for kind, chain, parent, chunks in candidates:
        if any(p == parent or p.endswith("." + parent) or parent.endswith("." + p) for p in reported[kind]):
            continue
        reported[kind].append(parent)
        last = chunks[-1][1]
        findings.append({"kind": kind, "phase": last.get("phase"), "encoding": chain,
                         "flow": {"kind": "dns-tunnel", "parent": parent, "queries": len(chunks),
                                  "first_qname": chunks[0][1].get("qname"), "qname": last.get("qname")},
                         "t": last.get("t")})  # fmt: skip
    return findings, errors
