"""The process tree without `--pidns-translation`: clone returns pids of the sandbox's namespace,
the log's pid column shows host pids, and the parser pairs them (strace.py, "_adopt").

The logs are shaped like strace 6.1's on this machine (the launcher bwrap outside, its
CLONE_NEWPID child as pid 1 inside), then interleaved by hand the ways concurrency allows.
"""

from __future__ import annotations

from osptrack.trace.events import Event
from osptrack.trace.strace import ParseStats, parse_log
from osptrack.trace.tree import build_tree

# The launcher (host pid 500) and the sandbox's pid 1 (host 501), which starts the command (ns 2).
HEAD = """
500  1.000 execve("/usr/bin/bwrap", ["bwrap"], []) = 0
500  1.001 clone(child_stack=NULL, flags=CLONE_NEWNS|CLONE_NEWPID|CLONE_NEWNET|SIGCHLD) = 501
501  1.002 clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD, child_tidptr=0x7f) = 2
502  1.003 set_robust_list(0x7fdd7828d0a0, 24) = 0
502  1.004 execve("/usr/bin/sh", ["sh", "-c", "x"], []) = 0
502  1.005 set_tid_address(0x7f8a1a6a5a10) = 2
"""
FORK = "clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD, child_tidptr=0x7f)"
THREAD = (
    "clone(child_stack=0x7f, flags=CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|CLONE_SYSVSEM)"
)


def parse(text: str) -> tuple[list[Event], ParseStats]:
    stats = ParseStats()
    lines = [ln for ln in (HEAD + text).split("\n") if ln]
    events = list(parse_log(lines, "install", stats=stats))
    assert stats.dropped == 0, stats.dropped_samples
    return events, stats


def parents(events: list[Event]) -> dict[int, int | None]:
    return {e.pid: e.ppid for e in events}


def clones(events: list[Event]) -> dict[tuple[int, int], int | None]:
    """(caller, namespace pid returned) -> child_pid."""
    return {(e.pid, e.ret): e.child_pid for e in events if e.op == "clone" and e.ret}


def test_sandbox_children_get_host_pids_from_namespace_returns():
    events, stats = parse(
        f"""
502  1.010 {FORK} = 3
503  1.011 set_robust_list(0x7f, 24) = 0
503  1.012 execve("/usr/bin/cat", ["cat", "f"], []) = 0
503  1.013 set_tid_address(0x7f) = 3
503  1.014 openat(AT_FDCWD</w>, "f", O_RDONLY) = 3</w/f>
503  1.015 +++ exited with 0 +++
502  1.016 +++ exited with 0 +++
"""
    )
    assert parents(events) == {500: None, 501: 500, 502: 501, 503: 502}
    assert clones(events) == {(500, 501): 501, (501, 2): 502, (502, 3): 503}
    cat = next(e for e in events if e.op == "exec" and e.pid == 503)
    assert cat.exe == "/usr/bin/sh" and cat.ppid == 502  # the image that called execve
    assert next(e for e in events if e.op == "read").path == "/w/f"  # cwd inherited from the fork
    assert stats.pid_guesses == 0
    tree = build_tree(events)
    assert tree[502].children == [503] and tree[501].children == [502]
    assert [e.t for e in events] == sorted(e.t for e in events)


def test_a_child_silent_until_its_exit_still_fills_its_clone_event_in_log_order():
    events, _ = parse(
        f"""
502  1.010 {FORK} = 3
502  1.011 openat(AT_FDCWD</w>, "/etc/hostname", O_RDONLY) = 3</etc/hostname>
502  1.012 {FORK} = 4
504  1.013 execve("/usr/bin/true", ["true"], []) = 0
503  1.014 +++ killed by SIGKILL +++
504  1.015 +++ exited with 0 +++
"""
    )
    assert clones(events)[(502, 3)] == 503 and clones(events)[(502, 4)] == 504
    assert parents(events)[503] == 502 and parents(events)[504] == 502
    assert [(e.pid, e.t) for e in events][-6:] == [
        (502, 1.010), (502, 1.011), (502, 1.012), (504, 1.013), (503, 1.014), (504, 1.015),
    ]  # fmt: skip


def test_concurrent_clones_of_two_callers_are_told_apart_by_set_tid_address():
    # sh (502) forked 503 and 504 earlier; both fork at once, the children start out of order.
    events, stats = parse(
        f"""
502  1.010 {FORK} = 3
503  1.011 set_robust_list(0x7f, 24) = 0
502  1.012 {FORK} = 4
504  1.013 set_robust_list(0x7f, 24) = 0
503  1.020 {FORK[:-1]} <unfinished ...>
504  1.021 {FORK[:-1]} <unfinished ...>
503  1.022 <... clone resumed>) = 5
504  1.023 <... clone resumed>) = 6
506  1.024 set_robust_list(0x7f, 24) = 0
506  1.025 execve("/usr/bin/curl", ["curl"], []) = 0
506  1.026 set_tid_address(0x7f) = 5
505  1.027 set_robust_list(0x7f, 24) = 0
505  1.028 execve("/usr/bin/id", ["id"], []) = 0
505  1.029 set_tid_address(0x7f) = 6
"""
    )
    # 506 is the child of the clone that returned 5 (503's), although its host pid is larger:
    # the kernel race that makes pid order unreliable, settled by proof.
    assert parents(events)[506] == 503 and parents(events)[505] == 504
    assert clones(events)[(503, 5)] == 506 and clones(events)[(504, 6)] == 505
    curl = next(e for e in events if e.op == "exec" and e.pid == 506)
    assert curl.ppid == 503
    assert stats.pid_guesses == 0
    assert [e.t for e in events] == sorted(e.t for e in events)


