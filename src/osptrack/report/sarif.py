"""SARIF 2.1.0: one result per finding, the rules that can fire in tool.driver.rules.

Severity -> SARIF level: critical/high -> error, medium -> warning, low/informational -> note.
`security-severity` (the number GitHub code scanning sorts by) follows the same order.
"""

from __future__ import annotations

from typing import Any

from osptrack import __version__
from osptrack.report.view import RunView
from osptrack.verdict.engine import emitting, load_rules

SCHEMA_URI = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
SARIF_LEVEL = {
    "critical": "error",
    "high": "error",
    "medium": "warning",
    "low": "note",
    "informational": "note",
}
SECURITY_SEVERITY = {"critical": "9.5", "high": "8.0", "medium": "5.0", "low": "2.0", "informational": "0.0"}


def render(view: RunView) -> dict[str, Any]:
    rules = emitting(load_rules())
    extra = {f.rule: f for f in view.verdict.findings if f.rule not in {r.id for r in rules}}
    descriptors: list[dict[str, Any]] = [
        {
            "id": r.id,
            "name": _camel(r.id),
            "shortDescription": {"text": r.title},
            "fullDescription": {"text": r.description or r.title},
            "help": {"text": _help(r.description, r.falsepositives)},
            "defaultConfiguration": {"level": SARIF_LEVEL[r.severity or "informational"]},
            "properties": {
                "tags": ["security", *r.tags],
                "security-severity": SECURITY_SEVERITY[r.severity or "informational"],
                "severity": r.severity,
            },
        }
        for r in rules
    ]
    for rid, f in extra.items():  # findings from hooks (the classifier) get a descriptor too
        descriptors.append(
            {
                "id": rid,
                "shortDescription": {"text": f.title},
                "defaultConfiguration": {"level": SARIF_LEVEL.get(f.severity, "note")},
                "properties": {"tags": ["security", f.source], "severity": f.severity},
            }
        )
    index = {d["id"]: i for i, d in enumerate(descriptors)}
    pkg = view.package
    coords = f"{pkg.get('ecosystem')}/{pkg.get('name')}@{pkg.get('version')}"
    results = []
    for f in view.verdict.findings:
        first = f.evidence[0].summary if f.evidence else ""
        location: dict[str, Any] = {"logicalLocations": [{"name": coords, "kind": "package"}]}
        if pkg.get("archive"):
            location["physicalLocation"] = {"artifactLocation": {"uri": str(pkg["archive"])}}
        results.append(
            {
                "ruleId": f.rule,
                "ruleIndex": index[f.rule],
                "level": SARIF_LEVEL.get(f.severity, "note"),
                "message": {"text": f"{f.title} [{f.phase}]: {first}" if first else f"{f.title} [{f.phase}]"},
                "locations": [location],
                "partialFingerprints": {"osptrack/v1": f"{coords}:{f.rule}:{f.phase}"},
                "properties": {
                    "severity": f.severity,
                    "phase": f.phase,
                    "source": f.source,
                    "evidenceTotal": f.evidence_total or len(f.evidence),
                    "evidence": [e.summary for e in f.evidence],
                },
            }
        )
    return {
        "$schema": SCHEMA_URI,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "osptrack",
                        "version": __version__,
                        "informationUri": "https://github.com/ossf/package-analysis",
                        "rules": descriptors,
                    }
                },
                "invocations": [{"executionSuccessful": True}],
                "results": results,
                "properties": {
                    "package": pkg,
                    "verdict": {"level": view.verdict.level, "score": view.verdict.score},
                },
            }
        ],
    }


def _camel(rid: str) -> str:
    return "".join(part.capitalize() for part in rid.split("-"))


def _help(description: str, falsepositives: tuple[str, ...]) -> str:
    fps = "".join(f"\n- {fp}" for fp in falsepositives)
    return description + (f"\n\nKnown false positives:{fps}" if fps else "")
