"""The eBPF tracer backend: its log reader on hand-made records, and the real loader against strace.

The kernel tests skip with the reason when eBPF cannot load here (no BTF, not root, loader not
built); on the CI machine kind (Firecracker, kernel 6.18, BTF) they run. The equivalence test
runs both backends on the same script and compares the events with pids left out.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from osptrack.trace.ebpf import loader_path
from osptrack.trace.ebpf.log import LOG_MAGIC, EbpfStats, parse_log
from osptrack.trace.events import Event
from osptrack.trace.strace import ParseStats
from osptrack.trace.strace import parse_log as strace_parse_log
from osptrack.trace.tracers import choose, get
from osptrack.trace.tracers import ebpf as ebpf_backend

PY = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else "python3"


def _ebpf_ok() -> tuple[bool, str]:
    return get("ebpf").available()


needs_ebpf = pytest.mark.skipif(not _ebpf_ok()[0], reason=f"eBPF tracer unavailable: {_ebpf_ok()[1]}")


# ---------------------------------------------------------------- choosing a backend


def test_choose_names_and_reasons(monkeypatch):
    with pytest.raises(ValueError, match="unknown tracer"):
        choose("ptrace")
    assert choose("strace").tracer.name == "strace"
    monkeypatch.setenv("OSPTRACK_EBPF_LOADER", "/nonexistent/osptrack-ebpf")
    ebpf_backend._check.cache_clear()
    try:
        auto = choose("auto")
        assert (
            auto.tracer.name == "strace" and "eBPF unavailable" in auto.reason and "not built" in auto.reason
        )
        with pytest.raises(ValueError, match="--tracer ebpf is unavailable"):
            choose("ebpf")
    finally:
        ebpf_backend._check.cache_clear()


@needs_ebpf
def test_auto_is_ebpf_where_it_loads():
    choice = choose("auto")
    assert choice.tracer.name == "ebpf" and choice.reason.startswith("default:")


@needs_ebpf
def test_a_loader_from_another_build_is_not_used(tmp_path: Path, monkeypatch):
    # bin/ is not in git: a checkout whose loader predates the sources must not be read with
    # this reader (another record format); auto falls back to strace and says why.
    stale = tmp_path / "osptrack-ebpf"
    stale.write_text("#!/bin/sh\necho ok\n")  # what a version-2 loader's --check printed
    stale.chmod(0o755)
    monkeypatch.setenv("OSPTRACK_EBPF_LOADER", str(stale))
    ebpf_backend._check.cache_clear()
    try:
        auto = choose("auto")
        assert auto.tracer.name == "strace" and "another build" in auto.reason, auto.reason
    finally:
        ebpf_backend._check.cache_clear()


# ---------------------------------------------------------------- the log reader, no kernel

_HDR = struct.Struct("<IBBHIIQII")


def _rec(
    rtype: int, body: bytes, *, tid: int = 100, tgid: int = 100, nr: int = 0, flags: int = 0, ts: int = 0
) -> bytes:
    return _HDR.pack(_HDR.size + len(body), rtype, flags, nr, tid, tgid, ts, 1, 0) + body


def _enter(nr: int, args: tuple[int, ...], blobs: list[bytes], **kw: int) -> bytes:
    blobs = blobs + [b""] * (6 - len(blobs))
    body = struct.pack("<6Q6HI", *args, *(len(b) for b in blobs), 0) + b"".join(blobs)
    return _rec(2, body, nr=nr, **kw)


def _exit(nr: int, ret: int, mode: int = 0, **kw: int) -> bytes:
    return _rec(3, struct.pack("<qIHHHH16s", ret, mode, 0, 0, 0, 0, b""), nr=nr, **kw)


def _header(root: int = 100) -> bytes:
    return _rec(1, struct.pack("<QqII", LOG_MAGIC, 1_000_000_000_000_000_000, root, 0))


def test_reader_pairs_entry_and_exit_resolves_bases_and_keeps_the_tree(tmp_path: Path):
    at_fdcwd = (1 << 64) - 100
    log = tmp_path / "t.ebpf"
    log.write_bytes(
        _header()
        # openat(AT_FDCWD, "rel/f", O_WRONLY|O_CREAT) in cwd /home/u (components leaf first)
        + _enter(257, (at_fdcwd, 0, 0o101, 0, 0, 0), [b"u\0home\0", b"rel/f\0"], ts=1000)
        + _exit(257, 3, mode=0o100644, ts=2000)
        # unlinkat(5, "x", AT_REMOVEDIR) with fd 5 at /tmp/d
        + _enter(263, (5, 0, 0x200, 0, 0, 0), [b"d\0tmp\0", b"x\0"], ts=3000)
        + _exit(263, -2, ts=3500)
        # a path not paged in at entry, read again at exit (REC_RETRY)
        + _enter(257, (at_fdcwd, 0, 0, 0, 0, 0), [b"u\0home\0", b"\0"], flags=4, ts=4000)
        + _rec(8, struct.pack("<6Q6HI", 0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 0, 0) + b"/etc/x1\0", nr=257)
        + _exit(257, 4, mode=0o010600, ts=4500)  # a FIFO
        # fork: child 101 (pid 2 in its namespace), which execs and is killed
        + _rec(4, struct.pack("<IIII", 101, 101, 2, 0), ts=5000)
        + _enter(57, (0,) * 6, [], ts=4900)
        + _exit(57, 2, ts=5100)
        + _enter(
            59, (0,) * 6, [b"", b"/bin/sh\0", b"", b"", b"sh\0-c\0id\0", b"A=1\0"], tid=101, tgid=101, ts=6000
        )
        + _exit(59, 0, tid=101, tgid=101, ts=6500)
        + _enter(62, (2, 9, 0, 0, 0, 0), [], ts=6600)  # kill(2, SIGKILL): namespace pid 2 is host 101
        + _exit(62, 0, ts=6700)
        + _rec(5, struct.pack("<iB3x", 9, 1), tid=101, tgid=101, ts=7000)
        + _rec(5, struct.pack("<iB3x", 3 << 8, 1), ts=8000)
        + _rec(7, struct.pack("<Q", 3))
    )
    stats = EbpfStats()
    events = list(parse_log(log, "install", stats=stats))
    by = {(e.syscall, e.pid): e for e in events}
    first = [e for e in events if e.syscall == "openat"]
    assert first[0].path == "/home/u/rel/f" and first[0].op == "write" and first[0].ret == 3
    assert first[1].path == "/etc/x1" and first[1].ftype == "pipe" and first[1].op == "read"
    unlink = by[("unlinkat", 100)]
    assert unlink.path == "/tmp/d/x" and unlink.errno == "ENOENT" and unlink.ret == -1
    assert "AT_REMOVEDIR" in unlink.args[-1]
    clone = by[("fork", 100)]
    assert clone.op == "clone" and clone.child_pid == 101 and clone.ret == 2
    execve = by[("execve", 101)]
    assert execve.ppid == 100 and execve.argv == ["sh", "-c", "id"] and execve.env == ["A=1"]
    assert by[("kill", 100)].target_pid == 101 and by[("kill", 100)].signal == "SIGKILL"
    assert by[("exit", 101)].signal == "SIGKILL" and by[("exit", 101)].comm == "sh"
    assert by[("exit", 100)].exit_code == 3
    assert stats.lost == 3 and not stats.truncated
    assert [e.t for e in events] == sorted(e.t for e in events)


def test_reader_marks_a_cut_log_and_refuses_another_format(tmp_path: Path):
    log = tmp_path / "t.ebpf"
    whole = _header() + _enter(2, (0,) * 6, [b"", b"/etc/passwd\0"]) + _exit(2, 3)
    log.write_bytes(whole[:-10])
    stats = EbpfStats()
    events = list(parse_log(log, "install", stats=stats))
    assert stats.truncated and [e.path for e in events] == ["/etc/passwd"] and events[0].ret is None
    log.write_bytes(_rec(1, struct.pack("<QqII", 0x1234, 0, 1, 0)))
    with pytest.raises(ValueError, match="not an osptrack-ebpf log"):
        list(parse_log(log, "install"))


# ---------------------------------------------------------------- the real kernel

SCRIPT = (
    "cat /etc/hostname > /dev/null; "
    'echo x > "$D/f"; mv "$D/f" "$D/g"; ln -s g "$D/l"; chmod 600 "$D/g"; rm "$D/g" "$D/l"; '
    'mkdir "$D/sub"; rmdir "$D/sub"; '
    'cd "$D" && echo y > rel; '
    "cat /nonexistent-osptrack 2>/dev/null; "
    "ls ~/.ssh/id_rsa >/dev/null 2>&1; "
    f'{PY} -c \'import socket; s=socket.socket(); s.settimeout(0.2); s.connect_ex(("127.0.0.1", 9)); '
    'u=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.sendto(b"x", ("127.0.0.1", 9)); '
    'l=socket.socket(); l.bind(("127.0.0.1", 0)); l.listen()\'; '
    "exit 3"
)


def _key(e: Event, names: dict[int, str]) -> tuple[object, ...]:
    """An event without pids or times: the process is named by its exec chain instead."""
    return (
        e.kind, e.op, e.syscall, e.path, e.path2, e.errno, tuple(e.argv or ()), e.family, e.address,
        e.port if e.op != "listen" else None, e.exit_code, e.signal, e.ftype, e.read, e.probe, e.exe, e.comm,
        names.get(e.ppid or -1), e.ret if e.kind == "file" and e.ret is not None and e.ret <= 0 else None,
    )  # fmt: skip


def _keys(events: list[Event]) -> Counter[tuple[object, ...]]:
    names = {}
    for e in events:  # a pid's name: what it exec'd last (its parent's, until it execs)
        if e.op == "clone" and e.child_pid is not None:
            names.setdefault(e.child_pid, names.get(e.pid, "root"))
        if e.op == "exec" and e.ret == 0 and e.path:
            names[e.pid] = e.path
    return Counter(_key(e, names) for e in events)


def _run(tracer: str, tmp_path: Path, script: str = SCRIPT) -> tuple[list[Event], ParseStats, int]:
    """The script under `tracer`, in a fresh tmp_path/w (the same path for both backends)."""
    work = tmp_path / "w"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    log = tmp_path / f"{tracer}.log"
    backend = get(tracer)
    argv = [*backend.command(log, user=None), "/bin/sh", "-c", script]
    proc = subprocess.run(
        argv,
        env={"D": str(work), "PATH": "/usr/bin:/bin", "HOME": str(work)},
        capture_output=True,
        timeout=120,
    )
    stats = backend.new_stats()
    return list(backend.parse(log, "install", stats)), stats, proc.returncode


@needs_ebpf
def test_ebpf_sees_what_strace_sees(tmp_path: Path):
    ev_e, st_e, rc_e = _run("ebpf", tmp_path)
    ev_s, st_s, rc_s = _run("strace", tmp_path)
    assert rc_e == rc_s == 3
    assert st_s.dropped == 0 and isinstance(st_e, EbpfStats) and st_e.lost == 0 and st_e.dropped == 0
    ke, ks = _keys(ev_e), _keys(ev_s)
    only_e, only_s = ke - ks, ks - ke
    assert not only_e and not only_s, (list(only_e)[:10], list(only_s)[:10])
    ops = {(e.kind, e.op) for e in ev_e}
    assert {
        ("file", "write"),
        ("file", "rename"),
        ("file", "delete"),
        ("file", "link"),
        ("file", "chmod"),
    } <= ops
    assert {("file", "mkdir"), ("process", "exec"), ("process", "clone"), ("network", "connect")} <= ops
    assert {("network", "sendto"), ("network", "listen"), ("process", "exit")} <= ops
    assert any(
        e.path == str(tmp_path / "w" / "rel") and e.op == "write" for e in ev_e
    )  # relative, resolved by the kernel
    listen = [e for e in ev_e if e.op == "listen"]
    assert listen and listen[0].address == "127.0.0.1" and listen[0].port and listen[0].port > 0
    ts = [e.t for e in ev_e]
    assert ts == sorted(ts) and abs(ts[0] - ev_s[0].t) < 60  # epoch seconds, like strace's -ttt


@needs_ebpf
def test_ebpf_follows_daemons_until_they_end(tmp_path: Path):
    # A double fork + setsid leaves the tree; the kernel still follows it, and the loader waits.
    script = "setsid sh -c '(sleep 0.5; echo z > \"$D/late\") &' ; exit 0"
    events, _, rc = _run("ebpf", tmp_path, script)
    assert rc == 0
    assert any(e.op == "write" and e.path == str(tmp_path / "w" / "late") for e in events)


@needs_ebpf
def test_a_traced_process_cannot_reach_bpf(tmp_path: Path):
    # As the sandbox's user (no CAP_BPF/CAP_SYS_ADMIN): bpf() itself is refused, so the traced
    # task map, the ring buffer and the programs are out of reach.
    code = (
        "import ctypes, os; libc = ctypes.CDLL(None, use_errno=True); "
        "attr = ctypes.create_string_buffer(128); "
        "r = libc.syscall(321, 14, attr, 128); print(r, ctypes.get_errno())"  # BPF_MAP_GET_FD_BY_ID
    )
    log = tmp_path / "t.log"
    argv = [*get("ebpf").command(log, user="nobody"), PY, "-c", code]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd="/")
    assert proc.returncode == 0, proc.stderr
    ret, err = proc.stdout.split()
    assert ret == "-1" and int(err) == 1  # EPERM
    events = list(parse_log(log, "install"))
    assert any(e.op == "exec" and e.path == PY for e in events)


@needs_ebpf
def test_an_overflowing_ring_buffer_is_counted_and_invalidates_the_trace(tmp_path: Path):
    loader = loader_path()
    assert loader is not None
    log = tmp_path / "t.log"
    flood = f"{PY} -c 'import os\nfor i in range(20000): os.access(\"/etc/passwd\", 0)'"
    argv = [str(loader), "--ringbuf-bytes", "4096", "-o", str(log), "--", "/bin/sh", "-c", flood]
    proc = subprocess.run(argv, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    stats = EbpfStats()
    list(parse_log(log, "install", stats=stats))
    assert stats.lost > 0

    from osptrack.run import _phase_info
    from osptrack.sandbox.runner import PhaseOutcome

    outcome = PhaseOutcome(0, False, False, 0.0, 1.0, b"", b"", 0, 0, None, log)
    info = _phase_info(outcome, "completed", 10, stats, get("ebpf"))
    assert (
        info["trace_valid"] is False and info["trace_lost_events"] == stats.lost and info["tracer"] == "ebpf"
    )


def test_the_strace_backend_still_reads_strace_logs(tmp_path: Path):
    log = tmp_path / "s.log"
    log.write_text(
        '100 1700000000.000001 openat(AT_FDCWD</w>, "a", O_RDONLY) = 3</w/a>\n+++ exited with 0 +++\n'
    )
    stats = ParseStats()
    assert [e.path for e in get("strace").parse(log, "install", stats)] == [
        e.path for e in strace_parse_log(log, "install")
    ]
    assert get("strace").lost(stats) == 0


@needs_ebpf
def test_a_run_without_probes_records_none_like_strace(tmp_path: Path):
    script = "ls /home/osptrack-test-nobody/.ssh/id_rsa > /dev/null 2>&1; exit 0"  # absent: still a probe
    seen = {}
    for probes in (True, False):
        log = tmp_path / f"p{probes}.log"
        argv = [*get("ebpf").command(log, user=None, probes=probes), "/bin/sh", "-c", script]
        work = tmp_path / f"w{probes}"
        work.mkdir()
        subprocess.run(
            argv, env={"D": str(work), "PATH": "/usr/bin:/bin"}, capture_output=True, timeout=60, check=True
        )
        seen[probes] = [e for e in parse_log(log, "install") if e.op in ("stat", "access", "readlink")]
    assert seen[True] and all(e.probe == "ssh" for e in seen[True]) and seen[False] == []


# An execve whose argv strings sit in a file mapping never touched since mmap: at the syscall's
# entry their pages are not mapped yet (Composer's `sh -c` had its words in a fresh binary's
# .rodata), so the entry can only read the pointers; the kernel faults the strings in itself.
# (The path, too, is unreadable at entry and, after a successful exec, in the new image.)
EXEC_UNTOUCHED = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
PAGE = os.sysconf("SC_PAGE_SIZE")

def untouched(words):
    # Each word on its own page of a fresh file, mapped and never read here.
    path = f"{sys.argv[1]}/words-{len(os.listdir(sys.argv[1]))}"
    with open(path, "wb") as f:
        for w in words:
            f.write(w.encode().ljust(PAGE, b"\0"))
    fd = os.open(path, os.O_RDONLY)
    base = libc.mmap(None, PAGE * len(words), 1, 2, fd, 0)  # PROT_READ, MAP_PRIVATE
    return [base + i * PAGE for i in range(len(words))]

def execve(path, resident, mapped, mapped_path=False):
    keep = [ctypes.c_char_p(w.encode()) for w in resident]
    ptrs = [ctypes.cast(k, ctypes.c_void_p).value for k in keep] + untouched(mapped) + [None]
    argv = (ctypes.c_void_p * len(ptrs))(*ptrs)
    envp = (ctypes.c_void_p * 1)(None)
    where = untouched([path])[0] if mapped_path else path.encode()
    return libc.execve(ctypes.c_void_p(where) if mapped_path else where, argv, envp)

pid = os.fork()
if pid == 0:  # a #! script: the interpreter rewrites argv[0]
    execve(sys.argv[2], ["script0"], ["one", "two words"])
    os._exit(99)
os.waitpid(pid, 0)
assert execve("/nonexistent/prog", [], ["gone0", "gone1"]) == -1  # ENOENT: never faulted in
execve("/bin/echo", [], ["echo0", "-n", "stty -a | grep columns"], mapped_path=True)
os._exit(98)
"""


