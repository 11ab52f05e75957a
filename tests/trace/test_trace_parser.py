"""The strace log parser on handwritten lines, in the exact shapes strace 6.1 prints with
`-f -ttt -yy -v -q --pidns-translation` (copied from real logs on this machine, then varied)."""

from __future__ import annotations

import posixpath
from pathlib import Path

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from osptrack.trace.events import Event, encode_events_jsonl, read_events_jsonl, write_events_jsonl
from osptrack.trace.strace import ParseStats, parse_log

ENV = '["HOME=/root", "PATH=/usr/bin:/bin", "AWS_SECRET_ACCESS_KEY=abc"]'


def parse(text: str, **kw) -> tuple[list[Event], ParseStats]:
    stats = ParseStats()
    lines = [ln for ln in text.strip("\n").split("\n")]
    return list(parse_log(lines, "install", stats=stats, **kw)), stats


def one(text: str, **kw) -> Event:
    events, stats = parse(text, **kw)
    assert stats.dropped == 0, stats.dropped_samples
    assert len(events) == 1, events
    return events[0]


# ------------------------------------------------------------------ opens


def test_read_open_with_dirfd_annotation_and_return_annotation():
    ev = one('100  1700000000.000001 openat(AT_FDCWD</tmp/st>, "/etc/hostname", O_RDONLY) = 3</etc/hostname>')
    assert (ev.kind, ev.op, ev.path, ev.ret, ev.errno) == ("file", "read", "/etc/hostname", 3, None)
    assert ev.t == 1700000000.000001 and ev.pid == 100 and ev.syscall == "openat"
    assert ev.args == ["AT_FDCWD</tmp/st>", '"/etc/hostname"', "O_RDONLY"]
    assert not ev.read and ev.ftype is None


def test_failed_open_keeps_errno():
    ev = one(
        '100  1.5 openat(AT_FDCWD</w>, "/root/.ssh/id_rsa", O_RDONLY|O_CLOEXEC) = -1 ENOENT (No such file or directory)'
    )
    assert (ev.op, ev.path, ev.ret, ev.errno) == ("read", "/root/.ssh/id_rsa", -1, "ENOENT")


def test_write_flags_and_rdwr_flag():
    events, _ = parse(
        """
100  1.0 openat(AT_FDCWD</w>, "/w/a", O_WRONLY|O_CREAT|O_TRUNC, 0666) = 3</w/a>
100  1.1 openat(AT_FDCWD</w>, "/w/b", O_RDWR|O_CREAT|O_EXCL|O_CLOEXEC, 0600) = 4</w/b>
100  1.2 openat(AT_FDCWD</w>, "/w/c", O_WRONLY|O_APPEND) = 5</w/c>
100  1.3 open("/w/d", O_RDONLY) = 6</w/d>
100  1.4 creat("/w/e", 0644) = 7</w/e>
100  1.5 openat2(AT_FDCWD</w>, "/w/f", {flags=O_RDWR|O_CLOEXEC, mode=0, resolve=RESOLVE_NO_SYMLINKS}, 24) = 8</w/f>
100  1.6 openat(AT_FDCWD</w>, "/w/g", 0x2) = 9</w/g>
"""
    )
    got = [(e.syscall, e.path, e.op, e.read) for e in events]
    assert got == [
        ("openat", "/w/a", "write", False),
        ("openat", "/w/b", "write", True),
        ("openat", "/w/c", "write", False),
        ("open", "/w/d", "read", False),
        ("creat", "/w/e", "write", False),
        ("openat2", "/w/f", "write", True),
        ("openat", "/w/g", "write", True),  # numeric flags (-X raw): O_RDWR == 2
    ]


