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
from osptrack.trace.roles import Verdict, VerdictTrail, classify

LOCAL_NAMES = ("localhost", "localhost.localdomain")


def process_argv(events: Iterable[Event]) -> dict[int, list[str]]:
    """pid -> argv of its last exec (inherited through clone until it execs)."""
    tracker = ArgvTracker()
    for e in events:
        tracker.add(e)
    return tracker.argv


class ArgvTracker:
    """`process_argv` one event at a time (one entry per process)."""

    def __init__(self) -> None:
        self.argv: dict[int, list[str]] = {}

    def add(self, e: Event) -> None:
        if e.kind != "process":
            return
        argv = self.argv
        if e.op == "exec" and e.ok and e.argv is not None:
            argv[e.pid] = e.argv
        elif e.op == "clone" and e.child_pid and e.pid in argv:
            argv.setdefault(e.child_pid, argv[e.pid])


def bait_reads(
    events: Iterable[Event], bait_paths: Iterable[str], verdicts: dict[int, Verdict] | None = None
) -> list[dict[str, Any]]:
    """Successful reads of bait files, with who read them; `toolchain` names the rule of a
    toolchain reader (None for the package's own), when verdicts are given."""
    return summarise(events, verdicts, bait_paths).bait_reads()


def notable(
    eco: Ecosystem,
    results: dict[str, dict[str, Any]],
    events: Iterable[Event],
    records: list[dict[str, Any]],
    reads: list[dict[str, Any]],
    exfil: list[dict[str, Any]],
    verdicts: dict[int, Verdict] | None = None,
) -> dict[str, list[str]]:
    events = list(events)
    verdicts = verdicts if verdicts is not None else toolchain_verdicts(eco, events)
    return summarise(events, verdicts).notable(eco, results, records, reads, exfil)


def phase_findings(
    eco: Ecosystem,
    results: dict[str, dict[str, Any]],
    events: Iterable[Event],
    records: list[dict[str, Any]],
    notable_lists: dict[str, list[str]],
) -> dict[str, str]:
    """One line per phase with what was notable there ("" when nothing): batch prints these.

    `exfiltration 1, bait reads 1, commands 2 (sh -c id; id), dns 1 (c2.example), connections 1`
    """
    return summarise(events, None).phase_findings(eco, results, records, notable_lists)


def listening_lines(events: Iterable[Event], verdicts: dict[int, Verdict]) -> list[str]:
    """`[phase] ADDRESS:PORT by EXE` for each successful listen() of the package's."""
    return summarise(events, verdicts).listening_lines()


def probes(events: Iterable[Event], verdicts: dict[int, Verdict] | None = None) -> list[dict[str, Any]]:
    """Looks at sensitive paths (events with `probe`): one entry per (phase, path, exe, syscall),
    the first PROBES_KEPT of them.

    `toolchain` is the rule name of a toolchain prober (None for the package's own), as in
    bait_reads.
    """
    return summarise(events, verdicts).probes()


def package_commands(events: Iterable[Event], verdicts: dict[int, Verdict]) -> list[str]:
    """`[phase] argv` of every exec that is not the toolchain's, in order, each line once.

    A failed exec of the package's stays (marked with its errno), unless the same process then
    ran the same argv: that was only a step of a PATH search.
    """
    return summarise(events, verdicts).package_commands()


def summarise(
    events: Iterable[Event], verdicts: dict[int, Verdict] | None, bait_paths: Iterable[str] = ()
) -> EventSummary:
    """An EventSummary of events held in memory, with verdicts keyed by id(event) (or none)."""
    found = EventSummary(bait_paths, judged=verdicts is not None)
    add = found.add
    for e in events:
        add(e, verdicts.get(id(e)) if verdicts is not None else None)
    return found


PROBES_KEPT = 1000  # run.json `probes` entries at most (a scan of a home can make thousands)