@needs_ebpf
def test_an_exec_records_argv_the_entry_could_not_read(tmp_path: Path):
    from osptrack.trace.ebpf.log import UNREADABLE

    work = tmp_path / "w"
    work.mkdir()
    script = tmp_path / "s.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o755)
    prog = tmp_path / "p.py"
    prog.write_text(EXEC_UNTOUCHED)
    log = tmp_path / "t.log"
    argv = [*get("ebpf").command(log, user=None), PY, str(prog), str(work), str(script)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout == "stty -a | grep columns", (proc.returncode, proc.stderr)
    execs = {e.path: e for e in parse_log(log, "install") if e.op == "exec"}
    assert (
        execs["/bin/echo"].argv == ["echo0", "-n", "stty -a | grep columns"] and execs["/bin/echo"].ret == 0
    )
    assert execs[str(script)].argv == ["script0", "one", "two words"] and execs[str(script)].ret == 0
    failed = execs["/nonexistent/prog"]
    assert failed.errno == "ENOENT" and failed.argv == [UNREADABLE, UNREADABLE]


def _voluntary_switches(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("voluntary_ctxt")))


@needs_ebpf
def test_records_wake_the_resident_tracer_in_bulk_and_the_log_is_whole_at_the_end(tmp_path: Path):
    # 20,000 kept probes (/etc is sensitive: entry and exit recorded, ~2.5 MB). Woken per record
    # that found it caught up, the resident tracer slept and woke thousands of times (1,500 per
    # corpus package); woken in bulk, a few per 512 KiB plus its timer. Every call is still in
    # the log once the client returns: the end of the run does not wait on a wake-up.
    loader = loader_path()
    assert loader is not None
    server = ebpf_backend.ensure_server(loader)
    pid = next(
        int(p.parent.name)
        for p in Path("/proc").glob("[0-9]*/cmdline")
        if p.exists()
        and p.read_bytes().split(b"\0")[:3] == [str(loader).encode(), b"--serve", str(server).encode()]
    )
    log = tmp_path / "t.log"
    code = "import os\nfor i in range(20000): os.access('/etc/shadow', 0)"
    before = _voluntary_switches(pid)
    proc = subprocess.run(
        [*get("ebpf").command(log, user=None), PY, "-c", code], capture_output=True, timeout=120
    )
    woken = _voluntary_switches(pid) - before
    assert proc.returncode == 0, proc.stderr
    stats = EbpfStats()
    events = list(parse_log(log, "install", stats=stats))
    assert stats.lost == 0
    assert sum(1 for e in events if e.path == "/etc/shadow" and e.syscall == "access") == 20000
    assert woken < 400, woken
