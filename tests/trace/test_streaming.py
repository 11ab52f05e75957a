"""Streaming assembly (osptrack.digest) against the in-memory one it replaced, on synthetic logs.

`in_memory` is the run's assembly as it was before streaming: every phase's events in a list,
then the list functions (phase_record, alive_at_end, summary.*, second_stage_info, judge over the
sorted list). `streaming` is what run.py does now: one pass per phase into RunDigest, the
events spooled to events.jsonl, the verdict reading that file back. Every output must be equal.
"""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from msgspec.structs import replace

from osptrack import ecosystems, summary
from osptrack.digest import SPOOL_BATCH, EventSpool, RunDigest
from osptrack.sandbox.fakenet.stages import second_stage_info
from osptrack.trace.aggregate import phase_record
from osptrack.trace.alive import alive_at_end
from osptrack.trace.events import Event, EventLog, encode_events_jsonl
from osptrack.trace.refine import lookup_probe_sockets, mark_lookup_probes, without_sandbox_setup
from osptrack.trace.strace import parse_log
from osptrack.verdict import RunData, judge
from stream_logs import BAIT, MARKER, lines

PHASES = ("install", "import")
UDP_SENT: set[tuple[Any, Any]] = set()  # the UDP connect sent nothing: a lookup probe
RECORDS = [
    {
        "kind": "dns",
        "phase": "install",
        "qname": "c2.example.",
        "qtype": "A",
        "answer": ["198.18.1.5"],
        "t": 1.0,
    },
    {
        "kind": "tcp",
        "phase": "install",
        "dst": "198.18.1.5",
        "dst_port": 443,
        "hostname": "c2.example",
        "t": 2.0,
    },
]
IP_NAMES = {"198.18.1.5": ["c2.example"]}
ENDED_AT = 1_900_000_000.0


def _run_info(eco: str) -> dict[str, Any]:
    return {
        "package": {"ecosystem": eco, "name": "scale", "version": "1.0"},
        "honeytokens": [{"kind": "aws", "planted": [BAIT]}],
        "exfiltration": [],
    }


def _phase_logs(modules: int, disorder: bool) -> dict[str, list[str]]:
    return {p: list(lines(p, modules, disorder=disorder)) for p in PHASES}


def in_memory(logs: dict[str, list[str]]) -> dict[str, Any]:
    eco = ecosystems.get("pypi")
    all_events: list[Event] = []
    ends: dict[str, list[Event]] = {}
    results: dict[str, Any] = {}
    phases: dict[str, dict[str, Any]] = {}
    for phase in PHASES:
        events = without_sandbox_setup(parse_log(logs[phase], phase))
        events = mark_lookup_probes(events, UDP_SENT)
        all_events.extend(events)
        addresses = {e.address for e in events if e.kind == "network" and e.address}
        results[phase] = phase_record(
            events, b"out", b"err", "completed", [r for r in RECORDS if r["phase"] == phase],
            ip_names={a: IP_NAMES.get(a, []) for a in addresses}, exclude_comms=frozenset(),
        )  # fmt: skip
        phases[phase] = {"events": len(events), "lookup_probes": lookup_probe_sockets(events)}
        ends[phase] = events
    verdicts = summary.toolchain_verdicts(eco, all_events)
    reads = summary.bait_reads(all_events, [BAIT], verdicts)
    for phase, events in ends.items():
        phases[phase]["alive_at_end"] = alive_at_end(events, ENDED_AT, False, (), verdicts)
    run_info = _run_info("pypi") | {
        "phases": phases,
        **second_stage_info(all_events, MARKER),
        "bait_reads": reads,
        "probes": summary.probes(all_events, verdicts),
        "events": len(all_events),
    }
    notable = summary.notable(eco, results, all_events, RECORDS, reads, [], verdicts)
    run_info["notable"] = notable
    run_info["findings"] = summary.phase_findings(eco, results, all_events, RECORDS, notable)
    result = {"Analysis": results}
    all_events.sort(key=lambda e: e.t)
    verdict = judge(RunData(run_info=run_info, events=all_events, records=RECORDS, result=result)).to_dict()
    return {
        "result": result,
        "run_info": run_info,
        "verdict": verdict,
        "events.jsonl": encode_events_jsonl(all_events),
    }


def streaming(logs: dict[str, Iterable[str]], folder: Path, read_back: bool = True) -> dict[str, Any]:
    eco = ecosystems.get("pypi")
    spool = EventSpool(folder / "events.jsonl")
    digest = RunDigest(eco, [BAIT], MARKER, spool)
    results: dict[str, Any] = {}
    phases: dict[str, dict[str, Any]] = {}
    for phase in PHASES:
        ph = digest.phase(phase, parse_log(logs[phase], phase), UDP_SENT)
        results[phase] = ph.aggregate.record(
            b"out", b"err", "completed", [r for r in RECORDS if r["phase"] == phase],
            ip_names={a: IP_NAMES.get(a, []) for a in ph.addresses},
        )  # fmt: skip
        phases[phase] = {"events": ph.events, "lookup_probes": ph.lookup.sockets()}
    path = spool.close()
    reads = digest.summary.bait_reads()
    for phase, ph in digest.phases.items():
        phases[phase]["alive_at_end"] = ph.alive.alive(ENDED_AT, False, ())
    run_info = _run_info("pypi") | {
        "phases": phases,
        **digest.second_stage_info(),
        "bait_reads": reads,
        "probes": digest.summary.probes(),
        "events": digest.events,
    }
    notable = digest.summary.notable(eco, results, RECORDS, reads, [])
    run_info["notable"] = notable
    run_info["findings"] = digest.summary.phase_findings(eco, results, RECORDS, notable)
    result = {"Analysis": results}
    argv = digest.summary.argv.argv if spool.ordered else None  # as run.py passes it
    run = RunData(run_info=run_info, events=EventLog(path), records=RECORDS, result=result, argv=argv)
    verdict = judge(run).to_dict()
    jsonl = path.read_bytes() if read_back else b""
    return {"result": result, "run_info": run_info, "verdict": verdict, "events.jsonl": jsonl}


