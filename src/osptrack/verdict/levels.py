"""From findings to a level and a score: the documented rule (docs/rules.md, "Levels").

- malicious: at least one `high` or `critical` finding from the behavioural rules.
- suspicious: otherwise, at least one `medium` finding, or a `high`/`critical` finding from a
  non-rule source (the classifier's score): a model alone never makes a run malicious.
- benign: everything else (`low` and `informational` findings are shown, never decisive).

The score is a 0-100 summary for sorting: the weights of the findings' severities, added up and
capped at 100, so one critical finding already scores 100 and three medium ones score 60.
"""

from __future__ import annotations

from collections.abc import Iterable

from osptrack.verdict.model import LEVELS, SEVERITIES, Finding

WEIGHTS = {"informational": 0, "low": 5, "medium": 20, "high": 60, "critical": 100}
DECISIVE = ("high", "critical")


def severity_rank(severity: str) -> int:
    return SEVERITIES.index(severity) if severity in SEVERITIES else 0


def level_of(findings: Iterable[Finding]) -> str:
    level = "benign"
    for f in findings:
        if f.severity in DECISIVE and f.source == "rules":
            return "malicious"
        if f.severity in DECISIVE or f.severity == "medium":
            level = "suspicious"
    return level


def score_of(findings: Iterable[Finding]) -> int:
    return min(100, sum(WEIGHTS.get(f.severity, 0) for f in findings))


def at_least(level: str, threshold: str) -> bool:
    """`--fail-on`: is `level` at or above `threshold`?"""
    return LEVELS.index(level) >= LEVELS.index(threshold)
