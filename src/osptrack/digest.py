"""One pass over a run's events as the parser emits them: events.jsonl and everything else built
from the events, without holding the events (docs/formats.md, "How a run is assembled").

Per phase, `RunDigest.phase(name, events, udp_sent)` takes the parser's stream, drops the
sandbox's setup (trace.refine), marks lookup probes, and hands each event once to:

- the spool (`EventSpool`): encoded to the run folder's `events.jsonl` as it comes;
- the phase's `Analysis` record builder (trace.aggregate.PhaseAggregator);
- the phase's process tree and alive-at-end tracker (trace.alive.AliveTracker), lookup-probe
  sockets and the network addresses to name;
- the run's toolchain classifier (trace.roles.Classifier) and, with each event's verdict, the
  summary (summary.EventSummary: notable, bait reads, probes, findings lines) and the
  second-stage writes.

What is kept is per path, per socket, per process or per line of output, never per event. The
one thing that needs the events again is the verdict: it reads events.jsonl back in two passes
(verdict.facts.iter_records) once the file is complete and in time order.
"""

from __future__ import annotations

import contextlib
import heapq
import operator
import os
import shlex
import tempfile
from collections.abc import Container, Iterable
from pathlib import Path
from typing import IO, Any

import msgspec

from osptrack.ecosystems.base import Ecosystem
from osptrack.phase_sends import PhaseSends as PhaseSends  # re-exported: imported from here
from osptrack.result_thread import ResultThread
from osptrack.summary import EventSummary
from osptrack.trace.aggregate import PhaseAggregator
from osptrack.trace.alive import AliveTracker
from osptrack.trace.events import KIND_FILE, KIND_NETWORK, KIND_PROCESS, Event
from osptrack.trace.refine import LookupProbes, iter_without_sandbox_setup, mark_lookup_probe
from osptrack.trace.roles import Classifier, Role, Verdict

SORT_CHUNK = 50_000  # events per sorted run when the log is out of time order (rare)
STAGE_WRITES_KEPT = 100
SPOOL_BATCH = 1024  # events encoded at once by EventSpool
_event_t = operator.attrgetter("t")


class _T(msgspec.Struct):
    t: float  # all the sort needs of an event line


_t_decoder = msgspec.json.Decoder(_T)


