"""The HTML report: one self-contained file (inline CSS and a few lines of inline JS, nothing fetched).

Order: verdict and findings first, then the process tree, the per-phase timeline, network flows
with decoded payloads, honeytokens and the run's settings. Every evidence item links to its row
(`#event-N`, `#flow-N`, `#fact-...`). Everything from the run is escaped: payloads, argv and paths
are attacker-controlled. A Content-Security-Policy forbids any request from the page.
"""

from __future__ import annotations

import datetime as dt
import shlex
from html import escape
from pathlib import Path
from typing import Any

from osptrack import __version__
from osptrack.report.view import RunView, decode_std, phase_order
from osptrack.trace.events import Event
from osptrack.trace.tree import ProcessNode
from osptrack.verdict.model import Finding

CSS = (Path(__file__).parent / "report.css").read_text()
CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"
SCRIPT = """
document.getElementById('hide-toolchain').addEventListener('change', function (e) {
  document.body.classList.toggle('hide-toolchain', e.target.checked);
});
document.getElementById('filter').addEventListener('input', function (e) {
  var q = e.target.value.toLowerCase();
  document.querySelectorAll('#timeline tbody tr').forEach(function (tr) {
    tr.style.display = !q || tr.textContent.toLowerCase().indexOf(q) >= 0 ? '' : 'none';
  });
});
"""


def e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def anchor(ref: str | None) -> str:
    """`event:12` -> `event-12`; `fact:phases.install.alive_at_end` -> `fact-phases-install`."""
    ref = ref or ""
    if ref.startswith("fact:phases."):
        return "fact-phases-" + ref.split(".")[1]
    return ref.replace(":", "-").replace(".", "-")


def render(view: RunView) -> str:
    v = view.verdict
    flagged_pids = {
        ev.pid
        for f in v.findings
        if f.severity in ("medium", "high", "critical")
        for ev in f.evidence
        if ev.pid
    }
    trees = view.trees()
    flows = view.flows()
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',  # a constant: no escaping
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f'<meta name="generator" content="osptrack {e(__version__)}">',
        f"<title>{e(v.level)}: {e(view.title)} — osptrack</title>",
        f"<style>{CSS}</style></head>",
        "<body>",
        _header(view),
        _nav(view, len(flows)),
        "<main>",
        _findings(view),
        _tree_section(view, trees, flagged_pids),
        _timeline_section(view),
        _flows_section(view, flows),
        _honeytokens(view),
        _run_section(view),
        "</main>",
        f"<footer>osptrack {e(__version__)} · {e(v.rules)} · report of {e(view.run_dir.name)}</footer>",
        f"<script>{SCRIPT}</script>",
        "</body></html>",
    ]
    return "\n".join(parts)


def _header(view: RunView) -> str:
    v = view.verdict
    pkg = view.package
    chips = "".join(
        f'<span class="chip">{e(p)}: {e(s)}</span> ' for p, s in (view.summary.get("phases") or {}).items()
    )
    created = view.run.result.get("CreatedTimestamp") if view.run.result else None
    when = dt.datetime.fromtimestamp(created, dt.UTC).strftime("%Y-%m-%d %H:%M UTC") if created else ""
    return (
        f'<header class="verdict {e(v.level)}" id="verdict">'
        f'<h1><span class="level">{e(v.level)}</span>{e(pkg.get("name"))} '
        f'<span style="font-weight:400">{e(pkg.get("version"))}</span></h1>'
        f'<div class="meta"><span>{e(pkg.get("ecosystem"))}</span><span>score {v.score}/100</span>'
        f"<span>{len(v.findings)} findings</span>"
        f'<span class="mono">{e(pkg.get("archive") or "")}</span><span>{e(when)}</span></div>'
        f'<div class="meta">{chips}</div></header>'
    )


def _nav(view: RunView, n_flows: int) -> str:
    v = view.verdict
    return (
        "<nav>"
        f'<a href="#findings">Findings <span class="n">{len(v.findings)}</span></a>'
        '<a href="#tree">Process tree</a>'
        '<a href="#timeline">Timeline</a>'
        f'<a href="#flows">Network <span class="n">{n_flows}</span></a>'
        f'<a href="#honeytokens">Honeytokens <span class="n">{len(view.run.run_info.get("honeytokens") or [])}</span></a>'
        '<a href="#run">Run</a>'
        "</nav>"
    )


