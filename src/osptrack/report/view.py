"""One run folder, read once into what every report format shows: summary, verdict, process tree,
per-phase timeline, flows and honeytokens. Formats (sarif.py, markdown.py, html.py) only render it."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from osptrack import ecosystems as eco_registry
from osptrack import summary as summary_mod
from osptrack.errors import BadInput
from osptrack.trace.events import Event
from osptrack.trace.tree import ProcessNode, build_tree
from osptrack.verdict import RunData, Verdict, judge
from osptrack.verdict.facts import payload_text
from osptrack.verdict.model import verdict_from_dict

PHASES = ("install", "import", "execute")
TIMELINE_CAP = 1500  # events shown per phase (evidence events are always shown on top of this)


@dataclass
class RunView:
    run_dir: Path
    run: RunData
    verdict: Verdict
    summary: dict[str, Any]
    evidence_refs: set[str] = field(default_factory=set)
    toolchain_pids: set[int] = field(default_factory=set)  # every event of the pid is the toolchain's
    toolchain_events: set[int] = field(default_factory=set)  # indexes into run.events

    @property
    def package(self) -> dict[str, Any]:
        pkg: dict[str, Any] = self.run.run_info.get("package") or {}
        return pkg

    @property
    def title(self) -> str:
        p = self.package
        return f"{p.get('ecosystem', '?')} {p.get('name', '?')} {p.get('version') or ''}".strip()

    def phases(self) -> list[str]:
        """install, import, execute order (run.json's keys are sorted alphabetically)."""
        seen = set((self.run.run_info.get("phases") or {}).keys()) | {e.phase for e in self.run.events}
        return sorted(seen, key=phase_order)

    def trees(self) -> dict[str, tuple[list[int], dict[int, ProcessNode]]]:
        """phase -> (root pids, nodes)."""
        out: dict[str, tuple[list[int], dict[int, ProcessNode]]] = {}
        for phase in self.phases():
            nodes = build_tree(e for e in self.run.events if e.phase == phase)
            roots = [pid for pid, n in nodes.items() if n.ppid is None or n.ppid not in nodes]
            out[phase] = (sorted(roots, key=lambda p: nodes[p].first_t or 0.0), nodes)
        return out

    def timeline(self, phase: str) -> tuple[list[tuple[int, Event]], int]:
        """(index, event) pairs worth a reader's eye in `phase`, and how many were left out."""
        chosen: list[tuple[int, Event]] = []
        left = 0
        for i, e in enumerate(self.run.events):
            if e.phase != phase:
                continue
            forced = f"event:{i}" in self.evidence_refs
            if not forced and not _interesting(e):
                continue
            if not forced and len(chosen) >= TIMELINE_CAP:
                left += 1
                continue
            chosen.append((i, e))
        return chosen, left

    def flows(self) -> list[tuple[int, dict[str, Any], str]]:
        """(index, record, decoded payload) for every network.jsonl record."""
        return [(i, r, payload_text(r.get("first_bytes"), 8192)) for i, r in enumerate(self.run.records)]


def phase_order(phase: str) -> tuple[int, str]:
    return (PHASES.index(phase) if phase in PHASES else len(PHASES), phase)


def _interesting(e: Event) -> bool:
    if e.kind == "process":
        return e.op in ("exec", "signal") or (e.op == "exit" and e.signal is not None)
    if e.kind == "network":
        return e.family != "AF_UNIX"
    if e.kind == "file":
        if e.ftype in ("dir", "path", "pipe", "socket", "anon"):
            return False
        if e.op == "read":
            return e.ok and not e.path.startswith(_SYSTEM) if e.path else False
        return e.op != "exec"
    return False


_SYSTEM = ("/usr/", "/lib", "/etc/ld.so", "/proc/", "/sys/", "/dev/")


def load(run_dir: Path) -> RunView:
    if not (run_dir / "run.json").is_file():
        raise BadInput(f"{run_dir} is not a run folder (no run.json)")
    try:
        run = RunData.load(run_dir)
    except (OSError, ValueError) as exc:
        raise BadInput(f"{run_dir}: cannot read the run folder: {exc}") from exc
    stored = run.run_info.get("verdict")
    verdict = verdict_from_dict(stored) if isinstance(stored, dict) else judge(run)
    view = RunView(run_dir=run_dir, run=run, verdict=verdict, summary=summarise(run, verdict))
    view.evidence_refs = {ev.ref for f in verdict.findings for ev in f.evidence if ev.ref}
    try:
        eco = eco_registry.get(str(view.package.get("ecosystem")))
        verdicts = summary_mod.toolchain_verdicts(eco, run.events)
        mixed: set[int] = set()
        for i, e in enumerate(run.events):
            v = verdicts.get(id(e))
            if v is not None and v.toolchain:
                view.toolchain_events.add(i)
                view.toolchain_pids.add(e.pid)
            else:
                mixed.add(e.pid)
        view.toolchain_pids -= mixed
    except BadInput:
        pass
    return view


def summarise(run: RunData, verdict: Verdict | None = None) -> dict[str, Any]:
    """The summary `analyze --format json` and `report --format json` print."""
    info = run.run_info
    analysis = (run.result.get("Analysis") or {}) if run.result else {}
    counts = {
        phase: {k.lower(): len(rec.get(k) or []) for k in ("Files", "Sockets", "Commands", "DNS")}
        for phase, rec in analysis.items()
    }
    out: dict[str, Any] = {
        "package": info.get("package"),
        "phases": {
            p: v.get("status")
            for p, v in sorted((info.get("phases") or {}).items(), key=lambda kv: phase_order(kv[0]))
        },
        "counts": counts,
        "notable": info.get("notable") or {},
        "exfiltration": len(info.get("exfiltration") or []),
        "total_s": (info.get("timings") or {}).get("total_s"),
    }
    if verdict is not None:
        out["level"] = verdict.level
    return out


def decode_std(b64: str | None) -> str:
    if not b64:
        return ""
    try:
        return base64.b64decode(b64).decode("utf-8", "replace")
    except ValueError:
        return ""
