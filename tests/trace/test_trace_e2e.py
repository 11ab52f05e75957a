"""Real strace, with our command line, on a small harmless script; the parser must see it all.

No sandbox here: the script only touches its own tmp_path, reads /etc/hostname and tries a
connect to 127.0.0.1:9 (discard port, normally closed) with a short timeout.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from osptrack.trace.aggregate import phase_record
from osptrack.trace.strace import TRACED_SYSCALLS, ParseStats, parse_log, strace_command

pytestmark = pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")

PY = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else "python3"


def test_strace_command_runs_and_parser_sees_files_execs_sockets_and_tree(tmp_path: Path):
    work = tmp_path / "w"
    work.mkdir()
    log = tmp_path / "trace.log"
    script = (
        "cat /etc/hostname > /dev/null; "
        'echo x > "$D/f"; mv "$D/f" "$D/g"; rm "$D/g"; '
        'cd "$D" && echo y > rel; '
        "cat /nonexistent-osptrack 2>/dev/null; "
        f"{PY} -c 'import socket; s=socket.socket(); s.settimeout(0.2); s.connect_ex((\"127.0.0.1\", 9))'; "
        "exit 3"
    )
    argv = strace_command(log, string_limit=256) + ["/bin/sh", "-c", script]
    proc = subprocess.run(
        argv, env={"D": str(work), "PATH": "/usr/bin:/bin"}, capture_output=True, timeout=60
    )
    assert proc.returncode == 3, proc.stderr.decode(errors="replace")

    stats = ParseStats()
    events = list(parse_log(log, "install", stats=stats))
    assert stats.dropped == 0, stats.dropped_samples
    assert not stats.truncated and stats.events == len(events) > 20

    execs = [e for e in events if e.op == "exec" and e.ret == 0]
    root = execs[0]
    assert root.argv == ["/bin/sh", "-c", script] and root.ppid is None
    sh_pid = root.pid
    by_argv = {tuple(e.argv or ()): e for e in execs}
    cat = by_argv[("cat", "/etc/hostname")]
    assert cat.ppid == sh_pid and cat.exe and cat.exe.endswith("sh")  # the shell exec'd cat
    assert {e.op for e in events if e.pid == cat.pid} >= {"exec", "read", "exit"}

    reads = [e for e in events if e.op == "read" and e.path == "/etc/hostname" and e.errno is None]
    assert reads and reads[0].pid == cat.pid and reads[0].comm == "cat"

    f, g, rel = str(work / "f"), str(work / "g"), str(work / "rel")
    assert any(e.op == "write" and e.path == f for e in events)
    assert any(e.op == "rename" and e.path == f and e.path2 == g for e in events)
    assert any(e.op == "delete" and e.path == g for e in events)
    assert any(e.op == "write" and e.path == rel for e in events)  # relative, resolved by cwd
    failed = [e for e in events if e.path == "/nonexistent-osptrack"]
    assert failed and all(e.errno == "ENOENT" for e in failed)

    connects = [e for e in events if e.op == "connect" and e.family == "AF_INET"]
    assert [(c.address, c.port) for c in connects] == [("127.0.0.1", 9)]
    py = connects[0]
    assert py.ppid == sh_pid and py.comm and py.comm.startswith("python3")
    clones = {e.child_pid for e in events if e.op == "clone" and e.pid == sh_pid}
    assert {cat.pid, py.pid} <= clones

    exits = {e.pid: e.exit_code for e in events if e.op == "exit"}
    assert exits[sh_pid] == 3 and exits[cat.pid] == 0

    ts = [e.t for e in events]
    assert ts == sorted(ts)

    rec = phase_record(events, proc.stdout, proc.stderr, "completed", [])
    files = {x["Path"]: x for x in rec["Files"]}
    assert files["/etc/hostname"]["Read"] and not files["/etc/hostname"]["Write"]
    assert files[g]["Delete"] and files[f]["Write"] and files[f]["Delete"]
    assert "/nonexistent-osptrack" not in files
    assert {"Address": "127.0.0.1", "Port": 9, "Hostnames": []} in rec["Sockets"]
    assert ["cat", "/etc/hostname"] in [c["Command"] for c in rec["Commands"]]


def _bwrap_argv(work: Path, script: str) -> list[str]:
    argv = ["bwrap", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--die-with-parent"]
    argv += ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "lib", "lib64", "sbin"):
        if Path("/" + name).is_symlink():
            argv += ["--symlink", f"usr/{name}", f"/{name}"]
    argv += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--bind", str(work), "/work"]
    return argv + ["--chdir", "/work", "/bin/sh", "-c", script]


@pytest.mark.sandbox
@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")
def test_inside_a_pid_namespace_tree_uses_host_pids_and_sandbox_paths(tmp_path: Path):
    work = tmp_path / "w"
    work.mkdir()
    probe = subprocess.run(_bwrap_argv(work, "true"), capture_output=True, timeout=30)
    if probe.returncode != 0:
        pytest.fail(
            f"bwrap cannot create namespaces here (scripts/setup.sh; run as root): {probe.stderr.decode(errors='replace')}"
        )
    log = tmp_path / "trace.log"
    script = "echo hi > out; cat out > /dev/null; cd /tmp && echo t > rel"
    proc = subprocess.run(strace_command(log) + _bwrap_argv(work, script), capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")

    stats = ParseStats()
    events = list(parse_log(log, "install", stats=stats))
    assert stats.dropped == 0, stats.dropped_samples
    sh = next(e for e in events if e.op == "exec" and e.ret == 0 and e.argv == ["/bin/sh", "-c", script])
    cat = next(e for e in events if e.op == "exec" and e.ret == 0 and e.argv == ["cat", "out"])
    assert cat.ppid == sh.pid
    # clone returned the namespace pid; child_pid is the host pid that the log's lines carry
    clone = next(e for e in events if e.op == "clone" and e.pid == sh.pid and e.child_pid == cat.pid)
    assert clone.ret != cat.pid and cat.pid > 100
    assert any(e.op == "write" and e.path == "/work/out" and e.pid == sh.pid for e in events)
    assert any(e.op == "write" and e.path == "/tmp/rel" for e in events)

    rec = phase_record(events, b"", b"", "completed", [])
    files = {f["Path"] for f in rec["Files"]}
    assert "/work/out" in files and "/tmp/rel" in files
    assert not any(p.startswith("/newroot") for p in files)  # bwrap's own setup is not the package
    assert ["bwrap"] not in [c["Command"][:1] for c in rec["Commands"]]


@pytest.mark.sandbox
@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")
def test_tree_without_pid_translation_matches_stracesown_translation(tmp_path: Path):
    """One real log, written with --pidns-translation on top of our flags: parsed as it is, the
    tree is exact; with the translations stripped (what strace_command now writes), the parser's
    own pairing must give the same pid, ppid and child_pid on every event. The workload makes
    the pairing hard: shells forking at once, subshells that never exec, threads."""
    work = tmp_path / "w"
    work.mkdir()
    py = "import threading; ts=[threading.Thread(target=lambda: open('/dev/null').close()) for _ in range(4)]; [t.start() for t in ts]; [t.join() for t in ts]"
    loop = "for i in 1 2 3 4 5 6 7 8; do ( : > /tmp/$1$i ) & /bin/true & done; wait"
    bomb = "b() { [ $1 -gt 0 ] && { b $(($1-1)) & b $(($1-1)) & wait; }; }; b 5"  # 63 subshells at once
    script = f"for s in a b c d; do sh -c '{loop}' sh $s & done; {PY} -c \"{py}\" & bash -c '{bomb}' & wait"
    log = tmp_path / "trace.log"
    argv = strace_command(log)
    argv.insert(argv.index("--seccomp-bpf") + 1, "--pidns-translation")
    proc = subprocess.run(argv + _bwrap_argv(work, script), capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    lines = log.read_text(encoding="latin-1").splitlines()
    assert any("in strace's PID NS" in ln for ln in lines)
    stripped = [re.sub(r" /\* -?\d+ in strace's PID NS \*/", "", ln) for ln in lines]

    exact_stats, stats = ParseStats(), ParseStats()
    exact = list(parse_log(lines, "install", stats=exact_stats))
    ours = list(parse_log(stripped, "install", stats=stats))
    assert stats.dropped == exact_stats.dropped <= 2  # strace's odd `???(` line of a dying thread
    assert len(exact) == len(ours) > 100

    def tree(events):
        return [(e.pid, e.ppid, e.child_pid, e.op, e.path) for e in events]

    assert sorted(tree(ours), key=str) == sorted(tree(exact), key=str)
    clones = [e for e in ours if e.op == "clone" and e.ret]
    assert len(clones) >= 4 * 16 + 4 + 62 and all(e.child_pid for e in clones)


def test_seccomp_bpf_still_follows_grandchildren_and_records_errno(tmp_path: Path):
    """--seccomp-bpf stops the tracee only at traced syscalls; with -f it must still follow a
    grandchild's fork and exec (the filter is inherited, strace attaches to each new child),
    record a failed exec's and a failed open's errno, and print only the traced calls."""
    log = tmp_path / "trace.log"
    argv = strace_command(log, string_limit=256)
    assert "--seccomp-bpf" in argv and "-f" in argv
    script = (
        "/bin/sh -c '/nonexistent-osptrack-bin; cat /nonexistent-osptrack-file; exit 0' 2>/dev/null; exit 0"
    )
    proc = subprocess.run(
        [*argv, "/bin/sh", "-c", script], env={"PATH": "/usr/bin:/bin"}, capture_output=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")

    stats = ParseStats()
    events = list(parse_log(log, "install", stats=stats))
    assert stats.dropped == 0, stats.dropped_samples
    root = next(e for e in events if e.op == "exec" and e.ret == 0)
    inner = next(
        e
        for e in events
        if e.op == "exec" and e.ret == 0 and e.argv and e.argv[0] == "/bin/sh" and e.pid != root.pid
    )
    assert inner.ppid == root.pid
    cat = next(
        e for e in events if e.op == "exec" and e.ret == 0 and e.argv == ["cat", "/nonexistent-osptrack-file"]
    )
    assert cat.ppid == inner.pid  # the grandchild, followed through its parent's fork
    failed_exec = [
        e for e in events if e.op == "exec" and e.path and e.path.endswith("/nonexistent-osptrack-bin")
    ]
    assert failed_exec and all(e.errno == "ENOENT" for e in failed_exec)
    assert all(e.ppid == inner.pid for e in failed_exec)
    failed_open = [e for e in events if e.path == "/nonexistent-osptrack-file" and e.kind == "file"]
    assert failed_open and failed_open[0].errno == "ENOENT" and failed_open[0].pid == cat.pid
    traced = set(TRACED_SYSCALLS)
    names = {
        m.group(1) for m in re.finditer(r"^\d+ +[\d.]+ (\w+)\(", log.read_text(encoding="latin-1"), re.M)
    }
    assert names and names <= traced, names - traced


def test_strace_stamps_lines_without_a_localtime_stat_each_and_the_command_sees_no_tz(tmp_path: Path):
    """glibc's localtime() with TZ unset stats /etc/localtime on every call, and strace stamps
    every line with it: strace_command pins strace's TZ, and the traced command does not get it."""
    log, outer = tmp_path / "trace.log", tmp_path / "strace-of-strace.log"
    code = "import os\nfor i in range(200): os.stat('/')\nprint(os.environ.get('TZ'))"
    argv = ["strace", "-e", "trace=newfstatat,stat", "-o", str(outer), *strace_command(log), PY, "-c", code]
    proc = subprocess.run(argv, env={"PATH": "/usr/bin:/bin"}, capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert proc.stdout.decode().strip() == "None"  # the traced command's environment has no TZ
    lines = sum(1 for _ in log.open(encoding="latin-1"))
    assert lines >= 200
    localtime = sum('"/etc/localtime"' in line for line in outer.open(encoding="latin-1"))
    assert localtime <= 4, f"{localtime} stats of /etc/localtime by strace for {lines} lines"