def _findings(view: RunView) -> str:
    """Decisive findings as cards; low and informational ones folded away below them."""
    v = view.verdict
    out = ['<section id="findings"><h2>Findings</h2>']
    if not v.findings:
        out.append('<p class="empty">No rule fired: nothing beyond what the toolchain itself does.</p>')
    cards = [_card(i, f) for i, f in enumerate(v.findings)]
    context = [c for c, f in zip(cards, v.findings, strict=True) if f.severity in ("low", "informational")]
    out.extend(
        c for c, f in zip(cards, v.findings, strict=True) if f.severity not in ("low", "informational")
    )
    if context:
        out.append(
            f'<details class="context"><summary>{len(context)} low and informational findings '
            f"(context, never decisive)</summary>{''.join(context)}</details>"
        )
    out.append("</section>")
    return "".join(out)


def _card(i: int, f: Finding) -> str:
    items = []
    for ev in f.evidence:
        link = f'<a href="#{e(anchor(ev.ref))}">{e(ev.summary)}</a>' if ev.ref else e(ev.summary)
        token = f' <span class="chip bad">honeytoken {e(ev.honeytoken)}</span>' if ev.honeytoken else ""
        items.append(f'<li><span class="kind">{e(ev.type)}</span><code>{link}</code>{token}</li>')
    more = (f.evidence_total or 0) - len(f.evidence)
    if more > 0:
        items.append(f'<li class="muted">… and {more} more</li>')
    src = f' <span class="chip">{e(f.source)}</span>' if f.source != "rules" else ""
    return (
        f'<div class="card finding {e(f.severity)}" id="finding-{i}"><div class="head">'
        f'<span class="sev {e(f.severity)}">{e(f.severity)}</span><span class="title">{e(f.title)}</span>'
        f'<span class="chip">{e(f.phase)}</span><span class="rule">{e(f.rule)}</span>{src}</div>'
        f'<ul class="evidence">{"".join(items)}</ul></div>'
    )


def _tree_section(
    view: RunView, trees: dict[str, tuple[list[int], dict[int, ProcessNode]]], flagged: set[int]
) -> str:
    out = ['<section id="tree"><h2>Process tree</h2>']
    out.append(
        '<div class="controls"><label><input type="checkbox" id="hide-toolchain"> hide the toolchain\'s own processes</label></div>'
    )
    for phase, (roots, nodes) in trees.items():
        out.append(f'<div class="card"><h3>{e(phase)}</h3><ul class="tree">')
        for root in roots:
            out.append(_node(root, nodes, view.toolchain_pids, flagged, 0))
        out.append("</ul></div>")
    out.append("</section>")
    return "".join(out)


def _node(pid: int, nodes: dict[int, ProcessNode], toolchain: set[int], flagged: set[int], depth: int) -> str:
    n = nodes[pid]
    cmd = n.commands[-1] if n.commands else []
    argv = shlex.join(cmd) if cmd else ""
    short = argv if len(argv) <= 220 else argv[:220] + "…"
    cls = "proc" + (" toolchain" if pid in toolchain else "") + (" flagged" if pid in flagged else "")
    status = ""
    if n.signal:
        status = f' <span class="err">killed by {e(n.signal)}</span>'
    elif n.exit_code not in (None, 0):
        status = f' <span class="err">exit {e(n.exit_code)}</span>'
    img = (n.exe or "").rsplit("/", 1)[-1] or ("sandbox" if depth == 0 else "?")
    kids = [c for c in n.children if c in nodes]
    # threads and forks that never exec'd and started nothing: one line, not one node each
    quiet = [c for c in kids if not nodes[c].commands and not nodes[c].children and c not in flagged]
    shown = [c for c in kids if c not in quiet]
    inner = ""
    if (shown or quiet) and depth < 60:
        inner = "<ul>" + "".join(_node(c, nodes, toolchain, flagged, depth + 1) for c in shown)
        if quiet:
            ids = " ".join(f'<span id="proc-{c}">{c}</span>' for c in quiet)
            inner += f'<li class="proc muted">{len(quiet)} threads or forks without exec: <span class="pid">{ids}</span></li>'
        inner += "</ul>"
    return (
        f'<li class="{cls}" id="proc-{pid}"><span class="pid">{pid}</span> <span class="img">{e(img)}</span> '
        f'<span class="argv" title="{e(argv)}">{e(short)}</span>{status}{inner}</li>'
    )


