"""The batch report index: DIR/index.html lists every run with its verdict, linking to
DIR/reports/<ecosystem>/<name>/<version>.html (written here, refreshed when run.json is newer)."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from html import escape
from pathlib import Path

import orjson

from osptrack import __version__
from osptrack.errors import BadInput
from osptrack.jsonio import atomic_write_bytes
from osptrack.report.html import CSP, CSS
from osptrack.verdict import Verdict, judge_run_dir, verdict_from_dict

ORDER = {"malicious": 0, "suspicious": 1, "benign": 2}


@dataclass(frozen=True)
class Row:
    rel: str  # run folder relative to the batch folder
    ecosystem: str
    name: str
    version: str
    verdict: Verdict
    statuses: dict[str, str]


def run_folders(out: Path) -> list[Path]:
    return sorted(p.parent for p in out.rglob("run.json") if ".tmp" not in p.relative_to(out).parts[:1])


def write_index(out: Path) -> Path:
    """Write (or refresh) the per-run HTML reports and index.html; returns the index path."""
    from osptrack.report import render

    rows: list[Row] = []
    for run_dir in run_folders(out):
        rel = run_dir.relative_to(out).as_posix()
        try:
            info = orjson.loads((run_dir / "run.json").read_bytes())
            stored = info.get("verdict")
            verdict = verdict_from_dict(stored) if isinstance(stored, dict) else judge_run_dir(run_dir)
            report = out / "reports" / f"{rel}.html"
            if not report.exists() or report.stat().st_mtime < (run_dir / "run.json").stat().st_mtime:
                atomic_write_bytes(report, render(run_dir, "html"))
        except (BadInput, OSError, ValueError):
            continue  # a folder that is not a readable run is not listed
        pkg = info.get("package") or {}
        rows.append(
            Row(
                rel=rel,
                ecosystem=str(pkg.get("ecosystem") or ""),
                name=str(pkg.get("name") or ""),
                version=str(pkg.get("version") or ""),
                verdict=verdict,
                statuses={p: str(v.get("status")) for p, v in (info.get("phases") or {}).items()},
            )
        )
    rows.sort(key=lambda r: (ORDER.get(r.verdict.level, 3), -r.verdict.score, r.ecosystem, r.name))
    index = out / "index.html"
    atomic_write_bytes(index, _render(rows, out).encode())
    return index


def _render(rows: list[Row], out: Path) -> str:
    e = escape
    levels = Counter(r.verdict.level for r in rows)
    rules = Counter(
        f.rule for r in rows for f in r.verdict.findings if f.severity not in ("informational", "low")
    )
    body = []
    for r in rows:
        top = [f for f in r.verdict.findings if f.severity not in ("informational",)][:4]
        chips = " ".join(
            f'<span class="sev {e(f.severity)}" title="{e(f.title)}">{e(f.rule)}</span>' for f in top
        )
        phases = " ".join(
            f'<span class="chip{"" if s == "completed" else " bad"}">{e(p)}: {e(s)}</span>'
            for p, s in r.statuses.items()
        )
        body.append(
            f'<tr class="lvl-{e(r.verdict.level)}"><td><span class="sev {_sev(r.verdict.level)}">{e(r.verdict.level)}</span></td>'
            f"<td>{r.verdict.score}</td><td>{e(r.ecosystem)}</td>"
            f'<td><a href="reports/{e(r.rel)}.html">{e(r.name)}</a></td><td class="mono">{e(r.version)}</td>'
            f"<td>{chips}</td><td>{phases}</td></tr>"
        )
    summary = " ".join(f'<span class="chip">{e(k)}: {levels.get(k, 0)}</span>' for k in ORDER)
    top_rules = ", ".join(f"<code>{e(k)}</code> {v}" for k, v in rules.most_common(8)) or "none"
    worst = "malicious" if levels.get("malicious") else "suspicious" if levels.get("suspicious") else "benign"
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        f'<meta name="generator" content="osptrack {e(__version__)}">'
        f"<title>osptrack batch: {len(rows)} runs</title><style>{CSS}</style></head><body>"
        f'<header class="verdict {worst}"><h1>osptrack batch <span style="font-weight:400">{e(out.name)}</span></h1>'
        f'<div class="meta"><span>{len(rows)} runs</span>{summary}</div>'
        f'<div class="meta">findings of medium or worse by rule: {top_rules}</div></header>'
        "<main><table><thead><tr><th>verdict</th><th>score</th><th>ecosystem</th><th>package</th><th>version</th>"
        f"<th>findings</th><th>phases</th></tr></thead><tbody>{''.join(body)}</tbody></table></main>"
        f"<footer>osptrack {e(__version__)} · written {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}</footer>"
        "</body></html>"
    )


def _sev(level: str) -> str:
    return {"malicious": "critical", "suspicious": "medium", "benign": "informational"}.get(
        level, "informational"
    )
