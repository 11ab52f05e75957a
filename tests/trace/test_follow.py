"""Following a trace log while its tracer writes it (osptrack.trace.follow, Tracer.follow,
RunDigest.follow): the events, counters and digest are those of reading the finished log.

A writer thread appends a log in uneven pieces (cutting lines and records in two) with pauses,
as a tracer does; the follower must not end at a momentary end of file, only once told the
writer is done, and must give what `parse` gives for the finished file.
"""

from __future__ import annotations

import dataclasses
import random
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from osptrack import ecosystems
from osptrack.digest import EventSpool, PhaseSends, RunDigest
from osptrack.trace import follow
from osptrack.trace.events import Event
from osptrack.trace.tracers import get
from stream_logs import BAIT, MARKER, lines

PHASES = ("install", "import")


class Writer:
    """Appends `data` to `path` in random pieces from a thread; sets `done` when all is written
    (as run_phase does once the tracer has exited)."""

    def __init__(
        self, path: Path, data: bytes, seed: int, max_piece: int = 3000, pause_s: float = 0.002
    ) -> None:
        self.done = threading.Event()
        self.path, self.data, self.rng = path, data, random.Random(seed)
        self.max_piece, self.pause_s = max_piece, pause_s
        self.thread = threading.Thread(target=self._write, daemon=True)

    def start(self) -> Writer:
        self.thread.start()
        return self

    def _write(self) -> None:
        time.sleep(self.pause_s * 5)  # the follower starts before the log exists
        with open(self.path, "wb", buffering=0) as fh:
            pos = 0
            while pos < len(self.data):
                piece = self.rng.randint(1, self.max_piece)
                fh.write(self.data[pos : pos + piece])
                pos += piece
                if self.rng.random() < 0.3:
                    time.sleep(self.pause_s)
        self.done.set()


def _file_lines(path: Path) -> list[str]:
    with open(path, encoding="latin-1", newline="\n") as fh:
        return list(fh)


def _strace_log(tmp_path: Path, phase: str = "install", cut: bool = False) -> bytes:
    text = "".join(line + "\n" for line in lines(phase, 400, disorder=True))
    if cut:
        text = text[: len(text) - 17]  # the log ends inside a line (a killed strace)
    return text.encode("latin-1")


@pytest.mark.parametrize("cut", [False, True])
def test_lines_are_those_of_the_finished_file(tmp_path: Path, cut: bool):
    data = _strace_log(tmp_path, cut=cut) + "é\r\x0bline\n".encode("latin-1")  # only \n ends a line
    finished = tmp_path / "finished.log"
    finished.write_bytes(data)
    writer = Writer(tmp_path / "growing.log", data, seed=1).start()
    got = list(follow.lines(writer.path, writer.done, chunk_bytes=777))
    assert got == _file_lines(finished)
    assert "".join(got).encode("latin-1") == data


def test_the_follower_ends_when_told_not_at_the_end_of_the_file(tmp_path: Path):
    log = tmp_path / "log"
    done = threading.Event()
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.extend(follow.chunks(log, done, poll_s=0.005)), daemon=True)
    reader.start()
    time.sleep(0.05)
    assert reader.is_alive()  # no log yet, the tracer has not started: wait, do not fail
    with open(log, "wb", buffering=0) as fh:
        fh.write(b"first ")
        time.sleep(0.05)
        assert reader.is_alive()  # at the end of the file, but the writer goes on
        fh.write(b"second")
    done.set()
    reader.join(5)
    assert not reader.is_alive()
    assert b"".join(got) == b"first second"


def test_the_follower_sleeps_long_at_the_end_of_the_log_yet_ends_at_once_when_told(tmp_path: Path):
    # Each wake-up costs CPU beside the package, so the reader sleeps long (follow.POLL_S); the
    # phase's end must not wait for that sleep: `done` wakes it.
    assert follow.POLL_S >= 0.1
    log = tmp_path / "log"
    log.write_bytes(b"first")
    done = threading.Event()
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.extend(follow.chunks(log, done)), daemon=True)
    reader.start()
    time.sleep(0.3)  # asleep at the end of the log
    with open(log, "ab") as fh:
        fh.write(b" last")
    t0 = time.monotonic()
    done.set()
    reader.join(5)
    assert not reader.is_alive() and b"".join(got) == b"first last"
    assert time.monotonic() - t0 < follow.POLL_S / 2


def test_a_log_that_never_appears_fails_as_reading_it_would(tmp_path: Path):
    done = threading.Event()
    done.set()
    with pytest.raises(FileNotFoundError):
        list(follow.chunks(tmp_path / "never", done))


def _same_stats(a: Any, b: Any) -> None:
    assert dataclasses.asdict(a) == dataclasses.asdict(b)


@pytest.mark.parametrize("cut", [False, True])
def test_strace_follow_gives_the_events_of_parse(tmp_path: Path, cut: bool):
    tracer = get("strace")
    data = _strace_log(tmp_path, cut=cut)
    finished = tmp_path / "finished.log"
    finished.write_bytes(data)
    want_stats = tracer.new_stats()
    want = list(tracer.parse(finished, "install", want_stats))
    writer = Writer(tmp_path / "growing.log", data, seed=2).start()
    stats = tracer.new_stats()
    got = list(tracer.follow(writer.path, "install", stats, writer.done))
    assert got == want and len(want) > 400
    _same_stats(stats, want_stats)
    assert stats.truncated == cut