def test_non_file_opens_are_typed():
    events, _ = parse(
        """
100  1.0 openat(AT_FDCWD</w>, "/etc", O_RDONLY|O_CLOEXEC|O_DIRECTORY) = 6</etc>
100  1.1 openat(AT_FDCWD</w>, "/proc/self/fd/8", O_RDONLY|O_CLOEXEC) = 11<pipe:[9864]>
100  1.2 openat(AT_FDCWD</w>, "/proc/self/fd/9", O_RDWR) = 12<socket:[9865]>
100  1.3 openat(AT_FDCWD</w>, "/proc/self/fd/10", O_RDONLY) = 13<anon_inode:[eventfd]>
100  1.4 openat(AT_FDCWD</w>, "/dev/null", O_WRONLY|O_CREAT|O_TRUNC, 0666) = 3</dev/null<char 1:3>>
100  1.5 openat(AT_FDCWD</>, "/newroot/usr", O_RDONLY|O_CLOEXEC|O_PATH) = 5</newroot/usr>
100  1.6 openat(AT_FDCWD</w>, "/proc/self/fd/11", O_RDONLY) = 14<TCP:[127.0.0.1:4000->1.2.3.4:443]>
"""
    )
    assert [(e.path, e.ftype) for e in events] == [
        ("/etc", "dir"),
        ("/proc/self/fd/8", "pipe"),
        ("/proc/self/fd/9", "socket"),
        ("/proc/self/fd/10", "anon"),
        ("/dev/null", "chr"),
        ("/newroot/usr", "path"),
        ("/proc/self/fd/11", "socket"),
    ]


# ------------------------------------------------------------------ paths


def test_relative_paths_resolve_against_dirfd_annotation_and_cwd():
    events, stats = parse(
        r"""
100  1.0 openat(3</usr/lib>, "x/../y", O_RDONLY) = 4</usr/lib/y>
100  1.1 openat(AT_FDCWD</tmp/a\76b, c>, "rel", O_RDONLY) = 4</tmp/a\76b, c/rel>
100  1.2 mkdir("dd", 0777) = 0
100  1.3 chdir("/var") = 0
100  1.4 chdir("lib") = 0
100  1.5 unlink("f") = 0
100  1.6 fchdir(5</opt/x>) = 0
100  1.7 rename("a", "/abs/b") = 0
100  1.8 unlinkat(7</srv//data/>, "./z", 0) = 0
"""
    )
    assert stats.dropped == 0
    assert [e.path for e in events] == [
        "/usr/lib/y",
        "/tmp/a>b, c/rel",
        "/tmp/a>b, c/dd",  # cwd learned from the AT_FDCWD annotation
        "/var/lib/f",  # chdir tracked, relative chdir joined
        "/opt/x/a",
        "/srv/data/z",
    ]
    assert events[4].path2 == "/abs/b"


def test_relative_path_without_any_base_stays_relative_unless_initial_cwd():
    assert one('100  1.0 mkdir("dd", 0777) = 0').path == "dd"
    assert one('100  1.0 mkdir("dd", 0777) = 0', initial_cwd="/work").path == "/work/dd"
    # a numeric dirfd without annotation is not the cwd
    assert one('100  1.0 mkdirat(5, "dd", 0777) = 0', initial_cwd="/work").path == "dd"
    assert one('100  1.0 mkdirat(AT_FDCWD, "dd", 0777) = 0', initial_cwd="/work").path == "/work/dd"


def test_cwd_is_inherited_on_clone():
    events, _ = parse(
        """
100  1.0 chdir("/srv") = 0
100  1.1 clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD, child_tidptr=0x7f) = 101
101  1.2 unlink("tmpfile") = 0
"""
    )
    assert events[-1].path == "/srv/tmpfile" and events[-1].ppid == 100


def test_quoted_string_escapes_octal_utf8_and_truncation():
    events, _ = parse(
        r"""
100  1.0 unlink("/tmp/tt\n\"x\\y\303\251") = 0
100  1.1 unlink("/tmp/bad\377") = 0
100  1.2 unlink("/tmp/tab\there\x41") = 0
100  1.3 openat(AT_FDCWD</>, "/tmp/verylongname"..., O_RDONLY) = -1 ENAMETOOLONG (File name too long)
"""
    )
    assert events[0].path == '/tmp/tt\n"x\\yé'
    assert events[1].path == "/tmp/bad\\xff"  # not UTF-8: kept visible, still valid JSON text
    assert events[2].path == "/tmp/tab\thereA"
    assert events[3].path == "/tmp/verylongname..." and events[3].truncated
    assert events[3].errno == "ENAMETOOLONG"