def _timeline_section(view: RunView) -> str:
    out = [
        '<section id="timeline"><h2>Timeline</h2>',
        '<div class="controls"><input type="search" id="filter" placeholder="filter rows (path, command, address)"></div>',
    ]
    argv: dict[int, list[str]] = {}
    for phase in view.phases():
        rows, left = view.timeline(phase)
        start = (view.run.run_info.get("phases") or {}).get(phase, {}).get("started") or (
            rows[0][1].t if rows else 0.0
        )
        out.append(
            f"<h3>{e(phase)}</h3><table><thead><tr><th>+s</th><th>pid</th><th>process</th><th>what</th></tr></thead><tbody>"
        )
        for i, ev in rows:
            if ev.kind == "process" and ev.op == "exec" and ev.ok and ev.argv:
                argv[ev.pid] = ev.argv
            ref = f"event:{i}"
            cls = []
            if i in view.toolchain_events:
                cls.append("toolchain")
            if ref in view.evidence_refs:
                cls.append("evidence")
            out.append(
                f'<tr id="{anchor(ref)}" class="{" ".join(cls)}"><td class="t">{ev.t - start:+.3f}</td>'
                f'<td class="pid"><a href="#proc-{ev.pid}">{ev.pid}</a></td><td class="mono">{e((ev.exe or "?").rsplit("/", 1)[-1])}</td>'
                f'<td class="what">{_what(ev)}</td></tr>'
            )
        if not rows:
            out.append('<tr><td colspan="4" class="empty">no events</td></tr>')
        out.append("</tbody></table>")
        if left:
            out.append(f'<p class="muted">{left} more events of {e(phase)} are in events.jsonl.</p>')
    out.append("</section>")
    return "".join(out)


def _what(ev: Event) -> str:
    err = f' <span class="err">{e(ev.errno)}</span>' if ev.errno else ""
    op = f'<span class="op {e(ev.op)}">{e(ev.op)}</span> '
    if ev.kind == "process" and ev.op == "exec":
        return op + e(shlex.join(ev.argv or [ev.path or ""]))[:2000] + err
    if ev.kind == "process":
        extra = ev.signal or (f"code {ev.exit_code}" if ev.exit_code is not None else "")
        child = f" child {ev.child_pid}" if ev.child_pid else ""
        return op + e(f"{extra}{child}") + err
    if ev.kind == "network":
        return op + e(f"{ev.family} {ev.address}:{ev.port}") + err
    to = f" → {ev.path2}" if ev.path2 else ""
    return op + e(f"{ev.path}{to}") + err


def _flows_section(view: RunView, flows: list[tuple[int, dict[str, Any], str]]) -> str:
    out = ['<section id="flows"><h2>Network</h2>']
    if not flows:
        out.append('<p class="empty">The fake network saw nothing.</p></section>')
        return "".join(out)
    evidence = view.evidence_refs
    out.append(
        "<table><thead><tr><th>phase</th><th>kind</th><th>to</th><th>request</th><th>payload</th></tr></thead><tbody>"
    )
    for i, r, payload in flows:
        ref = f"flow:{i}"
        cls = "evidence" if ref in evidence else ""
        if r.get("kind") == "dns":
            to = f"{r.get('qname')} {r.get('qtype')}"
            req = "→ " + ", ".join(map(str, r.get("answer") or [])) if r.get("answer") else "no answer"
        else:
            host = r.get("hostname") or r.get("tls_sni") or ""
            to = f"{r.get('dst')}:{r.get('dst_port')}" + (f" ({host})" if host else "")
            http = r.get("http") or {}
            req = (
                f"{http.get('method')} {http.get('path')}"
                if http
                else (f"TLS SNI {r['tls_sni']}" if r.get("tls_sni") else "")
            )
        size = r.get("bytes")
        body = ""
        if payload:
            body = f'<details><summary>{e(size)} bytes</summary><pre class="payload">{e(payload)}</pre></details>'
        elif size:
            body = f"{e(size)} bytes"
        out.append(
            f'<tr id="{anchor(ref)}" class="{cls}"><td>{e(r.get("phase"))}</td><td>{e(r.get("kind"))}</td>'
            f'<td class="what">{e(to)}</td><td class="what">{e(req)}</td><td>{body}</td></tr>'
        )
    out.append("</tbody></table></section>")
    return "".join(out)


