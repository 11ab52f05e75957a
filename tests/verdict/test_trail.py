"""The verdict's records from the run's own verdict trail (roles.VerdictTrail, kept as the digest
passes the events) are the records it builds by classifying events.jsonl again."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from test_rules import CASES

from osptrack import ecosystems
from osptrack.summary import EventSummary
from osptrack.trace.events import EventLog
from osptrack.trace.roles import Classifier
from osptrack.verdict import RunData, judge
from osptrack.verdict.facts import iter_records
from synth_runs import PIP, Run

MARKER = "/tmp/.s3f9c1a2b7d4e"


def _toolchain_reads_bait_and_writes_marker(r: Run) -> None:
    """npm (the toolchain) reads its .npmrc bait and writes the marker: no record of their own,
    but the bait-read and second-stage records point at their lines."""
    r.ecosystem = "npm"
    r.exec(10, ["/usr/bin/npm", "install", "/input/pkg/x.tgz"], by="/usr/bin/bwrap")
    r.open(10, "/usr/lib/node_modules/npm/lib/cli.js")
    r.bait_read(10, "/root/.npmrc", exe="/usr/bin/npm")
    r.open(10, "/root/.npmrc", exe="/usr/bin/npm")  # again: the index keeps the first
    write = r.open(10, MARKER, op="write", exe="/usr/bin/npm")
    r.connect(10, "198.18.0.53", 53, exe="/usr/bin/npm")
    r.clone(10, 11, exe="/usr/bin/npm")
    r.exec(11, ["/bin/sh", "-c", "node install.js"], by="/usr/bin/npm", ppid=10)
    r.open(11, "/etc/passwd", exe="/bin/sh")  # the package's: a record
    r.info["second_stage_executed"] = True
    r.info["second_stage"] = {"marker": MARKER, "writes": [{"phase": "install", "pid": 10, "t": write.t}]}


def _pip_only(r: Run) -> None:
    r.exec(10, PIP, by="/usr/bin/bwrap")
    r.open(10, "/root/site/x/__init__.py", op="write")
    r.clone(10, 11)
    r.exec(11, ["/usr/bin/lsb_release", "-a"], ppid=10)
    r.connect(10, "/run/x.sock", 0, family="AF_UNIX")


BUILDS: list[Callable[[Run], None]] = [
    _toolchain_reads_bait_and_writes_marker,
    _pip_only,
    *(case[1] for case in CASES),
]


def _with_trail(folder: Path) -> RunData:
    """The run folder with the trail the run's pass keeps (EventSummary.add, in log order)."""
    run = RunData.load(folder, lazy=True)
    eco = ecosystems.get(run.run_info["package"]["ecosystem"])
    classifier = Classifier(eco.toolchain_rules())
    summary = EventSummary()
    for e in run.events:
        summary.add(e, classifier.verdict(e))
    run.trail = summary.trail
    return run


@pytest.mark.parametrize("build", BUILDS, ids=[b.__name__ for b in BUILDS])
def test_records_and_verdict_from_the_trail_are_those_of_a_fresh_pass(
    tmp_path: Path, build: Callable[[Run], None]
) -> None:
    r = Run()
    build(r)
    folder = r.write(tmp_path / "run")
    fresh = RunData.load(folder, lazy=True)
    trailed = _with_trail(folder)
    assert trailed.trail is not None and trailed.trail.valid
    eco = ecosystems.get(fresh.run_info["package"]["ecosystem"])
    for toolchain_records in (False, True):
        expected = list(iter_records(fresh, eco, toolchain_records))
        assert list(iter_records(trailed, eco, toolchain_records)) == expected
    assert judge(trailed).to_dict() == judge(fresh).to_dict()
    # held in memory instead of read lazily: the same again
    listed = RunData.load(folder)
    listed.trail = trailed.trail
    assert list(iter_records(listed, eco, False)) == list(iter_records(fresh, eco, False))


def test_the_toolchain_case_points_at_the_toolchain_lines(tmp_path: Path) -> None:
    """The case above where skipping undecoded lines could go wrong: both indexes name npm's lines."""
    r = Run()
    _toolchain_reads_bait_and_writes_marker(r)
    folder = r.write(tmp_path / "run")
    records = list(iter_records(_with_trail(folder), ecosystems.get("npm"), False))
    lines = (folder / "events.jsonl").read_text().splitlines()
    bait = next(rec for cat, rec in records if cat == "bait_read")
    stage = next(rec for cat, rec in records if cat == "second_stage")
    assert '"/root/.npmrc"' in lines[int(bait["_ref"][6:])] and bait["pid"] == 10
    assert MARKER in lines[int(stage["_ref"][6:])]
    # npm's own file and network events got no record; the shell's open did
    assert [rec["path"] for cat, rec in records if cat == "file_event"] == ["/etc/passwd"]
    assert not [rec for cat, rec in records if cat == "network_connection"]


def test_a_trail_of_another_length_is_an_error_not_a_shifted_verdict(tmp_path: Path) -> None:
    r = Run()
    _pip_only(r)
    folder = r.write(tmp_path / "run")
    run = _with_trail(folder)
    assert run.trail is not None
    run.trail.verdicts.pop()
    with pytest.raises(ValueError):
        list(iter_records(run, ecosystems.get("pypi"), False))
    listed = RunData.load(folder)
    listed.trail = run.trail
    with pytest.raises(ValueError):
        list(iter_records(listed, ecosystems.get("pypi"), False))
    assert sum(1 for _ in EventLog(folder / "events.jsonl")) == len(run.trail) + 1