class EventSummary:
    """What notable, bait_reads, probes and the findings lines need from the events, gathered one
    event (with its toolchain verdict, osptrack.trace.roles.Classifier) at a time, in log order.

    It keeps lines, small sets and one entry per process, never the events, so a run can stream
    them; and each event's verdict, a reference an event (`trail`). `judged` False: there are
    no verdicts (every event counts as the package's, and bait reads get no `toolchain` key), as
    the list functions do when given none.
    """

    def __init__(self, bait_paths: Iterable[str] = (), *, judged: bool = True) -> None:
        self.judged = judged
        self.argv = ArgvTracker()
        # each event's verdict, for the run's verdict (verdict.facts): it reads events.jsonl back
        self.trail = VerdictTrail() if judged else None
        self._trail_add = self.trail.verdicts.append if self.trail is not None else None
        self._bait_wanted = frozenset(bait_paths)
        self._bait: list[dict[str, Any]] = []  # argv filled in at the end: the pid's last exec
        self._probes: dict[tuple[Any, ...], dict[str, Any]] = {}
        self._listening: dict[str, None] = {}
        # package_commands: (line, (phase, pid, argv) when the exec failed), the package's only;
        # `_ran` holds every successful exec's, the toolchain's too (a PATH search's last step).
        self._commands: list[tuple[str, tuple[str, int, tuple[str, ...]] | None]] = []
        self._ran: set[tuple[str, int, tuple[str, ...]]] = set()
        self.reached: set[tuple[str, str | None, int | None]] = set()  # connects and sends

    def add(self, e: Event, verdict: Verdict | None) -> None:
        kind = e.kind
        if self._trail_add is not None:
            if verdict is not None:
                self._trail_add(verdict)
            elif self.trail is not None:
                self.trail.valid = False
        if e.probe is not None and len(self._probes) < PROBES_KEPT:
            rule = verdict.rule if verdict is not None and verdict.toolchain else None
            key = (e.phase, e.path, e.exe, e.syscall, rule)
            if key not in self._probes:
                self._probes[key] = {
                    "phase": e.phase, "path": e.path, "category": e.probe, "syscall": e.syscall,
                    "errno": e.errno, "pid": e.pid, "exe": e.exe, "toolchain": rule,
                }  # fmt: skip
        if kind == "file":
            if (
                e.path in self._bait_wanted
                and e.op in ("read", "write")
                and e.ok
                and (e.op == "read" or e.read)
            ):
                item: dict[str, Any] = {"path": e.path, "phase": e.phase, "pid": e.pid, "exe": e.exe}
                item["argv"] = None
                if self.judged:
                    item["toolchain"] = verdict.rule if verdict is not None and verdict.toolchain else None
                self._bait.append(item)
            return
        toolchain = verdict is not None and verdict.toolchain
        if kind == "process":
            self.argv.add(e)
            if e.op == "exec" and e.argv:
                argv = tuple(e.argv)
                if e.ok:
                    self._ran.add((e.phase, e.pid, argv))
                if not toolchain:
                    line = f"[{e.phase}] {shlex.join(e.argv)[:300]}"
                    if e.ok:
                        self._commands.append((line, None))
                    else:
                        self._commands.append((f"{line} (failed: {e.errno})", (e.phase, e.pid, argv)))
        elif kind == "network":
            if e.op in ("connect", "sendto") and not e.lookup_probe and e.port:
                self.reached.add((e.phase, e.address, e.port))
            elif e.op == "listen" and e.ok and not toolchain:
                where = f"{e.address}:{e.port}" if e.address is not None else (e.family or "?")
                self._listening.setdefault(f"[{e.phase}] {where} by {e.exe}")

    def bait_reads(self) -> list[dict[str, Any]]:
        argv = self.argv.argv
        return [item | {"argv": argv.get(item["pid"], [])} for item in self._bait]

    def probes(self) -> list[dict[str, Any]]:
        return [dict(p) for p in self._probes.values()]

    def listening_lines(self) -> list[str]:
        return list(self._listening)

    def package_commands(self) -> list[str]:
        commands: dict[str, None] = {}
        for line, failed in self._commands:
            if failed is None or failed not in self._ran:
                commands.setdefault(line)
        return list(commands)

    def connection_lines(self, results: dict[str, dict[str, Any]]) -> list[str]:
        return _connection_lines(results, self.reached)

    def notable(
        self,
        eco: Ecosystem,
        results: dict[str, dict[str, Any]],
        records: list[dict[str, Any]],
        reads: list[dict[str, Any]],
        exfil: list[dict[str, Any]],
    ) -> dict[str, list[str]]:
        baits = sorted(
            {
                f"[{r['phase']}] {r['path']} by {r['exe']}"
                for r in reads
                if not eco.expected_bait_reader(r["path"], r.get("toolchain"))
            }
        )
        return {
            "dns": dns_names(eco, records),
            "connections": self.connection_lines(results),
            "commands": self.package_commands(),
            "bait_reads": baits,
            "exfiltration": sorted({_describe_leak(x) for x in exfil}),
            "listening": self.listening_lines(),
            "probes": sorted({_describe_probe(p) for p in self.probes() if p["toolchain"] is None}),
        }

    def phase_findings(
        self,
        eco: Ecosystem,
        results: dict[str, dict[str, Any]],
        records: list[dict[str, Any]],
        notable_lists: dict[str, list[str]],
    ) -> dict[str, str]:
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
            connections = _connection_lines({phase: results[phase]}, self.reached)
            if connections:
                parts.append(f"connections {len(connections)}")
            line = ", ".join(parts)
            lines[phase] = line if len(line) <= FINDING_CHARS else line[: FINDING_CHARS - 3] + "..."
        return lines


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


def connection_lines(results: dict[str, dict[str, Any]], events: Iterable[Event]) -> list[str]:
    """Sockets the package connected or sent to, one line per attempt.

    Left out: lookup probes (a UDP socket connected and closed unsent by getaddrinfo, see
    events.jsonl `lookup_probe`), port 0 (getaddrinfo without a service probes port 0; nothing
    listens there), and addresses only bound or listened on (those are `listening`). One
    attempt over both families (the IPv4 and IPv6 sinkhole address of one name and port) is one
    line: `NAME:PORT (ADDRESS, ADDRESS)`; a socket with no name is `ADDRESS:PORT`.
    """
    return summarise(events, None).connection_lines(results)


def _connection_lines(
    results: dict[str, dict[str, Any]], reached: set[tuple[str, str | None, int | None]]
) -> list[str]:
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


def toolchain_verdicts(eco: Ecosystem, events: Iterable[Event]) -> dict[int, Verdict]:
    """Whose doing each event is, by the ecosystem's toolchain rules (osptrack.trace.roles)."""
    return classify(events, eco.toolchain_rules())


def _describe_leak(item: dict[str, Any]) -> str:
    flow = item.get("flow") or item
    dst = flow.get("dst") or flow.get("parent") or flow.get("qname") or "?"  # parent: a DNS tunnel
    port = flow.get("dst_port")
    where = f"{dst}:{port}" if port else str(dst)
    return f"[{item.get('phase', '?')}] {item.get('kind', item.get('token', '?'))} -> {where}"
