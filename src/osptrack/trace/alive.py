"""Processes still alive when a phase ended: killed by the timeout or by the sandbox's teardown.

A daemon killed at the end leaves only its clone (and a `killed by SIGKILL` exit) in the trace;
this names it. Two sources, merged by host pid:

- the trace: every process (not a thread) whose exit came at or after the phase's end, or never
  came. The end is the harness command's exit, or, when a limit ended the phase, the moment the
  limit hit (`ended_at`). When the command exits, bwrap's pid namespace ends and the kernel kills
  what is left, which the trace records as exits just after the command's.
- the run cgroup's members read before the kill (osptrack.sandbox.limits.LiveProcess): they
  give the start time and argv the kernel holds, and catch what the trace lost.

exe and argv come from the trace where it knows the process (the sandbox's own paths), else
from /proc.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from osptrack.sandbox.limits import LiveProcess
from osptrack.trace.events import KIND_PROCESS, Event
from osptrack.trace.roles import Verdict
from osptrack.trace.tree import TreeBuilder

ALIVE_CAP = 256


def alive_at_end(
    events: list[Event],
    ended_at: float,
    limit_hit: bool,
    live: Iterable[LiveProcess] = (),
    verdicts: dict[int, Verdict] | None = None,
) -> list[dict[str, Any]]:
    """One dict per process alive at the phase's end: pid, ppid, exe, argv, started, toolchain."""
    tracker = AliveTracker()
    for e in events:
        tracker.add(e, verdicts.get(id(e)) if verdicts is not None else None)
    return tracker.alive(ended_at, limit_hit, live)


class AliveTracker:
    """`alive_at_end` fed one event (and its toolchain verdict) at a time; keeps per-process state."""

    def __init__(self) -> None:
        self.tree = TreeBuilder()
        self.threads: set[int] = set()
        self.born: dict[int, float] = {}
        self.last: dict[int, Verdict | None] = {}  # pid -> the verdict of its last event
        self.root: int | None = None

    def add(self, e: Event, verdict: Verdict | None) -> None:
        self.tree.add(e)
        self.last[e.pid] = verdict
        if e.kind != KIND_PROCESS:
            return
        if e.op == "exec" and self.root is None and e.exe is not None and e.exe.endswith("/bwrap"):
            self.root = e.pid  # the harness command (bwrap's own setup is not in the events)
        elif e.op == "clone" and e.child_pid is not None:
            self.born.setdefault(e.child_pid, e.t)  # a process starts at its parent's clone
            if any("CLONE_THREAD" in a for a in e.args):
                self.threads.add(e.child_pid)

    def alive(
        self, ended_at: float, limit_hit: bool, live: Iterable[LiveProcess] = ()
    ) -> list[dict[str, Any]]:
        tree, threads, born, root = self.tree.nodes, self.threads, self.born, self.root
        end = ended_at
        if not limit_hit and root is not None and root in tree and tree[root].last_t is not None:
            end = tree[root].last_t or ended_at  # the command's exit: what is left is torn down
        found: dict[int, dict[str, Any]] = {}
        for pid, node in tree.items():
            if pid in threads or node.first_t is None or node.first_t > end:
                continue
            exited = node.exit_code is not None or node.signal is not None
            if pid == root and not limit_hit:
                continue  # its exit is the end
            if exited and (node.last_t or 0.0) < end:
                continue
            image = node if node.commands else tree.get(node.ppid) if node.ppid is not None else None
            argv = (
                image.commands[-1] if image is not None and image.commands else None
            )  # a fork runs its parent's
            found[pid] = _entry(pid, node.ppid, node.exe, argv, born.get(pid, node.first_t))
            found[pid]["killed_by"] = node.signal
        for proc in live:
            entry = found.get(proc.pid)
            if entry is None:
                known = tree.get(proc.pid)
                if (
                    proc.exe is not None
                    and proc.exe.endswith("/bwrap")
                    and (known is None or known.events == 0)
                ):
                    continue  # the sandbox launcher itself: its setup is not in the events
                entry = found[proc.pid] = _entry(proc.pid, None, proc.exe, list(proc.argv), proc.started)
                entry["killed_by"] = None
            if proc.started is not None:
                entry["started"] = proc.started
            if not entry["argv"]:
                entry["argv"] = list(proc.argv)
        out = []
        for pid in sorted(found)[:ALIVE_CAP]:
            entry = found[pid]
            verdict = self.last.get(pid)
            entry["toolchain"] = verdict.rule if verdict is not None and verdict.toolchain else None
            out.append(entry)
        return out


def _entry(
    pid: int, ppid: int | None, exe: str | None, argv: list[str] | None, started: float | None
) -> dict[str, Any]:
    return {"pid": pid, "ppid": ppid, "exe": exe, "argv": list(argv or []), "started": started}
