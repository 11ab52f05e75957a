"""The classifier's cached verdict of file and network events (trace.roles.Classifier._plain)
is the verdict it would work out again: every process event that changes a process's role
(an exec, its clone of a child, its exit, a pid reused) drops what was cached for it.

Generated event streams over a few pids (execs of toolchain programs and others, failed and
not, clones, exits, file events in between, two phases) are classified twice, with the cache
and with one that never keeps anything; every verdict must be the same.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from osptrack import ecosystems
from osptrack.trace.events import KIND_FILE, KIND_NETWORK, KIND_PROCESS, Event
from osptrack.trace.roles import Classifier

RULES = ecosystems.get("npm").toolchain_rules()
PIDS = [10, 11, 12]
EXES = ["/usr/bin/bwrap", "/usr/bin/npm", "/usr/bin/node", "/bin/sh", "/usr/bin/curl", "/tmp/x"]
ARGVS = [["npm", "install"], ["node", "/input/harness/npm_import.js"], ["sh", "-c", "id"], []]


class _Forgetful(dict[Any, Any]):
    """A cache that keeps nothing: each verdict is worked out from the process state again."""

    def __setitem__(self, key: Any, value: Any) -> None:
        pass


def _event(phase: str, pid: int, ppid: int | None, kind: str, op: str, other: int, ok: bool, exe: str,
           argv: list[str]) -> Event:  # fmt: skip
    errno = None if ok else "ENOENT"
    if kind == KIND_PROCESS and op == "exec":
        return Event(0.0, phase, pid, ppid, "/usr/bin/bwrap" if pid == PIDS[0] else None, None, "execve",
                     kind, op, 0 if ok else -1, errno, [], path=exe, argv=argv)  # fmt: skip
    if kind == KIND_PROCESS and op == "clone":
        return Event(0.0, phase, pid, ppid, None, None, "clone", kind, op, other, errno, [], child_pid=other)
    if kind == KIND_PROCESS:
        return Event(0.0, phase, pid, ppid, None, None, "exit", kind, op, None, None, [], exit_code=0)
    return Event(0.0, phase, pid, ppid, exe, None, "openat", kind, op, 3 if ok else -1, errno, [], path="/f")


_events = st.lists(
    st.builds(
        _event,
        st.sampled_from(["install", "import"]),
        st.sampled_from(PIDS),
        st.sampled_from([None, *PIDS]),
        st.sampled_from([KIND_FILE, KIND_FILE, KIND_NETWORK, KIND_PROCESS, KIND_PROCESS]),
        st.sampled_from(["exec", "exec", "clone", "exit", "read"]),
        st.sampled_from(PIDS),
        st.booleans(),
        st.sampled_from(EXES),
        st.sampled_from(ARGVS),
    ),
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(events=_events)
def test_cached_verdicts_are_those_worked_out_again(events: list[Event]) -> None:
    # each phase starts as a run does, the launcher exec'ing npm (the toolchain's driver), so
    # its clones and execs give processes different roles
    launches = [_event(phase, PIDS[0], None, KIND_PROCESS, "exec", 0, True, "/usr/bin/npm", ARGVS[0])
                for phase in ("install", "import")]  # fmt: skip
    cached, again = Classifier(RULES), Classifier(RULES)
    again._plain = _Forgetful()
    stream = launches + events
    assert [cached.verdict(e) for e in stream] == [again.verdict(e) for e in stream]


def test_an_exec_changes_the_verdict_of_the_events_after_it() -> None:
    # the launcher's npm is the toolchain's; the sh it runs as a lifecycle script is a host;
    # what that sh execs is the package's: each file event after an exec gets the new image's
    c = Classifier(RULES)

    def file_event(pid: int) -> Event:
        return Event(
            0.0, "install", pid, None, None, None, "openat", KIND_FILE, "read", 3, None, [], path="/f"
        )

    launch = Event(0.0, "install", 10, None, "/usr/bin/bwrap", "bwrap", "execve", KIND_PROCESS, "exec", 0,
                   None, [], path="/usr/bin/npm", argv=["npm", "install"])  # fmt: skip
    assert c.verdict(launch).toolchain
    assert c.verdict(file_event(10)).toolchain
    curl = Event(0.0, "install", 10, None, "/usr/bin/npm", "npm", "execve", KIND_PROCESS, "exec", 0, None, [],
                 path="/usr/bin/curl", argv=["curl"])  # fmt: skip
    assert not c.verdict(curl).toolchain
    assert not c.verdict(file_event(10)).toolchain


def test_a_clone_or_an_exit_changes_the_verdict_of_a_pid_seen_before() -> None:
    # a pid seen before its parent's clone (events are in start order) takes the parent's
    # role at the clone; a pid reused after its exit takes its new parent's
    def ev(pid: int, kind: str, op: str, other: int = 0, ppid: int | None = None) -> Event:
        return _event("install", pid, ppid, kind, op, other, True, "/usr/bin/npm", ARGVS[0])

    for again in (False, True):
        c = Classifier(RULES)
        if again:
            c._plain = _Forgetful()
        verdicts = [
            c.verdict(e).toolchain
            for e in (
                ev(10, KIND_PROCESS, "exec"),  # the launcher runs npm: the toolchain's
                ev(11, KIND_FILE, "read"),  # not known yet: the package's
                ev(10, KIND_PROCESS, "clone", 11),
                ev(11, KIND_FILE, "read"),  # npm's child
                ev(11, KIND_PROCESS, "exit"),
                ev(11, KIND_FILE, "read", ppid=12),  # reused by a child of the package's 12
            )
        ]
        assert verdicts == [True, False, True, True, True, False]