def test_rename_link_symlink_chmod_truncate_family():
    events, stats = parse(
        """
100  1.0 renameat2(AT_FDCWD</w>, "/w/f", AT_FDCWD</w>, "/w/g", RENAME_NOREPLACE) = 0
100  1.1 renameat(3</a>, "x", 4</b>, "y") = 0
100  1.2 linkat(AT_FDCWD</w>, "h1", AT_FDCWD</w>, "h2", 0) = 0
100  1.3 link("/w/l1", "/w/l2") = 0
100  1.4 symlink("/etc/passwd", "/w/ln") = 0
100  1.5 symlinkat("../t", 3</w/sub>, "ln2") = 0
100  1.6 chmod("/w/s.sh", 0755) = 0
100  1.7 fchmodat(AT_FDCWD</w>, "run", 0700) = 0
100  1.8 fchmod(3</w/fd-file>, 0600) = 0
100  1.9 truncate("/w/t", 0) = 0
100  2.0 ftruncate(4</w/ft>, 10) = 0
100  2.1 mkdirat(AT_FDCWD</w>, "d2", 0755) = -1 EEXIST (File exists)
100  2.2 unlinkat(AT_FDCWD</w>, "d2", AT_REMOVEDIR) = 0
100  2.3 rmdir("/w/d3") = 0
"""
    )
    assert stats.dropped == 0
    got = [(e.op, e.path, e.path2) for e in events]
    assert got == [
        ("rename", "/w/f", "/w/g"),
        ("rename", "/a/x", "/b/y"),
        ("link", "/w/h1", "/w/h2"),
        ("link", "/w/l1", "/w/l2"),
        ("link", "/etc/passwd", "/w/ln"),
        ("link", "/w/t", "/w/sub/ln2"),  # relative symlink target: relative to the link's dir
        ("chmod", "/w/s.sh", None),
        ("chmod", "/w/run", None),
        ("chmod", "/w/fd-file", None),
        ("truncate", "/w/t", None),
        ("truncate", "/w/ft", None),
        ("mkdir", "/w/d2", None),
        ("delete", "/w/d2", None),
        ("delete", "/w/d3", None),
    ]
    assert events[11].errno == "EEXIST"


# ------------------------------------------------------------------ processes


def test_execve_argv_env_and_exe_tracking():
    events, _ = parse(
        f"""
100  1.0 execve("/usr/bin/sh", ["sh", "-c", "id; echo \\"hi\\""], {ENV}) = 0
100  1.1 execve("/usr/local/bin/python3", ["python3"], {ENV}) = -1 ENOENT (No such file or directory)
100  1.2 openat(AT_FDCWD</>, "/etc/passwd", O_RDONLY) = 3</etc/passwd>
100  1.3 execve("/usr/bin/id", ["id"], [/* 30 vars */]) = 0
100  1.4 openat(AT_FDCWD</>, "/etc/group", O_RDONLY) = 3</etc/group>
"""
    )
    first, failed, read1, second, read2 = events
    assert first.exe is None and first.path == "/usr/bin/sh"
    assert first.argv == ["sh", "-c", 'id; echo "hi"']
    assert first.env == ["HOME=/root", "PATH=/usr/bin:/bin", "AWS_SECRET_ACCESS_KEY=abc"]
    assert failed.errno == "ENOENT" and failed.exe == "/usr/bin/sh"
    assert read1.exe == "/usr/bin/sh" and read1.comm == "sh"  # the failed exec changed nothing
    assert second.exe == "/usr/bin/sh" and second.env is None  # abbreviated env: unknown
    assert read2.exe == "/usr/bin/id" and read2.comm == "id"
    assert first.args == ['"/usr/bin/sh"']  # argv/env live in their own fields, not twice


def test_truncated_argv_string_is_marked():
    ev = one('100  1.0 execve("/bin/echo", ["/bin/echo", "aaaaaaaaaa"...], [/* 39 vars */]) = 0')
    assert ev.argv == ["/bin/echo", "aaaaaaaaaa..."] and ev.truncated


