"""The process tree of one phase, rebuilt from its events (for reports, hunting and tests).

`build_tree(events)` -> {pid: ProcessNode}. Parent links come from the events' `ppid` (which the
parser took from clone/fork/vfork return values), so the tree and events.jsonl always agree.
A pid reused after its exit keeps one node: later lives are appended to the same node (rare
within one phase; the events themselves stay exact).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from osptrack.trace.events import KIND_PROCESS, Event


@dataclass
class ProcessNode:
    pid: int
    ppid: int | None = None
    exe: str | None = None  # last successful exec (or inherited image)
    commands: list[list[str]] = field(default_factory=list)  # argv of each successful exec
    children: list[int] = field(default_factory=list)
    exit_code: int | None = None
    signal: str | None = None  # killed by
    first_t: float | None = None
    last_t: float | None = None
    events: int = 0


def build_tree(events: Iterable[Event]) -> dict[int, ProcessNode]:
    builder = TreeBuilder()
    for ev in events:
        builder.add(ev)
    return builder.nodes


class TreeBuilder:
    """`build_tree` one event at a time: the tree is per process, the events need not be kept."""

    def __init__(self) -> None:
        self.nodes: dict[int, ProcessNode] = {}

    def node(self, pid: int) -> ProcessNode:
        found = self.nodes.get(pid)
        if found is None:
            found = self.nodes[pid] = ProcessNode(pid)
        return found

    def add(self, ev: Event) -> None:
        n = self.nodes.get(ev.pid) or self.node(ev.pid)
        n.events += 1
        if n.first_t is None:
            n.first_t = ev.t
        n.last_t = ev.t
        if n.ppid is None and ev.ppid is not None:
            n.ppid = ev.ppid
            parent = self.node(ev.ppid)
            if ev.pid not in parent.children:
                parent.children.append(ev.pid)
        if n.exe is None:
            n.exe = ev.exe
        if ev.kind != KIND_PROCESS:
            return
        if ev.op == "exec" and ev.ret == 0 and ev.errno is None:
            n.exe = ev.path
            n.commands.append(list(ev.argv or []))
        elif ev.op == "clone" and ev.child_pid is not None and ev.errno is None:
            child = self.node(ev.child_pid)
            if child.ppid is None:
                child.ppid = ev.pid
            if ev.child_pid not in n.children:
                n.children.append(ev.child_pid)
        elif ev.op == "exit":
            n.exit_code, n.signal = ev.exit_code, ev.signal


def roots(tree: dict[int, ProcessNode]) -> list[int]:
    return [pid for pid, n in tree.items() if n.ppid is None or n.ppid not in tree]


def lineage(tree: dict[int, ProcessNode], pid: int) -> list[int]:
    """pid, its parent, grandparent, ... up to a root (cycle-safe)."""
    chain: list[int] = []
    current: int | None = pid
    while current is not None and current not in chain:
        chain.append(current)
        n = tree.get(current)
        current = n.ppid if n else None
    return chain


def render(tree: dict[int, ProcessNode], max_argv: int = 120) -> str:
    """An indented text view: `pid exe argv [exit N]` per line."""
    lines: list[str] = []
    seen: set[int] = set()

    def walk(pid: int, depth: int) -> None:
        if pid in seen:
            return
        seen.add(pid)
        n = tree[pid]
        argv = " ".join(n.commands[-1]) if n.commands else ""
        if len(argv) > max_argv:
            argv = argv[:max_argv] + "..."
        end = (
            f" [killed {n.signal}]"
            if n.signal
            else f" [exit {n.exit_code}]"
            if n.exit_code is not None
            else ""
        )
        lines.append(f"{'  ' * depth}{pid} {n.exe or '?'} {argv}".rstrip() + end)
        for child in n.children:
            if child in tree:
                walk(child, depth + 1)

    for root in roots(tree):
        walk(root, 0)
    return "\n".join(lines)