def _honeytokens(view: RunView) -> str:
    info = view.run.run_info
    leaked: dict[str, list[dict[str, Any]]] = {}
    for x in info.get("exfiltration") or []:
        leaked.setdefault(str(x.get("kind")), []).append(x)
    read_paths = {r.get("path") for r in info.get("bait_reads") or []}
    out = [
        '<section id="honeytokens"><h2>Honeytokens</h2><table><thead><tr><th>kind</th><th>planted in</th>'
        "<th>value</th><th>read</th><th>exfiltrated</th></tr></thead><tbody>"
    ]
    for t in info.get("honeytokens") or []:
        value = str(t.get("value") or "")
        shown = value[:6] + "…" + value[-4:] if len(value) > 14 else value
        planted = t.get("planted") or []
        was_read = any(p in read_paths for p in planted)
        hits = leaked.get(str(t.get("kind")), [])
        if hits:
            exfil = ", ".join(
                f'<span class="chip bad">{e(h.get("phase"))} {e((h.get("flow") or {}).get("dst"))}:{e((h.get("flow") or {}).get("dst_port"))} ({e(h.get("encoding"))})</span>'
                for h in hits[:5]
            )
        else:
            exfil = '<span class="muted">no</span>'
        out.append(
            f'<tr><td class="mono">{e(t.get("kind"))}</td><td class="what">{e(", ".join(planted))}</td>'
            f'<td class="what">{e(shown)}</td><td>{"<b>yes</b>" if was_read else "<span class=muted>no</span>"}</td><td>{exfil}</td></tr>'
        )
    out.append("</tbody></table></section>")
    return "".join(out)


def _run_section(view: RunView) -> str:
    info = view.run.run_info
    out = ['<section id="run"><h2>Run</h2><div class="grid">']
    analysis = (view.run.result.get("Analysis") or {}) if view.run.result else {}
    for phase, p in sorted((info.get("phases") or {}).items(), key=lambda kv: phase_order(kv[0])):
        rows = {
            "status": p.get("status"),
            "exit code": p.get("exit_code"),
            "wall": f"{p.get('wall_s')} s",
            "events": p.get("events"),
            "timed out": p.get("timed_out"),
            "peak memory": p.get("peak_memory_bytes"),
        }
        if "alive_at_end" in p:
            rows["alive at end"] = (
                p.get("alive_at_end")
                if not isinstance(p.get("alive_at_end"), list)
                else len(p["alive_at_end"])
            )
        kv = "".join(f"<div>{e(k)}</div><div>{e(val)}</div>" for k, val in rows.items())
        std = analysis.get(phase, {})
        stdout, stderr = decode_std(std.get("Stdout")), decode_std(std.get("Stderr"))
        streams = ""
        if stdout or stderr:
            streams = f'<details><summary>stdout / stderr (last 4 KiB)</summary><pre class="payload">{e(stdout)}\n{e(stderr)}</pre></details>'
        out.append(
            f'<div class="card" id="fact-phases-{e(phase)}"><h3>{e(phase)}</h3><div class="kv">{kv}</div>{streams}</div>'
        )
    sandbox = info.get("sandbox") or {}
    kv = "".join(
        f"<div>{e(k)}</div><div>{e(val)}</div>"
        for k, val in {
            "backend": sandbox.get("backend"),
            "network": sandbox.get("network"),
            "namespaces": ", ".join(sandbox.get("namespaces") or []),
            "limits": ", ".join(f"{k}={val}" for k, val in (sandbox.get("limits") or {}).items()),
            "total": f"{(info.get('timings') or {}).get('total_s')} s",
            "sha256": (info.get("package") or {}).get("sha256"),
        }.items()
    )
    out.append(
        f'<div class="card" id="fact-second_stage_executed"><h3>sandbox</h3><div class="kv">{kv}</div></div>'
    )
    out.append("</div></section>")
    return "".join(out)