def test_vfork_child_runs_before_parent_resumes_interleaved_unfinished():
    events, stats = parse(
        f"""
100  1.00 execve("/usr/bin/sh", ["sh"], {ENV}) = 0
100  1.01 vfork( <unfinished ...>
101  1.02 execve("/usr/bin/cat", ["cat", "/etc/hostname"], {ENV} <unfinished ...>
100  1.03 <... vfork resumed>) = 3 /* 101 in strace's PID NS */
101  1.04 <... execve resumed>) = 0
101  1.05 openat(AT_FDCWD</>, "/etc/hostname", O_RDONLY) = 3</etc/hostname>
101  1.06 exit_group(0)                     = ?
101  1.07 +++ exited with 0 +++
100  1.08 +++ killed by SIGKILL +++
"""
    )
    assert stats.dropped == 0
    kinds = [(e.pid, e.syscall, e.t) for e in events]
    # events come out in order of their entry time, even when they finished later
    assert kinds == [
        (100, "execve", 1.00),
        (100, "vfork", 1.01),
        (101, "execve", 1.02),
        (101, "openat", 1.05),
        (101, "exit", 1.07),
        (100, "exit", 1.08),
    ]
    vfork, child_exec, child_open, child_exit, parent_exit = events[1:]
    assert vfork.child_pid == 101 and vfork.ret == 3  # ret is the namespace pid, child_pid the host one
    assert child_exec.ppid == 100 and child_exec.exe == "/usr/bin/sh"  # exe inherited until exec
    assert child_exec.argv == ["cat", "/etc/hostname"] and child_exec.ret == 0
    assert child_open.exe == "/usr/bin/cat" and child_open.ppid == 100
    assert child_exit.exit_code == 0 and child_exit.op == "exit"
    assert parent_exit.signal == "SIGKILL" and parent_exit.exit_code is None


def test_two_clones_in_flight_child_parent_resolved_from_return_value():
    events, stats = parse(
        """
100  1.00 execve("/usr/bin/node", ["node"], []) = 0
100  1.01 clone(child_stack=NULL, flags=SIGCHLD <unfinished ...>
200  1.02 execve("/usr/bin/python3", ["python3"], []) = 0
200  1.03 clone(child_stack=NULL, flags=SIGCHLD <unfinished ...>
300  1.04 openat(AT_FDCWD</>, "/etc/shadow", O_RDONLY) = -1 EACCES (Permission denied)
200  1.05 <... clone resumed>) = 300
100  1.06 <... clone resumed>) = 200
"""
    )
    assert stats.dropped == 0
    by = {(e.pid, e.syscall): e for e in events}
    assert by[(300, "openat")].ppid == 200
    assert by[(300, "openat")].exe == "/usr/bin/python3"
    assert by[(200, "execve")].ppid == 100
    assert [e.t for e in events] == sorted(e.t for e in events)


def test_exited_pid_is_forgotten_so_reuse_gets_a_fresh_parent():
    events, _ = parse(
        """
100  1.0 clone(child_stack=NULL, flags=SIGCHLD) = 101
101  1.1 execve("/usr/bin/true", ["true"], []) = 0
101  1.2 +++ exited with 0 +++
100  1.3 execve("/usr/bin/env", ["env"], []) = 0
100  1.4 clone(child_stack=NULL, flags=SIGCHLD) = 101
101  1.5 openat(AT_FDCWD</>, "/x", O_RDONLY) = 3</x>
"""
    )
    assert events[-1].exe == "/usr/bin/env" and events[-1].ppid == 100


def test_kill_tgkill_and_received_signals():
    events, stats = parse(
        """
100  1.0 kill(4 /* 7079 in strace's PID NS */, SIGKILL) = 0
100  1.1 tgkill(100, 102, SIGTERM) = 0
100  1.2 --- SIGCHLD {si_signo=SIGCHLD, si_code=CLD_EXITED, si_pid=7024, si_uid=0, si_status=0} ---
100  1.3 --- SIGSYS {si_signo=SIGSYS, si_code=SYS_SECCOMP, si_call_addr=0x7f, si_syscall=__NR_ptrace} ---
"""
    )
    assert [(e.op, e.signal, e.target_pid) for e in events] == [
        ("signal", "SIGKILL", 7079),
        ("signal", "SIGTERM", 102),
        ("signal", "SIGSYS", 100),
    ]
    assert stats.ignored >= 1 and stats.dropped == 0


