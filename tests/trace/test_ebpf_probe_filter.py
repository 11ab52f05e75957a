"""The kernel side drops probes no event is made of (record.h SENSITIVE_DOT3), and only those.

A stat/access/readlink becomes an event only for a sensitive path; most of a runtime's
probes (node's module resolution, npm's cache) are of other paths, and were recorded twice
(entry, exit) only for the reader to drop them. The tracer now drops a probe of an empty path
or of an absolute, plainly written path outside /etc and the homes' sensitive dot-entries.
"""

from __future__ import annotations

import posixpath
import re
import struct
import subprocess
from pathlib import Path

import pytest

from osptrack.trace.ebpf import HERE
from osptrack.trace.ebpf.log import EbpfStats, parse_log
from osptrack.trace.sensitive import SENSITIVE_PATHS, category
from osptrack.trace.tracers import get

PY = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else "python3"
needs_ebpf = pytest.mark.skipif(
    not get("ebpf").available()[0], reason=f"eBPF tracer unavailable: {get('ebpf').available()[1]}"
)


def _dot3() -> set[str]:
    text = (HERE / "record.h").read_text()
    line = re.search(r"#define SENSITIVE_DOT3 (.*)", text)
    assert line is not None
    return set(re.findall(r'"([^"]{3})"', line.group(1)))


def test_the_kernel_list_covers_every_sensitive_path():
    # A path added to SENSITIVE_PATHS that the kernel's filter does not keep would never be seen.
    dot3 = _dot3()
    for _, path in SENSITIVE_PATHS:
        if path.startswith("~/."):
            assert path[3:6] in dot3, f"{path}: add {path[3:6]!r} to record.h's SENSITIVE_DOT3"
        else:
            assert path.startswith("/etc/"), f"{path}: the kernel keeps only /etc and homes' dot-entries"


PATHS = [
    "/etc/shadow", "/etc/passwd", "/root/.ssh/id_rsa", "/root/.npm/x", "/home/u/.aws/credentials",
    "/home/u/.npm/_cacache", "/home/u/project/x", "/usr/../etc/shadow", "//etc/shadow", "/usr/./lib",
    "/home/u/./.ssh", "/root/.bash_history", "/root/.env", "/root/.en", "/home/u/.config/gh/hosts.yml",
    "/home/.ssh", "/home/u", "/root", "/etcx/shadow", "/tmp", "/home/u/.ssh/", "/home//u/.ssh",
    "/usr/lib/node_modules/npm/package.json", "/home/u/.gnupg", "/root/.sshx", "/home/u/.docker/config.json",
]  # fmt: skip
DROPPED = [
    "/home/u/.npm/_cacache",
    "/home/u/project/x",
    "/usr/lib/node_modules/npm/package.json",
    "/etcx/shadow",
]
PROGRAM = f"""
import os
for p in {PATHS!r}:
    for f in (os.stat, os.lstat, lambda p: os.access(p, 0), os.readlink):
        try:
            f(p)
        except OSError:
            pass
os.chdir("/etc")
for p in ("shadow", "./sudoers", "../etc/gshadow", "passwd"):
    try:
        os.stat(p)
    except OSError:
        pass
fd = os.open("/etc", os.O_RDONLY)
os.stat(fd)  # AT_EMPTY_PATH
try:
    os.stat("shadow", dir_fd=fd)
except OSError:
    pass
"""
_HDR = struct.Struct("<IBBHIIQII")
_ENTER = struct.Struct("<6Q6HI")
PROBE_NRS = {4, 6, 262, 332, 21, 269, 439, 89, 267}


def _probe_strings(log: Path) -> list[bytes]:
    """The path strings of the probe entry records in a log."""
    data, pos, out = log.read_bytes(), 0, []
    while pos + _HDR.size <= len(data):
        size, rtype, _, nr, *_ = _HDR.unpack_from(data, pos)
        if rtype == 2 and nr in PROBE_NRS:
            lens = _ENTER.unpack_from(data, pos + _HDR.size)[6:12]
            start = pos + _HDR.size + _ENTER.size + lens[0]
            out.append(data[start : start + lens[1]].split(b"\0", 1)[0])
        pos += size
    return out


@needs_ebpf
def test_probes_of_sensitive_paths_are_all_seen_and_plain_others_not_recorded(tmp_path: Path):
    prog = tmp_path / "p.py"
    prog.write_text(PROGRAM)
    log = tmp_path / "t.ebpf"
    argv = [*get("ebpf").command(log, user=None), PY, str(prog)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    stats = EbpfStats()
    probes = [e for e in parse_log(log, "install", stats=stats) if e.op in ("stat", "access", "readlink")]
    assert stats.lost == 0
    # What the reader makes of each probe the program made (the old tracer recorded all of them).
    expected = {posixpath.normpath(p) if not p.startswith("//") else p for p in PATHS}
    expected |= {"/etc/shadow", "/etc/sudoers", "/etc/gshadow", "/etc/passwd"}
    wanted = {p for p in expected if category(p)}
    seen = {e.path for e in probes if e.syscall in ("stat", "newfstatat", "statx")}
    assert seen == wanted, (seen - wanted, wanted - seen)
    direct = {posixpath.normpath(p) if not p.startswith("//") else p for p in PATHS}
    assert {e.path for e in probes if e.op == "access"} == {p for p in direct if category(p)}
    assert all(e.probe == category(e.path or "") for e in probes)
    recorded = set(_probe_strings(log))
    assert not recorded & {p.encode() for p in DROPPED}, recorded
    assert b"" not in recorded  # AT_EMPTY_PATH
    # Kept although not sensitive: what lexical normalisation could make sensitive.
    assert {
        b"/usr/./lib",
        b"/home/u/./.ssh",
        b"/usr/../etc/shadow",
        b"/root/.sshx",
        b"/home//u/.ssh",
    } <= recorded
