"""Markdown: the verdict and its findings with evidence, then the notable lists (for PR comments)."""

from __future__ import annotations

from osptrack.report.view import RunView

ICON = {"malicious": "🔴", "suspicious": "🟠", "benign": "🟢"}


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ").replace("`", "'")


def render(view: RunView) -> str:
    v = view.verdict
    lines = [
        f"# osptrack: {view.title}",
        "",
        f"**Verdict: {ICON.get(v.level, '')} {v.level}** (score {v.score}, {len(v.findings)} findings, {v.rules})",
        "",
        "| phase | status |",
        "|---|---|",
        *(f"| {p} | {_cell(s)} |" for p, s in view.summary["phases"].items()),
        "",
    ]
    if v.findings:
        lines += [
            "## Findings",
            "",
            "| severity | rule | phase | title | evidence |",
            "|---|---|---|---|---|",
        ]
        for f in v.findings:
            n = f.evidence_total or len(f.evidence)
            lines.append(f"| {f.severity} | `{f.rule}` | {f.phase} | {_cell(f.title)} | {n} |")
        lines.append("")
        for f in v.findings:
            lines += [f"### {f.severity}: {_cell(f.title)} (`{f.rule}`, {f.phase})", ""]
            for ev in f.evidence:
                where = f" — {ev.ref}" if ev.ref else ""
                lines.append(f"- `{_cell(ev.summary)[:300]}`{where}")
            extra = (f.evidence_total or 0) - len(f.evidence)
            if extra > 0:
                lines.append(f"- … and {extra} more")
            lines.append("")
    else:
        lines += ["No findings.", ""]
    notable = view.summary.get("notable") or {}
    for key, label in (("dns", "DNS lookups"), ("connections", "Connections"), ("commands", "Commands")):
        items = notable.get(key) or []
        if items:
            lines += [f"## {label}", "", *(f"- `{_cell(i)[:300]}`" for i in items[:50]), ""]
    return "\n".join(lines)
