"""alive_at_end: which processes were still there when a phase ended (issue 12)."""

from __future__ import annotations

from osptrack.sandbox.limits import LiveProcess
from osptrack.trace.alive import alive_at_end
from osptrack.trace.strace import parse_log

LOG = """\
10 1.0 execve("/usr/bin/bwrap", ["bwrap"], 0x1 /* 1 var */) = 0
10 1.1 clone(child_stack=NULL, flags=SIGCHLD) = 2 /* 11 in strace's PID NS */
11 1.2 execve("/usr/bin/python3", ["python3", "harness.py"], 0x1 /* 1 var */) = 0
11 1.3 clone(child_stack=NULL, flags=SIGCHLD) = 3 /* 12 in strace's PID NS */
12 1.4 execve("/usr/bin/id", ["id"], 0x1 /* 1 var */) = 0
12 1.5 +++ exited with 0 +++
11 1.6 clone(child_stack=NULL, flags=SIGCHLD) = 4 /* 13 in strace's PID NS */
13 1.7 execve("/usr/bin/sleep", ["sleep", "300"], 0x1 /* 1 var */) = 0
11 1.8 clone(child_stack=0x7f, flags=CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|CLONE_SYSVSEM) = 5 /* 14 in strace's PID NS */
14 1.9 openat(AT_FDCWD, "/tmp/x", O_RDONLY) = 3</tmp/x>
11 5.0 +++ exited with 0 +++
13 5.1 +++ killed by SIGKILL +++
"""


def _events() -> list:
    events = list(parse_log(LOG.splitlines(), "install"))
    return [e for e in events if e.pid != 10]  # bwrap's own setup is dropped by the run


def test_after_the_command_exits_what_is_left_was_alive() -> None:
    alive = alive_at_end(_events(), ended_at=5.0, limit_hit=False)
    assert [(a["pid"], a["argv"], a["killed_by"]) for a in alive] == [(13, ["sleep", "300"], "SIGKILL")]
    assert alive[0]["exe"] == "/usr/bin/sleep" and alive[0]["ppid"] == 11 and alive[0]["started"] == 1.6


def test_at_a_time_limit_the_command_itself_is_alive_and_the_cgroup_fills_in() -> None:
    live = [
        LiveProcess(13, "/usr/bin/sleep", ("sleep", "300"), 1000.5),
        LiveProcess(99, "/usr/bin/cat", ("cat",), 1001.0),  # lost by the trace
        LiveProcess(10, "/usr/bin/bwrap", ("bwrap",), 999.0),  # the launcher
    ]
    alive = alive_at_end(_events(), ended_at=4.0, limit_hit=True, live=live)
    assert [a["pid"] for a in alive] == [11, 13, 99]  # not the exited id, not the thread, not bwrap
    assert alive[1]["started"] == 1000.5  # the kernel's start time wins
    assert alive[2]["argv"] == ["cat"] and alive[2]["exe"] == "/usr/bin/cat"