@pytest.mark.parametrize("disorder", [False, True], ids=["in-order", "out-of-order"])
def test_streaming_gives_what_the_in_memory_assembly_gave(tmp_path: Path, disorder: bool) -> None:
    logs = _phase_logs(300, disorder)
    old, new = in_memory(logs), streaming(logs, tmp_path)
    assert new["events.jsonl"] == old["events.jsonl"]
    assert new["result"] == old["result"]
    assert new["run_info"] == old["run_info"]
    assert new["verdict"] == old["verdict"]
    # the logs exercise what is compared (a comparison of empty outputs would prove nothing)
    info = new["run_info"]
    assert info["bait_reads"] and info["probes"] and info["second_stage_executed"]
    assert info["notable"]["commands"] and info["notable"]["listening"] and info["notable"]["connections"]
    assert any(p["alive_at_end"] for p in info["phases"].values())
    assert any(p["lookup_probes"] for p in info["phases"].values())
    assert new["verdict"]["findings"]
    assert len(new["result"]["Analysis"]["install"]["Files"]) > 300


def test_out_of_order_events_are_sorted_stably_in_small_runs(tmp_path: Path) -> None:
    """The external sort (runs of SORT_CHUNK lines, merged) equals Python's stable sort."""
    from osptrack import digest as digest_mod

    logs = _phase_logs(400, True)
    events = [e for p in PHASES for e in parse_log(logs[p], p)]
    spool = EventSpool(tmp_path / "events.jsonl")
    for e in events:
        spool.add(e)
    spool._encode()  # the last batch, as close() would, without close()'s own sort
    assert not spool.ordered
    spool._fh.write(spool._buf)
    spool._buf.clear()
    spool._fh.close()
    digest_mod._sort_lines(spool.path, chunk=37)  # many small runs, ties across them
    assert spool.path.read_bytes() == encode_events_jsonl(sorted(events, key=lambda e: e.t))


def _peak(events: int, tmp_path: Path) -> int:
    """tracemalloc peak of parsing and assembling one install of about `events` events."""
    modules = int(events / (1 + 1 / 7 + 1 / 11))
    logs = {"install": lines("install", modules, repeat_paths=200), "import": lines("import", 10)}
    folder = tmp_path / str(events)
    folder.mkdir()
    tracemalloc.start()
    try:
        out = streaming(logs, folder, read_back=False)  # the log lines are made as they are parsed
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert out["run_info"]["events"] >= events * 0.9
    return peak


def test_memory_does_not_grow_with_the_number_of_events(tmp_path: Path) -> None:
    small, large = _peak(10_000, tmp_path), _peak(100_000, tmp_path)
    # Holding the events (as the in-memory assembly did) costs well over 500 bytes each: 90k
    # more events would add > 45 MB. The stream keeps per-path and per-process state only.
    assert large < small + 4 * 2**20, (small, large)


def test_holding_the_events_would_exceed_that_bound() -> None:
    """The bound above can fail: a list of the same events grows by far more than it allows."""
    logs = lines("install", int(50_000 / (1 + 1 / 7 + 1 / 11)), repeat_paths=200)
    tracemalloc.start()
    try:
        held = list(parse_log(logs, "install"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(held) > 45_000
    assert peak > 4 * 2**20 * 5


def test_events_are_not_walked_by_the_garbage_collector() -> None:
    # A phase's reader holds all its events until the log is whole (they are sorted by start);
    # were they tracked, every collection in the follower thread would walk them all again.
    events = list(parse_log(_phase_logs(20, False)["install"], "install"))
    marked = mark_lookup_probes(events, UDP_SENT)  # copies made with msgspec's replace
    assert len(events) > 40 and marked != events
    assert not any(gc.is_tracked(e) for e in events + marked)


@pytest.mark.parametrize("at", [None, 1, SPOOL_BATCH - 1, SPOOL_BATCH, SPOOL_BATCH + 1, 2 * SPOOL_BATCH])
def test_the_spool_writes_and_orders_as_one_event_at_a_time_would(tmp_path: Path, at: int | None) -> None:
    # Events are encoded a batch at a time: one event out of time order, inside a batch or
    # first in one (behind the batch before), is noticed, and the file is what encoding
    # each event in turn and a stable sort give.
    events = sorted(parse_log(_phase_logs(2200, False)["install"], "install"), key=lambda e: e.t)
    assert len(events) > 2 * SPOOL_BATCH + 1
    if at is not None:
        events[at] = replace(events[at], t=events[at - 1].t - 0.5)
    spool = EventSpool(tmp_path / "events.jsonl")
    for e in events:
        spool.add(e)
    assert spool.count == len(events)
    spool.close()
    assert spool.ordered == (at is None)
    assert spool.path.read_bytes() == encode_events_jsonl(sorted(events, key=lambda e: e.t))
