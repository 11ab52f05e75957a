"""Tracer backends: what watches a phase's sandbox from outside and turns it into `Event`s.

One small interface (`Tracer`), one module per implementation (`strace`, `ebpf`), chosen by
name with `get(name)`; `auto` (the default) is eBPF where this kernel and machine allow it,
strace otherwise, and `choose()` says why. Both produce the same `Event` schema, so nothing
downstream of `parse` knows which one ran. `follow` gives `parse`'s events while the phase
still runs, so the run digests them meanwhile (osptrack.trace.follow).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from osptrack.trace.common import ParseStats

if TYPE_CHECKING:  # the run chooses its tracer before the first phase; msgspec loads after
    from osptrack.trace.events import Event

NAMES = ("auto", "ebpf", "strace")


def default_name() -> str:
    """`auto`, unless OSPTRACK_TRACER says otherwise (CI, or a machine comparing both)."""
    return os.environ.get("OSPTRACK_TRACER", "auto")


class Tracer(Protocol):
    name: str

    def available(self) -> tuple[bool, str]:
        """(usable here, why or why not), cheap after the first call."""
        ...

    def command(self, log: Path, user: str | None = "nobody", probes: bool = True) -> list[str]:
        """argv prefix ending with `--` that runs the command traced, as `user`, into `log`.

        `probes=False` leaves out the stat/access/readlink probes (a phase that runs no package code).
        """
        ...

    def new_stats(self) -> ParseStats:
        """Counters `parse` fills (run.json's trace block)."""
        ...

    def parse(self, log: Path, phase: str, stats: ParseStats) -> Iterator[Event]:
        """The phase's events, in the order the calls started."""
        ...

    def follow(self, log: Path, phase: str, stats: ParseStats, done: threading.Event) -> Iterator[Event]:
        """`parse`'s events, read while the tracer still writes `log` (osptrack.trace.follow):
        the iterator ends once `done` is set (the tracer has exited) and the log is read."""
        ...

    def lost(self, stats: ParseStats) -> int:
        """Events the tracer knows it could not record (0 when it cannot lose any silently)."""
        ...


@dataclass(frozen=True)
class Choice:
    tracer: Tracer
    reason: str


def get(name: str) -> Tracer:
    if name == "strace":
        from osptrack.trace.tracers.strace import StraceTracer

        return StraceTracer()
    if name == "ebpf":
        from osptrack.trace.tracers.ebpf import EbpfTracer

        return EbpfTracer()
    raise ValueError(f"unknown tracer {name!r} (one of: {', '.join(NAMES)})")


def choose(name: str = "auto") -> Choice:
    """The tracer to use for `name`; `auto` falls back to strace when eBPF is unavailable.

    An explicit `ebpf` that cannot work here raises ValueError (a bad choice, exit 2).
    """
    if name not in NAMES:
        raise ValueError(f"unknown tracer {name!r} (one of: {', '.join(NAMES)})")
    if name == "strace":
        return Choice(get("strace"), "asked for (--tracer strace)")
    ebpf = get("ebpf")
    ok, why = ebpf.available()
    if name == "ebpf":
        if not ok:
            raise ValueError(f"--tracer ebpf is unavailable here: {why}")
        return Choice(ebpf, "asked for (--tracer ebpf)")
    if ok:
        return Choice(ebpf, f"default: {why}")
    return Choice(get("strace"), f"default, eBPF unavailable: {why}")