class EventSpool:
    """events.jsonl written as events come, then put in time order (a stable sort by `t`, as
    `sorted(events, key=t)` would) without reading the whole file into memory.

    Events are encoded SPOOL_BATCH at a time (msgspec's encode_lines): one call per batch, not
    one encode, newline and order check per event, which cost the follower thread a third of
    its digest; the batch is all the spool holds.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: IO[bytes] = path.open("wb")
        self._encoder = msgspec.json.Encoder()
        self._buf = bytearray()
        self._pending: list[Event] = []
        self._written = 0
        self._last_t = float("-inf")
        self.ordered = True  # every event so far came at or after the one before

    @property
    def count(self) -> int:
        return self._written + len(self._pending)

    def add(self, event: Event) -> None:
        pending = self._pending
        pending.append(event)
        if len(pending) >= SPOOL_BATCH:
            self._encode()

    def _encode(self) -> None:
        pending = self._pending
        if not pending:
            return
        if self.ordered:
            ts = list(map(_event_t, pending))
            if ts[0] < self._last_t or ts != sorted(ts):  # sorted: linear on a sorted batch
                self.ordered = False
            self._last_t = ts[-1]
        buf = self._buf
        buf += self._encoder.encode_lines(pending)
        self._written += len(pending)
        pending.clear()
        if len(buf) >= 1 << 20:
            self._fh.write(buf)
            buf.clear()

    def close(self) -> Path:
        """Flush, and sort by time if the events came out of order; returns the path. Idempotent."""
        if self._fh.closed:
            return self.path
        self._encode()
        self._fh.write(self._buf)
        self._buf.clear()
        self._fh.close()
        if not self.ordered:
            _sort_lines(self.path)
        return self.path


def _sort_lines(path: Path, chunk: int = SORT_CHUNK) -> None:
    """Stable external sort of a JSON-lines file by each line's `t`: sorted runs of `chunk`
    lines in temp files beside it, merged (heapq.merge keeps the first run's line on a tie)."""
    with contextlib.ExitStack() as stack:
        runs: list[IO[bytes]] = []
        with path.open("rb") as fh:
            while True:
                lines = [line for _, line in zip(range(chunk), fh, strict=False)]
                if not lines:
                    break
                lines.sort(key=lambda line: _t_decoder.decode(line).t)  # list.sort is stable
                run = stack.enter_context(tempfile.TemporaryFile(dir=path.parent))
                run.writelines(lines)
                run.seek(0)
                runs.append(run)
        tmp = path.with_name(path.name + ".sorted")
        with tmp.open("wb") as out:
            out.writelines(heapq.merge(*runs, key=lambda line: _t_decoder.decode(line).t))
        os.replace(tmp, path)


PACKAGE_EXECS_KEPT = 20


def exec_line(e: Event, verdict: Verdict) -> str | None:
    """`argv` of a successful exec that runs package code (the package's own, or a toolchain
    host such as setup.py or a PEP 517 hook, whose exec the toolchain trusts), else None."""
    if e.kind != KIND_PROCESS or e.op != "exec" or not e.ok:
        return None
    if verdict.toolchain and verdict.role not in (Role.HOST, Role.PACKAGE):
        return None
    return shlex.join(e.argv or [e.path or "?"])[:300]


def unprobed_package_code(events: Iterable[Event], verdicts: dict[int, Verdict]) -> list[str]:
    """exec_line of each event, once each, at most PACKAGE_EXECS_KEPT (a batch form for tests)."""
    found: list[str] = []
    for e in events:
        line = exec_line(e, verdicts[id(e)])
        if line is not None and line not in found and len(found) < PACKAGE_EXECS_KEPT:
            found.append(line)
    return found


class PhaseDigest:
    """What one phase's events give: its Analysis record builder, process tree, probes, count."""

    def __init__(self, phase: str) -> None:
        self.phase = phase
        self.package_execs: list[str] = []  # exec_line of each, for a phase traced without probes
        self.aggregate = PhaseAggregator(exclude_comms=frozenset())  # bwrap's setup is gone already
        self.alive = AliveTracker()
        self.lookup = LookupProbes()
        self.addresses: set[str] = set()  # network events' addresses, for Sockets' Hostnames
        self.events = 0


class RunDigest:
    """The run's one pass over its events, phase after phase (see the module docstring)."""

    def __init__(self, eco: Ecosystem, bait_paths: Iterable[str], marker: str, spool: EventSpool) -> None:
        self.classifier = Classifier(eco.toolchain_rules())
        self.summary = EventSummary(bait_paths)
        self.marker = marker
        self.spool = spool
        self.stage_writes: list[dict[str, Any]] = []
        self.stage_executed = False
        self.phases: dict[str, PhaseDigest] = {}

    @property
    def events(self) -> int:
        return self.spool.count

    def follow(self, phase: str, events: Iterable[Event], udp_sent: PhaseSends) -> FollowedPhase:
        """`phase` in a thread, over events that come while the phase runs (a tracer's `follow`)."""
        return FollowedPhase(self, phase, events, udp_sent)

    def phase(self, phase: str, events: Iterable[Event], udp_sent: Container[tuple[Any, Any]]) -> PhaseDigest:
        digest = self.phases[phase] = PhaseDigest(phase)
        # the per-event loop of a run: bound methods, no call per consumer it can avoid
        spool_add, aggregate_add = self.spool.add, digest.aggregate.add
        verdict_of, alive_add, summary_add = self.classifier.verdict, digest.alive.add, self.summary.add
        lookup_add, addresses, marker = digest.lookup.add, digest.addresses, self.marker
        package_execs = digest.package_execs
        count = 0
        for e in iter_without_sandbox_setup(events):
            kind = e.kind
            if kind == KIND_NETWORK:
                e = mark_lookup_probe(e, udp_sent)
            spool_add(e)
            count += 1
            aggregate_add(e)
            verdict = verdict_of(e)
            alive_add(e, verdict)
            if kind == KIND_PROCESS and len(package_execs) < PACKAGE_EXECS_KEPT:
                line = exec_line(e, verdict)
                if line is not None and line not in package_execs:
                    package_execs.append(line)
            summary_add(e, verdict)
            if kind == KIND_NETWORK:
                lookup_add(e)
                if e.address:
                    addresses.add(e.address)
            elif kind == KIND_FILE and e.path == marker and e.op in ("write", "create") and e.errno is None:
                self.stage_executed = True
                if len(self.stage_writes) < STAGE_WRITES_KEPT:
                    self.stage_writes.append({"phase": e.phase, "pid": e.pid, "exe": e.exe, "t": e.t})
        digest.events = count
        return digest

    def second_stage_info(self) -> dict[str, Any]:
        """run.json's `second_stage_executed` and `second_stage` (fakenet.stages.second_stage_info)."""
        return {
            "second_stage_executed": self.stage_executed,
            "second_stage": {"marker": self.marker, "writes": list(self.stage_writes)},
        }


class FollowedPhase(ResultThread[PhaseDigest]):
    """RunDigest.phase running in a thread while the phase runs; `join` gives its PhaseDigest.

    The thread shares the GIL with the registry service's and fake network's threads, which serve
    the sandbox meanwhile: the reader sleeps at the end of the log and reads in bounded chunks,
    so it takes the GIL in short turns (docs/performance.md measures the phase with and without).
    """

    def __init__(self, run: RunDigest, phase: str, events: Iterable[Event], udp_sent: PhaseSends) -> None:
        super().__init__(lambda: run.phase(phase, events, udp_sent), f"osptrack-digest-{phase}")