def test_concurrent_clones_without_proof_pair_by_pid_order():
    # Two threads' clones return 5 and 6; their children never exec (no set_tid_address).
    events, stats = parse(
        f"""
502  1.010 {FORK} = 3
503  1.011 set_robust_list(0x7f, 24) = 0
502  1.012 {FORK} = 4
504  1.013 set_robust_list(0x7f, 24) = 0
504  1.020 {FORK[:-1]} <unfinished ...>
503  1.021 {FORK[:-1]} <unfinished ...>
506  1.022 set_robust_list(0x7f, 24) = 0
505  1.023 set_robust_list(0x7f, 24) = 0
504  1.024 <... clone resumed>) = 6
503  1.025 <... clone resumed>) = 5
505  1.026 openat(AT_FDCWD</>, "/a", O_RDONLY) = 3</a>
506  1.027 openat(AT_FDCWD</>, "/b", O_RDONLY) = 3</b>
"""
    )
    # pids go out in order in both namespaces: host 505 is namespace pid 5, from 503's clone
    assert parents(events)[505] == 503 and parents(events)[506] == 504
    assert clones(events)[(503, 5)] == 505 and clones(events)[(504, 6)] == 506
    assert stats.pid_guesses == 0  # every candidate had returned: the order is the proof
    assert [e.t for e in events] == sorted(e.t for e in events)


def test_vfork_child_execs_before_its_parent_returns():
    events, _ = parse(
        """
502  1.010 vfork( <unfinished ...>
503  1.011 execve("/usr/bin/cat", ["cat"], [] <unfinished ...>
502  1.012 <... vfork resumed>) = 3
503  1.013 <... execve resumed>) = 0
503  1.014 set_tid_address(0x7f) = 3
503  1.015 +++ exited with 0 +++
"""
    )
    assert parents(events)[503] == 502 and clones(events)[(502, 3)] == 503


def test_vfork_children_of_two_shells_in_flight_wait_for_their_set_tid_address():
    events, stats = parse(
        f"""
502  1.010 {FORK} = 3
503  1.011 set_robust_list(0x7f, 24) = 0
502  1.012 vfork( <unfinished ...>
503  1.013 vfork( <unfinished ...>
505  1.014 execve("/usr/bin/b", ["b"], [] <unfinished ...>
504  1.015 execve("/usr/bin/a", ["a"], [] <unfinished ...>
505  1.016 <... execve resumed>) = 0
504  1.017 <... execve resumed>) = 0
505  1.018 set_tid_address(0x7f) = 4
504  1.019 set_tid_address(0x7f) = 5
503  1.020 <... vfork resumed>) = 5
502  1.021 <... vfork resumed>) = 4
"""
    )
    assert parents(events)[505] == 502 and parents(events)[504] == 503
    assert clones(events)[(502, 4)] == 505 and clones(events)[(503, 5)] == 504
    assert stats.pid_guesses == 0


def test_threads_and_a_fork_of_one_caller_and_kill_targets_in_host_pids():
    events, _ = parse(
        f"""
502  1.010 execve("/usr/bin/node", ["node"], []) = 0
502  1.011 set_tid_address(0x7f) = 2
502  1.012 {THREAD} = 3
503  1.013 set_robust_list(0x7f, 24) = 0
502  1.014 {THREAD} = 4
502  1.015 {FORK} = 5
505  1.016 set_robust_list(0x7f, 24) = 0
504  1.017 set_robust_list(0x7f, 24) = 0
502  1.018 kill(5, SIGTERM) = 0
502  1.019 kill(-5, SIGKILL) = 0
502  1.020 kill(77, SIGKILL) = -1 ESRCH (No such process)
502  1.021 tgkill(2, 4, SIGUSR1) = 0
505  1.022 +++ killed by SIGTERM +++
"""
    )
    assert {k: v for k, v in clones(events).items() if k[0] == 502} == {
        (502, 3): 503,
        (502, 4): 504,
        (502, 5): 505,
    }
    assert parents(events)[505] == 502
    targets = [e.target_pid for e in events if e.syscall in ("kill", "tgkill")]
    assert targets == [505, -505, None, 504]  # unknown namespace pids are not passed off as host ones


