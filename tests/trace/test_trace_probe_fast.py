"""The parser's probe fast path (StraceParser._probe_fast) against the full parse of the same lines.

The fast path drops a probe of a path that is not sensitive from the line's start; it must
leave exactly what the full parse leaves: the same events in the same order, the same counters,
the cwd learnt from AT_FDCWD's annotation, and nothing held for an unfinished probe.
"""

from __future__ import annotations

import re
from dataclasses import asdict

import pytest

from osptrack.trace import strace
from osptrack.trace.events import Event
from osptrack.trace.strace import ParseStats, parse_log

ENOENT = "-1 ENOENT (No such file or directory)"
NEVER = re.compile(r"(?!)")

LINES = [
    '100 1.0 execve("/usr/bin/python3", ["python3"], 0x7ffd /* 3 vars */) = 0',
    # absolute, not sensitive: dropped; the annotation teaches pid 100's cwd
    '100 1.1 newfstatat(AT_FDCWD</work/pkg>, "/usr/lib/python3.11", 0x7ffd, 0) = 0',
    '100 1.2 openat(AT_FDCWD, "setup.py", O_RDONLY|O_CLOEXEC) = 3',
    # relative to a dirfd's annotation / to AT_FDCWD's; ".." normalised
    '100 1.3 newfstatat(3</usr/lib>, "x/../y", 0x7ffd, 0) = 0',
    '100 1.4 statx(AT_FDCWD</home/u>, ".ssh", AT_STATX_SYNC_AS_STAT, STATX_ALL, 0x7f) = 0',
    '100 1.5 statx(AT_FDCWD</home/u>, "./.cache", AT_STATX_SYNC_AS_STAT, STATX_ALL, 0x7f) = 0',
    # no base named: left to the full parse
    f'100 1.6 newfstatat(AT_FDCWD, "rel", 0x7ffd, 0) = {ENOENT}',
    f'100 1.7 newfstatat(5, "rel2", 0x7ffd, 0) = {ENOENT}',
    # escapes in the path or annotation, a device tag, a cut path
    '100 1.8 newfstatat(AT_FDCWD</tmp/a\\74b>, "/tmp/x\\ny", 0x7ffd, 0) = 0',
    '100 1.9 newfstatat(4</dev/null<char 1:3>>, "", 0x7ffd, AT_EMPTY_PATH) = 0',
    '100 2.0 access("/usr/lib/very/long"..., R_OK) = 0',
    '100 2.1 newfstatat(3</usr/lib>, "", 0x7ffd, AT_EMPTY_PATH) = 0',
    f'100 2.2 access("/etc/shadow", R_OK) = {ENOENT}',
    '100 2.3 readlink("/usr/bin/python3", "python3.11", 4096) = 10',
    f'100 2.4 faccessat2(AT_FDCWD</home/u>, ".aws/config", R_OK, AT_EACCESS) = {ENOENT}',
    # unfinished probes interleaved with another pid's events: the non-sensitive one holds nothing
    "100 2.5 clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|SIGCHLD, child_tidptr=0x7f) = 101",
    '101 2.6 statx(AT_FDCWD</work/pkg>, "/usr/share/zoneinfo", AT_STATX_SYNC_AS_STAT, STATX_ALL <unfinished ...>',
    '100 2.7 openat(AT_FDCWD</work/pkg>, "/etc/hosts", O_RDONLY) = 4</etc/hosts>',
    "101 2.8 <... statx resumed>0x7f) = 0",
    '101 2.9 newfstatat(AT_FDCWD</work/pkg>, "/root/.netrc", <unfinished ...>',
    '100 3.0 mkdir("/tmp/build", 0777) = 0',
    f"101 3.1 <... newfstatat resumed>0x7ffd, 0) = {ENOENT}",
    # an unfinished probe whose process dies
    '101 3.2 newfstatat(AT_FDCWD</work/pkg>, "/usr/lib/x", <unfinished ...>',
    "101 3.3 +++ killed by SIGKILL +++",
    '100 3.4 openat(AT_FDCWD, "after", O_RDONLY) = 5',
    "100 3.5 +++ exited with 0 +++",
]


def _parse(lines: list[str]) -> tuple[list[Event], dict]:
    stats = ParseStats()
    return list(parse_log(lines, "install", stats=stats)), asdict(stats)


def test_fast_path_equals_the_full_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    fast = _parse(LINES)
    monkeypatch.setattr(strace, "_PROBE_LINE_RE", NEVER)
    full = _parse(LINES)
    assert fast == full
    events, stats = fast
    assert stats["dropped"] == 0 and stats["unfinished"] == 1
    assert [(e.op, e.path) for e in events if e.probe] == [
        ("stat", "/home/u/.ssh"),
        ("access", "/etc/shadow"),
        ("access", "/home/u/.aws/config"),
        ("stat", "/root/.netrc"),
    ]
    # the cwd learnt from a dropped probe's annotation resolves the next relative open
    assert [e.path for e in events if e.syscall == "openat"] == [
        "/work/pkg/setup.py",
        "/etc/hosts",
        "/work/pkg/after",
    ]


def test_fast_path_takes_the_common_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    """It is used at all: a parse that never reaches the full probe parse for dropped probes."""
    calls: list[str] = []
    real = strace.StraceParser._h_probe_line

    def spy(self, pid, proc, t, name, body):  # type: ignore[no-untyped-def]
        calls.append(body)
        return real(self, pid, proc, t, name, body)

    monkeypatch.setattr(strace.StraceParser, "_h_probe_line", spy)
    _parse(LINES)
    assert not any("/usr/lib/python3.11" in b or "/usr/share/zoneinfo" in b for b in calls)
    assert any("/etc/shadow" in b for b in calls)  # sensitive: the full parse emits it


def test_unfinished_dropped_probe_holds_no_place() -> None:
    """Events after an unfinished, dropped probe come out before it resumes (nothing waits on it)."""
    parser = strace.StraceParser("install")
    parser.feed('100 1.0 openat(AT_FDCWD</w>, "/a", O_RDONLY) = 3\n')
    parser.feed('101 1.1 statx(AT_FDCWD</w>, "/usr/lib", AT_STATX_SYNC_AS_STAT, STATX_ALL <unfinished ...>\n')
    parser.feed('100 1.2 openat(AT_FDCWD</w>, "/b", O_RDONLY) = 4\n')
    assert [e.path for e in parser.out] == ["/a", "/b"]
    parser.feed("101 1.3 <... statx resumed>0x7f) = 0\n")
    parser.finish()
    assert (parser.stats.dropped, parser.stats.ignored, parser.stats.unfinished) == (0, 1, 0)