def test_unfinished_connect_of_a_killed_process_is_kept_with_unknown_result():
    events, stats = parse(
        """
100  1.0 connect(3<TCP:[1]>, {sa_family=AF_INET, sin_port=htons(443), sin_addr=inet_addr("1.2.3.4")}, 16 <unfinished ...>
100  9.0 +++ killed by SIGKILL +++
"""
    )
    connect, exit_ = events
    assert (connect.op, connect.address, connect.port, connect.ret, connect.errno) == (
        "connect", "1.2.3.4", 443, None, None,
    )  # fmt: skip
    assert connect.t == 1.0 and exit_.signal == "SIGKILL"
    assert stats.unfinished == 1


def test_unfinished_at_end_of_log_is_flushed():
    events, stats = parse('100  1.0 openat(AT_FDCWD</>, "/fifo", O_RDONLY <unfinished ...>')
    assert events[0].path == "/fifo" and events[0].ret is None and stats.unfinished == 1


# ------------------------------------------------------------------ network


def test_sockaddrs():
    events, stats = parse(
        """
100  1.0 connect(3<TCP:[9855]>, {sa_family=AF_INET, sin_port=htons(9), sin_addr=inet_addr("127.0.0.1")}, 16) = -1 EINPROGRESS (Operation now in progress)
100  1.1 sendto(4<UDPv6:[9857]>, "hi", 2, 0, {sa_family=AF_INET6, sin6_port=htons(53), sin6_flowinfo=htonl(0), inet_pton(AF_INET6, "::1", &sin6_addr), sin6_scope_id=0}, 28) = 2
100  1.2 connect(5<UNIX-STREAM:[9859]>, {sa_family=AF_UNIX, sun_path="/run/docker.sock"}, 21) = -1 ENOENT (No such file or directory)
100  1.3 bind(6<UNIX-STREAM:[1]>, {sa_family=AF_UNIX, sun_path=@"abstract"}, 12) = 0
100  1.4 sendto(7<TCP:[1.1.1.1:5->2.2.2.2:80]>, "GET / HTTP/1.1\\r\\n", 16, MSG_NOSIGNAL, NULL, 0) = 16
100  1.5 sendto(8<NETLINK:[1]>, [{nlmsg_len=20, nlmsg_type=RTM_GETADDR}], 20, 0, {sa_family=AF_NETLINK, nl_pid=0, nl_groups=00000000}, 12) = 20
100  1.6 sendmsg(9<UDP:[1]>, {msg_name={sa_family=AF_INET, sin_port=htons(53), sin_addr=inet_addr("8.8.8.8")}, msg_namelen=16, msg_iov=[{iov_base="sa_family=AF_INET, sin_port=htons(1), sin_addr=inet_addr(\\"6.6.6.6\\")", iov_len=10}], msg_iovlen=1, msg_controllen=0, msg_flags=0}, 0) = 10
100  1.7 sendmsg(9<UDP:[1]>, {msg_name=NULL, msg_namelen=0, msg_iov=[{iov_base="x", iov_len=1}], msg_iovlen=1, msg_controllen=0, msg_flags=0}, 0) = 1
100  1.8 connect(3<UDP:[1]>, {sa_family=AF_UNSPEC, sa_data="\\0\\0"}, 16) = 0
"""
    )
    assert stats.dropped == 0
    got = [(e.syscall, e.op, e.family, e.address, e.port, e.errno) for e in events]
    assert got == [
        ("connect", "connect", "AF_INET", "127.0.0.1", 9, "EINPROGRESS"),
        ("sendto", "sendto", "AF_INET6", "::1", 53, None),
        ("connect", "connect", "AF_UNIX", "/run/docker.sock", None, "ENOENT"),
        ("bind", "bind", "AF_UNIX", "@abstract", None, None),
        ("sendmsg", "sendto", "AF_INET", "8.8.8.8", 53, None),  # never the address in the payload
    ]