def test_translated_logs_still_parse_the_same():
    # Logs written with --pidns-translation (older runs) keep their exact host pids.
    stats = ParseStats()
    lines = [
        "100  1.00 vfork( <unfinished ...>",
        '101  1.01 execve("/usr/bin/cat", ["cat"], [] <unfinished ...>',
        "100  1.02 <... vfork resumed>) = 3 /* 101 in strace's PID NS */",
        "101  1.03 <... execve resumed>) = 0",
        "100  1.04 kill(3 /* 101 in strace's PID NS */, SIGKILL) = 0",
    ]
    events = list(parse_log(lines, "install", stats=stats))
    assert [(e.pid, e.ppid, e.child_pid, e.target_pid) for e in events] == [
        (100, None, 101, None),
        (101, 100, None, None),
        (100, None, None, 101),
    ]


def test_many_short_children_of_concurrent_shells_all_get_their_parent():
    # Four shells fork in turns, each child exits at once: thousands of lines, all placed.
    lines = [ln for ln in HEAD.strip("\n").split("\n")]
    host, ns, t = 503, 3, 2.0
    shells = []
    for _ in range(4):
        lines.append(f"502  {t:.3f} {FORK} = {ns}")
        lines.append(f"{host}  {t + 0.0001:.4f} set_robust_list(0x7f, 24) = 0")
        shells.append((host, ns))
        host, ns, t = host + 1, ns + 1, t + 0.001
    expected = {}
    for i in range(500):
        a, b = shells[i % 4], shells[(i + 1) % 4]
        lines.append(f"{a[0]}  {t:.4f} {FORK[:-1]} <unfinished ...>")
        lines.append(f"{b[0]}  {t + 0.0001:.4f} {FORK[:-1]} <unfinished ...>")
        lines.append(f"{a[0]}  {t + 0.0002:.4f} <... clone resumed>) = {ns}")
        lines.append(f"{b[0]}  {t + 0.0003:.4f} <... clone resumed>) = {ns + 1}")
        lines.append(f"{host + 1}  {t + 0.0004:.4f} set_robust_list(0x7f, 24) = 0")
        lines.append(f"{host}  {t + 0.0005:.4f} set_robust_list(0x7f, 24) = 0")
        lines.append(f"{host}  {t + 0.0006:.4f} +++ exited with 0 +++")
        lines.append(f"{host + 1}  {t + 0.0007:.4f} +++ exited with 0 +++")
        expected[host], expected[host + 1] = a[0], b[0]
        host, ns, t = host + 2 + (i % 3), ns + 2, t + 0.001  # other host processes take pids too
    stats = ParseStats()
    events = list(parse_log(lines, "install", stats=stats))
    got = {e.pid: e.ppid for e in events if e.pid in expected}
    assert {p: (got.get(p), q) for p, q in expected.items() if got.get(p) != q} == {}
    assert stats.pid_guesses == 0
    assert {e.child_pid for e in events if e.op == "clone"} >= set(expected)
    assert [e.t for e in events] == sorted(e.t for e in events)


def test_a_child_silent_past_hold_cap_releases_the_output_and_still_finds_its_parent(monkeypatch):
    from osptrack.trace import strace

    monkeypatch.setattr(strace, "HOLD_CAP", 50)
    body = "\n".join(f'502  1.{100 + i} openat(AT_FDCWD</>, "/f{i}", O_RDONLY) = 3</f{i}>' for i in range(80))
    events, _ = parse(f"502  1.010 {FORK} = 3\n{body}\n503  2.000 +++ killed by SIGKILL +++\n")
    clone = next(e for e in events if e.op == "clone" and e.pid == 502)
    assert clone.child_pid is None  # given up on: it went out before its child showed up
    assert parents(events)[503] == 502  # but the child still found it
    assert len([e for e in events if e.op == "read"]) == 80


def test_a_fork_restarted_by_a_signal_is_no_candidate_and_the_earlier_fork_keeps_its_child():
    """A shell's second fork is in flight when the first fork's child shows up, then a SIGCHLD
    restarts it (ERESTARTNOINTR: no child was made). The child belongs to the first fork; the
    restarted call must neither take it nor stay a candidate that blocks the pid order."""
    entry = "clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD <unfinished ...>"
    events, stats = parse(
        f"""
502  1.010 {FORK} = 3
502  1.011 {entry}
503  1.012 set_robust_list(0x7f, 24 <unfinished ...>
502  1.013 <... clone resumed>, child_tidptr=0x7f) = ? ERESTARTNOINTR (To be restarted)
503  1.014 <... set_robust_list resumed>) = 0
502  1.015 {FORK} = 4
504  1.016 set_robust_list(0x7f, 24) = 0
504  1.017 openat(AT_FDCWD</w>, "b", O_RDONLY) = 3</w/b>
503  1.018 openat(AT_FDCWD</w>, "a", O_RDONLY) = 3</w/a>
503  1.019 +++ exited with 0 +++
504  1.020 +++ exited with 0 +++
502  1.021 +++ exited with 0 +++
"""
    )
    assert clones(events) == {(500, 501): 501, (501, 2): 502, (502, 3): 503, (502, 4): 504}
    assert [e.child_pid for e in events if e.op == "clone" and e.errno == "ERESTARTNOINTR"] == [None]
    assert parents(events)[503] == parents(events)[504] == 502
    assert stats.pid_guesses == 0
