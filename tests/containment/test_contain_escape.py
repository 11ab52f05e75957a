"""Escaping the sandbox: each attempt is denied, and each is recorded in events.jsonl.

Escape syscalls are trapped by the seccomp filter (SIGSYS, which strace logs with the syscall
name), so each runs in its own child process: the trap kills the child, the package goes on.
Path-based attempts (/proc/1/root, /sys, /proc/sys) fail as opens and are recorded as such.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from containment_helpers import failed_paths, py_wheel, record, run_analysis, sigsys_syscalls

from osptrack.sandbox.bwrap import SECCOMP_TRAP

pytestmark = pytest.mark.sandbox

# x86_64 syscall numbers, called raw through libc's syscall() so no wrapper can soften them.
ATTEMPTS = {
    "ptrace": "101, 0, 0, 0, 0",  # PTRACE_TRACEME
    "mount": "165, b'none', b'/tmp', b'tmpfs', 0, 0",
    "unshare": "272, 0x10000000 | 0x00020000",  # CLONE_NEWUSER | CLONE_NEWNS
    "setns": "308, os.open('/proc/self/ns/net', os.O_RDONLY), 0",
    "bpf": "321, 5, 0, 0",  # BPF_PROG_LOAD
    "keyctl": "250, 1, 0",  # KEYCTL_JOIN_SESSION_KEYRING
    "init_module": "175, 0, 0, b''",
    "finit_module": "313, os.open('/dev/null', os.O_RDONLY), b'', 0",
    "process_vm_readv": "310, 1, 0, 0, 0, 0, 0",
    "kexec_load": "246, 0, 0, 0, 0",
    "open_by_handle_at": "304, -100, 0, 0",
    "pivot_root": "155, b'/tmp', b'/tmp'",
}
RAW_SOCKETS = {
    "packet": (socket.AF_PACKET, socket.SOCK_RAW, 0),
    "raw_icmp": (socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP),
    "raw_ipv6": (socket.AF_INET6, socket.SOCK_RAW, 255),
}
# The x32 ABI (syscall number | 0x40000000) must not be a way around an x86_64-only filter:
# libseccomp kills it as a foreign architecture (strace records `+++ killed by SIGSYS +++`).
X32_ATTEMPTS = {
    "x32_unshare": 0x40000000 | 272,
    "x32_ptrace": 0x40000000 | 521,
    "x32_mount": 0x40000000 | 165,
}
PATH_ATTEMPTS = {
    "/proc/1/root/etc/shadow": "r",
    "/proc/1/root/work": "r",
    "/sys/kernel/mm/transparent_hugepage/enabled": "w",
    "/sys/fs/cgroup/cgroup.procs": "w",
    "/proc/sys/kernel/core_pattern": "w",
    "/proc/sysrq-trigger": "w",
}


def _package_code() -> str:
    lines = [
        "import ctypes, os, socket, subprocess, sys",
        "def child(code):",
        "    p = subprocess.run([sys.executable, '-c', code])",
        "    print('CHILD', p.returncode, flush=True)",
    ]
    for name, args in ATTEMPTS.items():
        code = f"import ctypes, os; print('{name}', ctypes.CDLL(None).syscall({args}))"
        lines.append(f"child({code!r})")
    for name, nr in X32_ATTEMPTS.items():
        code = f"import ctypes; print('{name}', ctypes.CDLL(None).syscall({nr}, 0, 0, 0, 0, 0))"
        lines.append(f"child({code!r})")
    for name, (family, kind, proto) in RAW_SOCKETS.items():
        code = f"import socket; socket.socket({int(family)}, {int(kind)}, {proto}); print('{name} opened')"
        lines.append(f"child({code!r})")
    for path, mode in PATH_ATTEMPTS.items():
        lines.append(
            f"try:\n    open({path!r}, {mode!r}).close()\n    print('PATH OK', {path!r})\n"
            f"except OSError as exc:\n    print('PATH ERR', {path!r}, exc.errno)"
        )
    return "\n".join(lines) + "\n"


def test_escape_attempts_are_denied_and_recorded(tmp_path: Path) -> None:
    res = run_analysis(py_wheel(tmp_path, "contain-escape", _package_code()), tmp_path / "out")
    out = res.stdout("import")
    assert res.statuses["import"] == "completed", out
    # Denied: no child got past its syscall (each was killed by SIGSYS: returncode -31).
    children = [int(line.split()[1]) for line in out.splitlines() if line.startswith("CHILD ")]
    assert children == [-31] * (len(ATTEMPTS) + len(X32_ATTEMPTS) + len(RAW_SOCKETS)), out
    assert "PATH OK" not in out
    # Recorded: strace logged a SIGSYS naming each syscall, and each path as a failed open.
    events = [e for e in res.events if e["phase"] == "import"]
    trapped = sigsys_syscalls(events)
    assert set(ATTEMPTS) <= trapped, f"denied but not recorded: {set(ATTEMPTS) - trapped}"
    assert "socket" in trapped
    assert set(ATTEMPTS) <= set(SECCOMP_TRAP)
    killed = [
        e for e in events if e["kind"] == "process" and e["op"] == "exit" and e.get("signal") == "SIGSYS"
    ]
    assert len(killed) >= len(ATTEMPTS) + len(X32_ATTEMPTS) + len(RAW_SOCKETS)
    failed = failed_paths(events)
    assert [p for p in PATH_ATTEMPTS if p not in failed] == []
    record("escape", syscalls_trapped=len(trapped), x32=len(X32_ATTEMPTS), raw_sockets=len(RAW_SOCKETS),
           paths=len(PATH_ATTEMPTS))  # fmt: skip


def test_netlink_and_ordinary_sockets_still_work(tmp_path: Path) -> None:
    """The raw-socket trap must not catch what every resolver and client opens."""
    code = (
        "import socket\n"
        "socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0).close()\n"
        "socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()\n"
        "socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).close()\n"
        "socket.getaddrinfo('localhost', 80)\n"
        "print('SOCKETS OK')\n"
    )
    res = run_analysis(py_wheel(tmp_path, "contain-sockets-ok", code), tmp_path / "out")
    assert res.statuses["import"] == "completed"
    assert "SOCKETS OK" in res.stdout("import")
    assert sigsys_syscalls(res.events) == set()