# ------------------------------------------------------------------ robustness


def test_garbage_is_counted_not_raised(tmp_path: Path):
    log = tmp_path / "log"
    log.write_text(
        "\n".join(
            [
                "strace: Process 1 attached",
                "",
                '100  notatime openat(AT_FDCWD, "/x", O_RDONLY) = 3',
                '100  1.0 openat(AT_FDCWD</>, "/ok", O_RDONLY) = 3</ok>',
                '100  1.1 openat(AT_FDCWD</>, "/unterminated, O_RDONLY) = 3',
                "100  1.2 <... openat resumed>garbage",
                "100  1.3 +++ weird +++ line",
                "100  1.4 )))(((",
                "100  1.5 getpid() = 100",  # not traced by us: ignored, not an error
                '100  1.6 openat(AT_FDCWD</>, "/last", O_RDO',  # strace killed mid-line
            ]
        )
    )
    stats = ParseStats()
    events = list(parse_log(log, "install", stats=stats))
    assert [e.path for e in events] == ["/ok"]
    assert stats.truncated
    assert stats.dropped == 8 and stats.ignored == 1 and stats.lines == 10
    assert stats.dropped_samples and stats.events == 1


REAL_LINES = [
    '6166  1795705043.511647 openat(AT_FDCWD</tmp/st>, "/etc/ld.so.cache", O_RDONLY|O_CLOEXEC) = 3</etc/ld.so.cache>',
    "6166  1795705043.512220 vfork( <unfinished ...>",
    '6167  1795705043.512430 execve("/usr/bin/cat", ["cat", "/etc/hostname"], ["A=1", "B=2"] <unfinished ...>',
    "6166  1795705043.512626 <... vfork resumed>) = 6167",
    "6167  1795705043.512685 <... execve resumed>) = 0",
    '6491  1795705057.721532 connect(3<TCP:[9855]>, {sa_family=AF_INET, sin_port=htons(9), sin_addr=inet_addr("127.0.0.1")}, 16) = -1 EINPROGRESS (Operation now in progress)',
    "6491  1795705057.723180 clone3({flags=CLONE_VM|CLONE_FS, child_tid=0x7f, exit_signal=0, stack=0x7f, stack_size=0x7fff80, tls=0x7f} => {parent_tid=[6492]}, 88) = 6492",
    '6490  1795705057.698995 unlinkat(AT_FDCWD</tmp/st>, "/tmp/st/g", 0) = 0',
    "6489  1795705057.694983 +++ exited with 0 +++",
]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.sampled_from(REAL_LINES),
            st.tuples(st.sampled_from(REAL_LINES), st.integers(0, 200)).map(lambda p: p[0][: p[1]]),
            st.text(max_size=80),
        ),
        max_size=12,
    )
)
def test_never_raises_on_mixed_and_cut_lines(lines: list[str]):
    stats = ParseStats()
    clean = [ln.replace("\n", " ").replace("\r", " ") for ln in lines]
    events = list(parse_log(clean, "install", stats=stats))
    assert stats.lines == len(clean)
    assert stats.events == len(events)
    assert all(isinstance(e, Event) for e in events)
    encode_events_jsonl(events)  # and whatever came out is encodable


# ------------------------------------------------------------------ encoding


def test_jsonl_has_common_fields_as_null_and_omits_unset_extras(tmp_path: Path):
    events, _ = parse(
        """
100  1.0 openat(AT_FDCWD</>, "/etc/passwd", O_RDONLY) = 3</etc/passwd>
100  1.1 +++ exited with 3 +++
"""
    )
    path = tmp_path / "events.jsonl"
    assert write_events_jsonl(path, events) == 2
    rows = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    assert rows[0]["errno"] is None and rows[0]["ppid"] is None and rows[0]["exe"] is None
    for key in ("t", "phase", "pid", "ppid", "exe", "comm", "syscall", "kind", "op", "ret", "errno", "args"):
        assert key in rows[0] and key in rows[1]
    assert "argv" not in rows[0] and "read" not in rows[0] and "exit_code" not in rows[0]
    assert rows[1]["exit_code"] == 3
    assert read_events_jsonl(path) == events
    assert events[0].to_dict() == rows[0]


