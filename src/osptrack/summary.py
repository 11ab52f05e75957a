"""What is worth a researcher's eye in one run: the 'notable' lists of run.json and the CLI summary.

Notable is not a verdict. It leaves out what the toolchain itself always does (pip, npm,
the harness, npm reading its own ~/.npmrc), so what remains is the package's own behaviour.
Which processes are the toolchain's is told by exact path and place in the process tree
(osptrack.trace.roles, docs/formats.md), never by a process's name or argv alone.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from typing import Any

from osptrack.ecosystems.base import Ecosystem
from osptrack.registry import REGISTRY_HOST
from osptrack.trace.events import Event
from osptrack.trace.roles import Verdict, classify

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


def bait_reads(
    events: list[Event], bait_paths: Iterable[str], verdicts: dict[int, Verdict] | None = None
) -> list[dict[str, Any]]:
    """Successful reads of bait files, with who read them; `toolchain` names the rule of a
    toolchain reader (None for the package's own), when verdicts are given."""
    wanted = set(bait_paths)
    argv = process_argv(events)
    found = []
    for e in events:
        if (
            e.kind == "file"
            and e.op in ("read", "write")
            and e.ok
            and e.path in wanted
            and (e.op == "read" or e.read)
        ):
            item: dict[str, Any] = {"path": e.path, "phase": e.phase, "pid": e.pid, "exe": e.exe}
            item["argv"] = argv.get(e.pid, [])
            verdict = verdicts.get(id(e)) if verdicts is not None else None
            if verdict is not None:
                item["toolchain"] = verdict.rule if verdict.toolchain else None
            found.append(item)
    return found


def notable(
    eco: Ecosystem,
    results: dict[str, dict[str, Any]],
    events: list[Event],
    records: list[dict[str, Any]],
    reads: list[dict[str, Any]],
    exfil: list[dict[str, Any]],
    verdicts: dict[int, Verdict] | None = None,
) -> dict[str, list[str]]:
    dns = dns_names(eco, records)
    connections = connection_lines(results, events)
    verdicts = verdicts if verdicts is not None else toolchain_verdicts(eco, events)
    commands = package_commands(events, verdicts)
    baits = sorted(
        {
            f"[{r['phase']}] {r['path']} by {r['exe']}"
            for r in reads
            if not eco.expected_bait_reader(r["path"], r.get("toolchain"))
        }
    )
    leaked = sorted({_describe_leak(x) for x in exfil})
    return {
        "dns": dns,
        "connections": connections,
        "commands": commands,
        "bait_reads": baits,
        "exfiltration": leaked,
        "listening": listening_lines(events, verdicts),
        "probes": sorted({_describe_probe(p) for p in probes(events, verdicts) if p["toolchain"] is None}),
    }


def dns_names(eco: Ecosystem, records: list[dict[str, Any]], phase: str | None = None) -> list[str]:
    """Names looked up (in `phase`, or any), minus the registry service's own name and localhost.

    pip and npm only ever look up the registry service; a lookup of a real registry (pypi.org,
    files.pythonhosted.org, registry.npmjs.org) can only come from the package's own code, so it stays."""
    skip = {REGISTRY_HOST} | set(LOCAL_NAMES)
    names = {
        str(r["qname"]).rstrip(".").lower()
        for r in records
        if r.get("kind") == "dns" and r.get("qname") and (phase is None or r.get("phase") == phase)
    }
    return sorted(names - skip)


# notable keys whose lines start with `[phase]`, in the order a finding line names them
_PHASED = (
    ("exfiltration", "exfiltration"),
    ("bait_reads", "bait reads"),
    ("commands", "commands"),
    ("listening", "listening"),
    ("probes", "probes"),
    ("alive_at_end", "alive at end"),
)
FINDING_CHARS = 240


def phase_findings(
    eco: Ecosystem,
    results: dict[str, dict[str, Any]],
    events: list[Event],
    records: list[dict[str, Any]],
    notable_lists: dict[str, list[str]],
) -> dict[str, str]:
    """One line per phase with what was notable there ("" when nothing): batch prints these.

    `exfiltration 1, bait reads 1, commands 2 (sh -c id; id), dns 1 (c2.example), connections 1`
    """
    lines: dict[str, str] = {}
    for phase in results:
        parts: list[str] = []
        prefix = f"[{phase}] "
        for key, label in _PHASED:
            items = [x[len(prefix) :] for x in notable_lists.get(key) or [] if x.startswith(prefix)]
            if items:
                sample = f" ({'; '.join(items[:2])[:80]})" if key == "commands" else ""
                parts.append(f"{label} {len(items)}{sample}")
        names = dns_names(eco, records, phase)
        if names:
            parts.append(f"dns {len(names)} ({', '.join(names[:2])[:80]})")
        connections = connection_lines({phase: results[phase]}, events)
        if connections:
            parts.append(f"connections {len(connections)}")
        line = ", ".join(parts)
        lines[phase] = line if len(line) <= FINDING_CHARS else line[: FINDING_CHARS - 3] + "..."
    return lines


def connection_lines(results: dict[str, dict[str, Any]], events: list[Event]) -> list[str]:
    """Sockets the package connected or sent to, one line per attempt.

    Left out: lookup probes (a UDP socket connected and closed unsent by getaddrinfo, see
    events.jsonl `lookup_probe`), port 0 (getaddrinfo without a service probes port 0; nothing
    listens there), and addresses only bound or listened on (those are `listening`). One
    attempt over both families (the IPv4 and IPv6 sinkhole address of one name and port) is one
    line: `NAME:PORT (ADDRESS, ADDRESS)`; a socket with no name is `ADDRESS:PORT`.
    """
    reached = {
        (e.phase, e.address, e.port)
        for e in events
        if e.kind == "network" and e.op in ("connect", "sendto") and not e.lookup_probe and e.port
    }
    named: dict[tuple[str, int], set[str]] = {}
    lines: set[str] = set()
    for phase, record in results.items():
        for s in record.get("Sockets") or []:
            address, port, hosts = s["Address"], s["Port"], s.get("Hostnames") or []
            if not port or (phase, address, port) not in reached:
                continue
            if hosts:
                named.setdefault((", ".join(hosts), port), set()).add(address)
            else:
                lines.add(f"{address}:{port}")
    lines.update(
        f"{hosts}:{port} ({', '.join(sorted(addresses))})" for (hosts, port), addresses in named.items()
    )
    return sorted(lines)


def listening_lines(events: list[Event], verdicts: dict[int, Verdict]) -> list[str]:
    """`[phase] ADDRESS:PORT by EXE` for each successful listen() of the package's."""
    lines: list[str] = []
    for e in events:
        if e.kind != "network" or e.op != "listen" or not e.ok:
            continue
        verdict = verdicts.get(id(e))
        if verdict is not None and verdict.toolchain:
            continue
        where = f"{e.address}:{e.port}" if e.address is not None else (e.family or "?")
        line = f"[{e.phase}] {where} by {e.exe}"
        if line not in lines:
            lines.append(line)
    return lines


PROBES_KEPT = 1000  # run.json `probes` entries at most (a scan of a home can make thousands)


def probes(events: list[Event], verdicts: dict[int, Verdict] | None = None) -> list[dict[str, Any]]:
    """Looks at sensitive paths (events with `probe`): one entry per (phase, path, exe, syscall).

    `toolchain` is the rule name of a toolchain prober (None for the package's own), as in
    bait_reads.
    """
    found: dict[tuple[Any, ...], dict[str, Any]] = {}
    for e in events:
        if e.probe is None:
            continue
        verdict = verdicts.get(id(e)) if verdicts is not None else None
        toolchain = verdict.rule if verdict is not None and verdict.toolchain else None
        key = (e.phase, e.path, e.exe, e.syscall, toolchain)
        if key in found:
            continue
        found[key] = {
            "phase": e.phase, "path": e.path, "category": e.probe, "syscall": e.syscall,
            "errno": e.errno, "pid": e.pid, "exe": e.exe, "toolchain": toolchain,
        }  # fmt: skip
        if len(found) >= PROBES_KEPT:
            break
    return list(found.values())


def alive_lines(alive: dict[str, list[dict[str, Any]]]) -> list[str]:
    """`[phase] PID ARGV (EXE)` of the package's processes still alive when the phase ended."""
    return [
        f"[{phase}] {a['pid']} {shlex.join(a.get('argv') or [])[:200]} ({a.get('exe')})"
        for phase, entries in alive.items()
        for a in entries
        if a.get("toolchain") is None
    ]


def _describe_probe(p: dict[str, Any]) -> str:
    result = f"{p['syscall']}, {p['errno']}" if p["errno"] else p["syscall"]
    return f"[{p['phase']}] {p['path']} ({result}) by {p['exe']}"


def toolchain_verdicts(eco: Ecosystem, events: list[Event]) -> dict[int, Verdict]:
    """Whose doing each event is, by the ecosystem's toolchain rules (osptrack.trace.roles)."""
    return classify(events, eco.toolchain_rules())


def package_commands(events: list[Event], verdicts: dict[int, Verdict]) -> list[str]:
    """`[phase] argv` of every exec that is not the toolchain's, in order, each line once.

    A failed exec of the package's stays (marked with its errno), unless the same process then
    ran the same argv: that was only a step of a PATH search.
    """
    commands: list[str] = []
    execs = [e for e in events if e.kind == "process" and e.op == "exec" and e.argv]
    ran = {(e.phase, e.pid, tuple(e.argv or ())) for e in execs if e.ok}
    for e in execs:
        verdict = verdicts.get(id(e))
        if verdict is not None and verdict.toolchain:
            continue
        line = f"[{e.phase}] {shlex.join(e.argv or [])[:300]}"
        if not e.ok:
            if (e.phase, e.pid, tuple(e.argv or ())) in ran:
                continue
            line += f" (failed: {e.errno})"
        if line not in commands:
            commands.append(line)
    return commands


def _describe_leak(item: dict[str, Any]) -> str:
    flow = item.get("flow") or item
    dst = flow.get("dst") or flow.get("parent") or flow.get("qname") or "?"  # parent: a DNS tunnel
    port = flow.get("dst_port")
    where = f"{dst}:{port}" if port else str(dst)
    return f"[{item.get('phase', '?')}] {item.get('kind', item.get('token', '?'))} -> {where}"
