"""The verdict records written to run.json (`verdict`) and read by reports, hunting and the classifier."""

from __future__ import annotations

from typing import Any

import msgspec

LEVELS = ("benign", "suspicious", "malicious")
SEVERITIES = ("informational", "low", "medium", "high", "critical")


class Evidence(msgspec.Struct, frozen=True, omit_defaults=True):
    """One event, flow or fact behind a finding.

    `ref` points into the run folder: `event:N` is line N (0-based) of events.jsonl, `flow:N` line N
    of network.jsonl, `fact:KEY` a key of run.json. Reports turn it into a link.
    """

    type: str  # event | flow | honeytoken | fact
    summary: str  # one line a person reads
    ref: str | None = None
    t: float | None = None
    phase: str | None = None
    pid: int | None = None
    exe: str | None = None
    argv: list[str] | None = None
    honeytoken: str | None = None  # the token kind, when one was involved
    detail: dict[str, Any] = msgspec.field(default_factory=dict)


class Finding(msgspec.Struct, frozen=True, omit_defaults=True):
    rule: str  # rule id
    title: str  # one line
    severity: str  # one of SEVERITIES
    phase: str
    evidence: list[Evidence]
    evidence_total: int = 0  # how many records matched; evidence keeps the first EVIDENCE_CAP
    tags: list[str] = msgspec.field(default_factory=list)
    source: str = "rules"  # rules | model | any hook's name


class Verdict(msgspec.Struct, frozen=True):
    level: str  # one of LEVELS
    score: int  # 0..100
    findings: list[Finding]
    rules: str  # which rule set judged: "osptrack-<version>/<n> rules"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = msgspec.to_builtins(self)
        return out


def finding_from_dict(data: dict[str, Any]) -> Finding:
    return msgspec.convert(data, Finding)


def verdict_from_dict(data: dict[str, Any]) -> Verdict:
    return msgspec.convert(data, Verdict)
