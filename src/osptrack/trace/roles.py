"""Which processes are the toolchain's and which are the package's: told by place and path, not by name.

The rule (docs/formats.md, "Toolchain processes"): an exec is the toolchain's only when

1. the process that made it is the sandbox launcher (the harness command) or a toolchain
   *driver* (code that never runs the package's, like pip's resolver), and
2. the new program's path is exactly the one a rule of the ecosystem names for that parent, and
3. no process running the package's code sits above it.

argv may then tell two trusted processes apart (pip's build-env runner from its hook runner,
both /usr/bin/python3 started by pip), but argv can never make a process trusted: a rule is only
tried for a child of a driver, after its path matched. A renamed copy of a tool fails (2); a
`python3 -m pip` started by a setup.py fails (1) and (3), however its argv reads.

Roles of a trusted process:
- `driver`: toolchain code; what it execs may be toolchain (if a rule says so).
- `host`: toolchain code that runs the package's code (pip's PEP 517 hook runner, the import
  harness, npm's `sh -c` for a lifecycle script): its own exec is not notable, everything it
  starts is the package's.
- `helper`: a toolchain helper whose whole subtree is the toolchain (lsb_release's getopt/tr/cut).
Everything else is `package`. A process keeps its parent's role until it execs; an exec made by a
host or package image is the package's, whatever it runs.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from osptrack.homepath import home_relative
from osptrack.trace.common import KIND_PROCESS

if TYPE_CHECKING:  # the ecosystems' rule tables load before the first phase; msgspec need not
    from osptrack.trace.events import Event

ROOT = ""  # the parent name of rules for the command the sandbox launcher (bwrap) execs


class Role(StrEnum):
    DRIVER = "driver"
    HOST = "host"
    HELPER = "helper"
    PACKAGE = "package"


@dataclass(frozen=True)
class Rule:
    """One trusted program: one of `exe` (exact paths, or folders ending in `/`) started by `parents`."""

    name: str
    exe: tuple[str, ...]
    role: Role
    parents: tuple[str, ...] = (ROOT,)  # rule names of the drivers that may start it; ROOT = the harness
    args: tuple[str, ...] | None = None  # argv[1:] starts with these; only picks among trusted ones
    argv_test: Callable[[list[str]], bool] | None = None  # the same, when a prefix cannot say it

    def matches(self, parent: str, path: str, argv: list[str]) -> bool:
        if parent not in self.parents:
            return False
        if not _exe_matches(self.exe, path) and not _exe_matches(self.exe, home_relative(path)):
            return False  # `~/...` entries match in any persona's home
        if self.args is not None and tuple(argv[1 : 1 + len(self.args)]) != self.args:
            return False
        return self.argv_test is None or self.argv_test(argv)


def _exe_matches(exe: tuple[str, ...], path: str) -> bool:
    return path in exe or any(e.endswith("/") and path.startswith(e) for e in exe)


@dataclass(frozen=True)
class Verdict:
    """Whose doing one event is. `toolchain` is False for the package's (what notable shows).

    For an exec, role and rule are those of the new image; for any other event, of the image
    that made it. A host's own calls are the package's (it runs the package's code).
    """

    role: Role
    rule: str | None  # the rule that trusted the image, if any
    toolchain: bool


SHELLS = ("/bin/sh", "/usr/bin/sh")


def installed(*paths: str) -> tuple[str, ...]:
    """The paths, plus what their symlinks resolve to (`/usr/bin/php` execs as `php8.2`).

    /usr is the host's, read-only in the sandbox, so the host's links are the sandbox's.
    """
    found = list(paths)
    for path in paths:
        real = os.path.realpath(path)
        if real != path and real not in found:
            found.append(real)
    return tuple(found)


_TRUSTED = (Role.DRIVER, Role.HELPER)
_PACKAGE = (Role.PACKAGE, None)
State = tuple[Role, str | None]


def classify(events: Iterable[Event], rules: tuple[Rule, ...]) -> dict[int, Verdict]:
    """id(event) -> Verdict for every event, in log order; phases are kept apart (pids are reused).

    The events must stay alive while the map is used (it is keyed by id); a stream uses
    `Classifier` instead, which gives each event's verdict as it passes."""
    classifier = Classifier(rules)
    return {id(ev): classifier.verdict(ev) for ev in events}


class Classifier:
    """`classify`, one event at a time: `verdict(ev)` in log order. Its state is per process."""

    def __init__(self, rules: tuple[Rule, ...]) -> None:
        self.rules = rules
        self._state: dict[tuple[str, int], State] = {}  # (phase, pid) -> role and rule of its image
        self._launched: dict[str, int | None] = {}  # phase -> bwrap's child pid once it exec'd the command
        self._cache: dict[tuple[Role, str | None, bool], Verdict] = {}
        # (phase, pid) -> the verdict of its file and network events: the role of the image it
        # runs, which only a process event changes (each change drops the entry)
        self._plain: dict[tuple[str, int], Verdict] = {}

    def _make(self, role: Role, rule: str | None, toolchain: bool) -> Verdict:
        key = (role, rule, toolchain)
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = Verdict(role, rule, toolchain)
        return found

    def verdict(self, ev: Event) -> Verdict:
        if ev.kind != KIND_PROCESS:  # most events: one lookup once the process is known
            key = (ev.phase, ev.pid)
            found = self._plain.get(key)
            if found is None:
                role, rule = _current(self._state, ev)
                found = self._plain[key] = self._make(role, rule, role in _TRUSTED)
            return found
        state, launched = self._state, self._launched
        phase = ev.phase
        if ev.op == "exec" and _launches(ev, state, launched):
            # The sandbox launcher starting the harness command: once per phase, from the pid
            # that opens the trace. A package's own copy of bwrap has a parent, hence a role.
            current: State = (Role.DRIVER, ROOT)
            if ev.ok:
                launched[phase] = ev.pid
        else:
            current = _current(state, ev)
        if ev.op not in ("exec", "clone", "exit"):
            return self._make(current[0], current[1], current[0] in _TRUSTED)
        if ev.op == "clone":
            if ev.ok and ev.child_pid is not None:
                state[(phase, ev.child_pid)] = current
                self._plain.pop((phase, ev.child_pid), None)
            return self._make(current[0], current[1], current[0] in _TRUSTED)
        if ev.op == "exit":
            state.pop((phase, ev.pid), None)
            self._plain.pop((phase, ev.pid), None)
            return self._make(current[0], current[1], current[0] in _TRUSTED)
        if not ev.ok:
            # A failed exec changes nothing; one made by toolchain code is its PATH search.
            return self._make(current[0], current[1], current[0] in _TRUSTED)
        new: State = _PACKAGE
        role, rule = current
        if role is Role.HELPER:
            new = current
        elif role is Role.DRIVER and rule is not None:
            path = posixpath.normpath(ev.path) if ev.path else ""
            for candidate in self.rules:
                if candidate.matches(rule, path, ev.argv or []):
                    new = (candidate.role, candidate.name)
                    break
        state[(phase, ev.pid)] = new
        self._plain.pop((phase, ev.pid), None)
        return self._make(new[0], new[1], new[0] is not Role.PACKAGE)


def _launches(ev: Event, state: dict[tuple[str, int], State], launched: dict[str, int | None]) -> bool:
    if ev.exe is None or not ev.exe.endswith("/bwrap") or (ev.phase, ev.pid) in state:
        return False
    if ev.phase in launched and launched[ev.phase] is not None:
        return False
    return ev.ppid is None or (ev.phase, ev.ppid) not in state


def _current(state: dict[tuple[str, int], State], ev: Event) -> State:
    """The role of the image `ev.pid` runs; a pid first seen inherits its parent's."""
    key = (ev.phase, ev.pid)
    found = state.get(key)
    if found is None:
        found = state.get((ev.phase, ev.ppid), _PACKAGE) if ev.ppid is not None else _PACKAGE
        state[key] = found
    return found


class VerdictTrail:
    """Each event's verdict, in log order: what a Classifier said of the run's events as they
    passed, for a later pass over the same log in the same order (the verdict's, verdict.facts)
    that then needs neither to classify again nor to decode the events it has no use for.

    A reference an event (the Classifier hands out a few shared Verdicts): 8 bytes, and an
    append is the cheapest thing the digest can do per event (a 2-byte code took 3x as long).
    `valid` is False once an event came without a verdict."""

    def __init__(self) -> None:
        self.verdicts: list[Verdict] = []
        self.valid = True

    def __len__(self) -> int:
        return len(self.verdicts)
