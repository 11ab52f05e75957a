"""Verdicts: behavioural rules (Sigma-style YAML in rules/) judge one run from its event log.

    from osptrack.verdict import judge, judge_run_dir, rejudge_run_dir
    verdict = judge_run_dir(Path("runs/x"))                   # read-only
    verdict = rejudge_run_dir(Path("runs/x"), extra_findings=[model_finding])   # rewrites run.json

The hook for other finding sources (the classifier's score): pass `extra_findings`, a list of
`Finding` (or dicts of the same shape) with `source` set to the producer's name, e.g. "model".
They join the rule findings before the level is decided; a non-rule finding can make a run
suspicious but never malicious on its own (levels.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from osptrack import __version__
from osptrack import ecosystems as eco_registry
from osptrack.errors import BadInput
from osptrack.jsonio import atomic_write_json
from osptrack.verdict import engine, facts, levels
from osptrack.verdict.facts import RunData
from osptrack.verdict.model import Evidence, Finding, Verdict, finding_from_dict, verdict_from_dict

__all__ = [
    "Evidence",
    "Finding",
    "RunData",
    "Verdict",
    "judge",
    "judge_run_dir",
    "load_verdict",
    "rejudge_run_dir",
    "verdict_from_dict",
]


def judge(run: RunData, extra_findings: Iterable[Finding | dict[str, Any]] = ()) -> Verdict:
    """Evaluate every rule over one run's records; `extra_findings` come from other sources."""
    ecosystem = (run.run_info.get("package") or {}).get("ecosystem") or (run.result.get("Package") or {}).get(
        "Ecosystem"
    )
    if not ecosystem:
        raise BadInput("run.json names no package ecosystem")
    eco = eco_registry.get(str(ecosystem))
    rules = engine.load_rules()
    records = facts.iter_records(run, eco, toolchain_records=engine.needs_toolchain(rules))
    findings = engine.evaluate_records(records, rules)
    findings.extend(f if isinstance(f, Finding) else finding_from_dict(f) for f in extra_findings)
    return Verdict(
        level=levels.level_of(findings),
        score=levels.score_of(findings),
        findings=findings,
        rules=f"osptrack-{__version__}/{len(engine.emitting(rules))} rules",
    )


def judge_run_dir(run_dir: Path, extra_findings: Iterable[Finding | dict[str, Any]] = ()) -> Verdict:
    if not (run_dir / "run.json").is_file():
        raise BadInput(f"{run_dir} is not a run folder (no run.json)")
    return judge(RunData.load(run_dir, lazy=True), extra_findings)


def load_verdict(run_dir: Path) -> Verdict:
    """The verdict stored in run.json, or one computed now for runs made before verdicts existed."""
    import orjson

    try:
        info = orjson.loads((run_dir / "run.json").read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise BadInput(f"{run_dir} is not a run folder: {exc}") from exc
    if isinstance(info.get("verdict"), dict):
        return verdict_from_dict(info["verdict"])
    return judge_run_dir(run_dir)


def rejudge_run_dir(run_dir: Path, extra_findings: Iterable[Finding | dict[str, Any]] = ()) -> Verdict:
    """Judge again (current rules plus `extra_findings`) and rewrite run.json's `verdict` atomically."""
    run = RunData.load(run_dir, lazy=True)
    verdict = judge(run, extra_findings)
    atomic_write_json(run_dir / "run.json", run.run_info | {"verdict": verdict.to_dict()})
    return verdict