def strace_quote(raw: bytes, in_annotation: bool = False) -> str:
    """Quote bytes the way strace 6.1 prints them (non-printables and non-ASCII as octal)."""
    named = {0x0A: "\\n", 0x09: "\\t", 0x0D: "\\r", 0x0C: "\\f", 0x0B: "\\v", 0x22: '\\"', 0x5C: "\\\\"}
    out = []
    for i, b in enumerate(raw):
        nxt_digit = i + 1 < len(raw) and 0x30 <= raw[i + 1] <= 0x37
        if in_annotation and b in (0x3C, 0x3E):  # < and > inside -yy annotations
            out.append(f"\\{b:03o}" if nxt_digit else f"\\{b:o}")
        elif b in named:  # annotations escape '"' too (seen in real logs)
            out.append(named[b])
        elif 0x20 <= b < 0x7F:
            out.append(chr(b))
        else:
            out.append(f"\\{b:03o}" if nxt_digit else f"\\{b:o}")
    return "".join(out)


@settings(max_examples=200, deadline=None)
@given(
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00/"),
        min_size=1,
        max_size=30,
    ),
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00/"),
        min_size=1,
        max_size=20,
    ),
)
def test_any_file_name_round_trips_through_strace_quoting(name: str, dirname: str):
    base = "/tmp/" + dirname
    path = base + "/" + name
    raw_name, raw_base = name.encode(), base.encode()
    line = (
        f'100  1.0 openat(AT_FDCWD<{strace_quote(raw_base, True)}>, "{strace_quote(raw_name)}", '
        f"O_WRONLY|O_CREAT|O_TRUNC, 0666) = 3<{strace_quote(path.encode(), True)}>"
    )
    ev = one(line)
    dotted = any(part in (".", "..") for part in path.split("/"))
    assert ev.path == (posixpath.normpath(path) if dotted else path) and ev.op == "write"


def test_execveat_fork_and_relative_exec():
    events, stats = parse(
        """
100  1.0 chdir("/build") = 0
100  1.1 execve("./configure", ["./configure"], []) = 0
100  1.2 fork() = 101
101  1.3 execveat(3</usr/bin>, "", ["env"], [], AT_EMPTY_PATH) = 0
101  1.4 execveat(AT_FDCWD</build>, "tool", ["tool"], [], 0) = 0
"""
    )
    assert stats.dropped == 0
    assert [(e.syscall, e.path, e.ppid) for e in events if e.op == "exec"] == [
        ("execve", "/build/configure", None),
        ("execveat", "/usr/bin", 100),
        ("execveat", "/build/tool", 100),
    ]
    assert events[-1].exe == "/usr/bin" and events[-1].argv == ["tool"]


def test_a_call_that_never_returns_gives_up_its_place_after_hold_cap(monkeypatch):
    import osptrack.trace.strace as strace_mod

    monkeypatch.setattr(strace_mod, "HOLD_CAP", 5)
    lines = [
        '100  1.0 connect(3<TCP:[1]>, {sa_family=AF_INET, sin_port=htons(80), sin_addr=inet_addr("10.0.0.1")}, 16 <unfinished ...>'
    ]
    lines += [f'200  {2 + i}.0 openat(AT_FDCWD</>, "/f{i}", O_RDONLY) = 3</f{i}>' for i in range(10)]
    lines.append("100  20.0 <... connect resumed>) = 0")
    events, stats = parse("\n".join(lines))
    assert stats.dropped == 0 and len(events) == 11
    assert [e.path for e in events if e.kind == "file"] == [f"/f{i}" for i in range(10)]  # order kept
    assert events[-1].op == "connect" and events[-1].ret == 0 and events[-1].t == 1.0  # emitted late