def _ebpf_log(tmp_path: Path) -> Path:
    """A real eBPF log of a small shell script (processes, files, a socket)."""
    tracer = get("ebpf")
    work = tmp_path / "w"
    work.mkdir()
    log = tmp_path / "ebpf.log"
    script = 'for i in 1 2 3; do echo $i > "$D/f$i"; cat "$D/f$i" /etc/hostname > /dev/null; done; ls / > /dev/null'
    subprocess.run(
        [*tracer.command(log, user=None), "/bin/sh", "-c", script],
        env={"D": str(work), "PATH": "/usr/bin:/bin"}, capture_output=True, timeout=120, check=True,
    )  # fmt: skip
    return log


@pytest.mark.skipif(
    not get("ebpf").available()[0], reason=f"eBPF tracer unavailable: {get('ebpf').available()[1]}"
)
@pytest.mark.parametrize(("cut", "max_piece"), [(False, 4000), (False, 7), (True, 500)])
def test_ebpf_follow_gives_the_events_of_parse(tmp_path: Path, cut: bool, max_piece: int):
    tracer = get("ebpf")
    data = _ebpf_log(tmp_path).read_bytes()
    if cut:
        data = data[: len(data) - 5]  # the log ends inside a record
    finished = tmp_path / "finished.log"
    finished.write_bytes(data)
    want_stats = tracer.new_stats()
    want = list(tracer.parse(finished, "install", want_stats))
    writer = Writer(tmp_path / "growing.log", data, seed=3, max_piece=max_piece, pause_s=0.0005).start()
    stats = tracer.new_stats()
    got = list(tracer.follow(writer.path, "install", stats, writer.done))
    assert got == want and len(want) > 20
    _same_stats(stats, want_stats)
    assert stats.truncated == cut


def test_phase_sends_answers_sent_at_once_and_waits_for_the_rest():
    seen: set[tuple[Any, Any]] = {("198.18.0.1", 53)}
    sends = PhaseSends(lambda: seen)
    assert ("198.18.0.1", 53) in sends  # already seen: final, no wait
    answers: list[bool] = []
    asker = threading.Thread(target=lambda: answers.append(("198.18.1.9", 443) in sends), daemon=True)
    asker.start()
    time.sleep(0.05)
    assert asker.is_alive() and not answers  # not seen yet: it may still be sent this phase
    sends.finish({("198.18.0.1", 53), ("198.18.1.9", 443)})
    asker.join(5)
    assert answers == [True]
    assert ("198.18.1.10", 443) not in sends
    failed = PhaseSends(lambda: set())
    failed.finish(None)
    with pytest.raises(RuntimeError):
        ("198.18.1.9", 443) in failed  # noqa: B015


UDP_SENT: set[tuple[Any, Any]] = set()  # stream_logs' UDP connect sent nothing: a lookup probe


def _digest(tmp_path: Path, name: str, logs: dict[str, bytes], followed: bool) -> dict[str, Any]:
    eco = ecosystems.get("pypi")
    folder = tmp_path / name
    folder.mkdir()
    spool = EventSpool(folder / "events.jsonl")
    digest = RunDigest(eco, [BAIT], MARKER, spool)
    tracer = get("strace")
    results: dict[str, Any] = {}
    for i, phase in enumerate(PHASES):
        stats = tracer.new_stats()
        if followed:
            writer = Writer(folder / f"{phase}.log", logs[phase], seed=10 + i)
            sends = PhaseSends(lambda: set())  # nothing seen while the phase runs: the probe waits
            handle = digest.follow(phase, tracer.follow(writer.path, phase, stats, writer.done), sends)
            writer.start()
            writer.thread.join()
            sends.finish(UDP_SENT)
            ph = handle.join()
        else:
            log = folder / f"{phase}.log"
            log.write_bytes(logs[phase])
            ph = digest.phase(phase, tracer.parse(log, phase, stats), UDP_SENT)
        results[phase] = {
            "record": ph.aggregate.record(b"out", b"err", "completed", [], ip_names={}),
            "events": ph.events,
            "lookup_probes": ph.lookup.sockets(),
            "alive": ph.alive.alive(1_900_000_000.0, False, ()),
            "execs": ph.package_execs,
            "stats": dataclasses.asdict(stats),
        }
    path = spool.close()
    return {
        "phases": results,
        "ordered": spool.ordered,
        "bait_reads": digest.summary.bait_reads(),
        "probes": digest.summary.probes(),
        "second_stage": digest.second_stage_info(),
        "events.jsonl": path.read_bytes(),
    }


def test_digesting_while_following_gives_the_digest_of_the_finished_logs(tmp_path: Path):
    logs = {p: "".join(line + "\n" for line in lines(p, 300, disorder=True)).encode() for p in PHASES}
    after = _digest(tmp_path, "after", logs, followed=False)
    during = _digest(tmp_path, "during", logs, followed=True)
    assert during == after
    assert after["phases"]["install"]["lookup_probes"]  # the gated UDP connect was marked
    assert not after["ordered"]  # and events.jsonl needed its sort


def test_a_digest_that_fails_in_its_thread_fails_the_join(tmp_path: Path):
    eco = ecosystems.get("pypi")
    digest = RunDigest(eco, [BAIT], MARKER, EventSpool(tmp_path / "events.jsonl"))

    def broken() -> Iterator[Event]:
        raise OSError("the log went away")
        yield  # pragma: no cover

    handle = digest.follow("install", broken(), PhaseSends(lambda: set()))
    with pytest.raises(OSError, match="went away"):
        handle.join()
    digest.spool.close()
