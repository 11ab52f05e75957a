"""What is worth a researcher's eye in one run: the 'notable' lists of run.json and the CLI summary.

Notable is not a verdict. It leaves out what the toolchain itself always does (pip, npm,
the harness, npm reading its own ~/.npmrc), so what remains is the package's own behaviour.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from typing import Any

from osptrack.ecosystems.base import Ecosystem
from osptrack.trace.events import Event

LOCAL_NAMES = ("localhost", "localhost.localdomain")


def process_argv(events: Iterable[Event]) -> dict[int, list[str]]:
    """pid -> argv of its last exec (inherited through clone until it execs)."""
    argv: dict[int, list[str]] = {}
    for e in events:
        if e.kind == "process" and e.op == "exec" and e.ok and e.argv is not None:
            argv[e.pid] = e.argv
        elif e.kind == "process" and e.op == "clone" and e.child_pid and e.pid in argv:
            argv.setdefault(e.child_pid, argv[e.pid])
    return argv


def bait_reads(events: list[Event], bait_paths: Iterable[str]) -> list[dict[str, Any]]:
    """Successful reads of bait files, with who read them."""
    wanted = set(bait_paths)
    argv = process_argv(events)
    return [
        {"path": e.path, "phase": e.phase, "pid": e.pid, "exe": e.exe, "argv": argv.get(e.pid, [])}
        for e in events
        if e.kind == "file" and e.op in ("read", "write") and e.ok and e.path in wanted and (e.op == "read" or e.read)
    ]


def notable(
    eco: Ecosystem,
    results: dict[str, dict[str, Any]],
    events: list[Event],
    records: list[dict[str, Any]],
    reads: list[dict[str, Any]],
    exfil: list[dict[str, Any]],
) -> dict[str, list[str]]:
    registry = set(eco.registry_hosts)
    dns = sorted(
        {
            r["qname"].rstrip(".").lower()
            for r in records
            if r.get("kind") == "dns" and r.get("qname")
            and r["qname"].rstrip(".").lower() not in registry | set(LOCAL_NAMES)
        }
    )
    connections = sorted(
        {
            f"{s['Address']}:{s['Port']}" + (f" ({', '.join(s['Hostnames'])})" if s.get("Hostnames") else "")
            for phase in results.values()
            for s in phase.get("Sockets", [])
        }
    )
    commands: list[str] = []
    noise = _noise_pids(eco, events)
    for e in events:
        if e.kind != "process" or e.op != "exec" or not e.ok or not e.argv or e.pid in noise:
            continue
        if not eco.is_toolchain_process(e.argv):
            line = f"[{e.phase}] {shlex.join(e.argv)[:300]}"
            if line not in commands:
                commands.append(line)
    baits = sorted(
        {
            f"[{r['phase']}] {r['path']} by {r['exe']}"
            for r in reads
            if not eco.expected_bait_reader(r["path"], r["argv"])
        }
    )
    leaked = sorted({_describe_leak(x) for x in exfil})
    return {"dns": dns, "connections": connections, "commands": commands, "bait_reads": baits, "exfiltration": leaked}


def _noise_pids(eco: Ecosystem, events: list[Event]) -> set[int]:
    """Pids inside a toolchain-noise subtree (including its root), in log order."""
    noise: set[int] = set()
    for e in events:
        if e.kind != "process":
            continue
        if e.op == "exec" and e.ok and e.argv and eco.is_toolchain_noise_root(e.argv):
            noise.add(e.pid)
        elif e.op == "clone" and e.child_pid and e.pid in noise:
            noise.add(e.child_pid)
    return noise


def _describe_leak(item: dict[str, Any]) -> str:
    flow = item.get("flow") or item
    dst = flow.get("dst") or flow.get("qname") or "?"
    port = flow.get("dst_port")
    where = f"{dst}:{port}" if port else str(dst)
    return f"[{item.get('phase', '?')}] {item.get('kind', item.get('token', '?'))} -> {where}"
