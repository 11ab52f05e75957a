"""The eBPF log reader's fast path gives exactly the events and counters of the reader before it.

`tests/ebpf_log_reference.py` is that reader, frozen: generated record streams (every record
kind, ties in time, cut logs, interrupted calls, retries, unknown syscalls) and logs the real
loader records must decode to equal Event lists and equal stats under both.
"""

from __future__ import annotations

import dataclasses
import struct
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ebpf_log_reference as reference
from osptrack.trace.ebpf import log as fast
from osptrack.trace.tracers import get

PY = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else "python3"
needs_ebpf = pytest.mark.skipif(
    not get("ebpf").available()[0], reason=f"eBPF tracer unavailable: {get('ebpf').available()[1]}"
)

_HDR = struct.Struct("<IBBHIIQII")
AT_FDCWD = (1 << 64) - 100


def _both(log: Path) -> tuple[list[object], dict[str, object], list[object], dict[str, object]]:
    s_ref, s_fast = reference.EbpfStats(), fast.EbpfStats()
    ev_ref: list[object] = []
    ev_fast: list[object] = []
    err_ref = err_fast = None
    try:
        ev_ref = list(reference.parse_log(log, "install", stats=s_ref))
    except (ValueError, struct.error) as exc:
        err_ref = type(exc)
    try:
        ev_fast = list(fast.parse_log(log, "install", stats=s_fast))
    except (ValueError, struct.error) as exc:
        err_fast = type(exc)
    assert err_ref == err_fast
    return ev_ref, dataclasses.asdict(s_ref), ev_fast, dataclasses.asdict(s_fast)


def assert_same(log: Path) -> int:
    ev_ref, s_ref, ev_fast, s_fast = _both(log)
    assert ev_fast == ev_ref
    assert s_fast == s_ref
    return len(ev_fast)


# ---------------------------------------------------------------- generated logs


def _rec(rtype: int, body: bytes, tid: int, nr: int = 0, flags: int = 0, ts: int = 0) -> bytes:
    return _HDR.pack(_HDR.size + len(body), rtype, flags, nr, tid, tid if tid < 103 else 100, ts, 1, 0) + body


BASES = [b"", b"u\0home\0", b"d\0tmp\0", b"etc\0", b"root\0", b"ssh\0etc\0", b"x\0" * 3]
PATHS = [
    b"\0", b"/etc/passwd\0", b"/etc/shadow\0", b"shadow\0", b"rel/f\0", b"../etc/shadow\0",
    b"/root/.ssh/id_rsa\0", b".ssh/id_rsa\0", b"/usr/./lib//x\0", b"//etc/shadow\0", b"a\0trailing\0",
    b"/home/u/.aws/credentials\0", "/tmp/caf\u00e9\0".encode(), b"/bad/\xff\xfe\0", b"\"q\\\0",
    b"/" + b"p" * 300 + b"\0",
]  # fmt: skip
STRINGS = [b"", b"sh\0-c\0id\0", b"\xff\0x\0", b"A=1\0B=2\0", b"\xff\0"]
SOCKADDRS = [
    b"", b"\x02\x00\x00\x35\x7f\x00\x00\x01" + b"\0" * 8,
    b"\x0a\x00\x01\xbb" + b"\0" * 4 + b"\0" * 15 + b"\x01" + b"\0" * 4,
    b"\x01\x00/run/sock\0", b"\x01\x00\0abstract\0", b"\x01\x00", b"\x11\x00",
]  # fmt: skip
NRS = [*fast.SYSCALLS, 999]
RETS = [0, 1, 3, 2, -1, -2, -13, -512, -514, -516, -4095, -4096, 1 << 40]
ARGS = [0, 1, 2, 0o101, 0o1000, 0o2000, 0o200000, 0o10000000, 0x200, 9, AT_FDCWD, (1 << 64) - 1, 2**31]
TIDS = [100, 101, 102, 103]

_tid = st.sampled_from(TIDS)
_ts = st.integers(0, 40) | st.integers(0, 2**40)
_enter = st.builds(
    lambda nr, tid, flags, args, base0, path0, base1, path1, s4, s5, ts: _rec(
        2,
        struct.pack("<6Q6HI", *args, len(base0), len(path0), len(base1), len(path1), len(s4), len(s5), 0)
        + base0
        + path0
        + base1
        + path1
        + s4
        + s5,
        tid,
        nr,
        flags,
        ts,
    ),  # fmt: skip
    st.sampled_from(NRS),
    _tid,
    st.integers(0, 31),
    st.tuples(*[st.sampled_from(ARGS)] * 6),
    st.sampled_from(BASES),
    st.sampled_from(PATHS),
    st.sampled_from(BASES),
    st.sampled_from(PATHS),
    st.sampled_from(STRINGS + SOCKADDRS),
    st.sampled_from(STRINGS),
    _ts,
)
_exit = st.builds(
    lambda nr, tid, ret, mode, fam, port, sotype, addr, ts: _rec(
        3, struct.pack("<qIHHHH16s", ret, mode, fam, port, sotype, 0, addr), tid, nr, 0, ts
    ),
    st.sampled_from(NRS),
    _tid,
    st.sampled_from(RETS),
    st.sampled_from([0, 0o100644, 0o010600, 0o140777, 0o020666, 0o060600, 0o040755]),
    st.sampled_from([0, 1, 2, 10]),
    st.integers(0, 65535),
    st.sampled_from([0, 1, 2]),
    st.sampled_from([b"\0" * 16, b"\x7f\0\0\x01" + b"\0" * 12, b"\0" * 15 + b"\x01"]),
    _ts,
)
_retry = st.builds(
    lambda tid, p0, p1: _rec(
        8, struct.pack("<6Q6HI", *([0] * 6), 0, len(p0), 0, len(p1), 0, 0, 0) + p0 + p1, tid
    ),
    _tid,
    st.sampled_from(PATHS),
    st.sampled_from([b"", *PATHS]),
)
_argv = st.builds(
    lambda tid, flags, path, argv: _rec(
        9, struct.pack("<IIII", len(path), len(argv), 2, 0) + path + argv, tid, 0, flags
    ),
    _tid,
    st.sampled_from([0, 1, 8, 16, 17]),
    st.sampled_from([b"", b"/bin/sh\0", b"/usr/bin/env\0"]),
    st.sampled_from([b"", b"sh\0-c\0id\0", b"/bin/sh\0./s\0one\0", b"x\0" * 300]),
)
_fork = st.builds(
    lambda tid, child, ns, ts: _rec(
        4, struct.pack("<IIII", child, child if child != 103 else 100, ns, 0), tid, 0, 0, ts
    ),
    _tid,
    _tid,
    st.integers(1, 5),
    _ts,
)
_task_exit = st.builds(
    lambda tid, code, ts: _rec(5, struct.pack("<iB3x", code, 1), tid, 0, 0, ts),
    _tid,
    st.sampled_from([0, 3 << 8, 9, 11 | 0x80, 31]),
    _ts,
)
_signal = st.builds(
    lambda tid, sig, nr, arch, ts: _rec(6, struct.pack("<iiiI", sig, 1, nr, arch), tid, 0, 0, ts),
    _tid,
    st.sampled_from([4, 6, 11, 31, 40]),
    st.sampled_from([-1, 101, 165, 999]),
    st.sampled_from([0xC000003E, 0x40000003]),
    _ts,
)
_other = st.sampled_from([_rec(7, struct.pack("<Q", 5), 100), _rec(42, b"", 100)])
_record = st.one_of(_enter, _exit, _enter, _exit, _retry, _argv, _fork, _task_exit, _signal, _other)


def _header(magic: int = fast.LOG_MAGIC) -> bytes:
    return _rec(1, struct.pack("<QqII", magic, 1_700_000_000_123_456_789, 100, 0), 100)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=st.lists(_record, max_size=60), cut=st.integers(0, 40))
def test_generated_logs_decode_alike(tmp_path: Path, records: list[bytes], cut: int):
    data = _header() + b"".join(records)
    log = tmp_path / "g.ebpf"
    log.write_bytes(data[: len(data) - cut] if cut < 20 else data)
    assert_same(log)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    records=st.lists(_record, max_size=60),
    cut=st.integers(0, 40),
    splits=st.lists(st.integers(0, 1 << 14), max_size=12),
)
def test_generated_logs_decode_alike_handed_over_in_pieces(
    tmp_path: Path, records: list[bytes], cut: int, splits: list[int]
):
    # The follower hands a growing log over as the tracer appends it (osptrack.trace.follow):
    # a record cut between two pieces anywhere (in its header, its body, or not at all; a
    # piece may be empty or hold many records) decodes as the whole file does under the reference.
    data = _header() + b"".join(records)
    data = data[: len(data) - cut] if cut < 20 else data
    points = sorted({p % (len(data) + 1) for p in splits})
    pieces = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    assert b"".join(pieces) == data
    log = tmp_path / "p.ebpf"
    log.write_bytes(data)
    s_ref, s_fast = reference.EbpfStats(), fast.EbpfStats()
    err_ref = err_fast = None
    ev_ref: list[object] = []
    ev_fast: list[object] = []
    try:
        ev_ref = list(reference.parse_log(log, "install", stats=s_ref))
    except (ValueError, struct.error) as exc:
        err_ref = type(exc)
    try:
        ev_fast = list(fast.EbpfLogReader("install", s_fast).read_chunks(pieces))
    except (ValueError, struct.error) as exc:
        err_fast = type(exc)
    assert err_fast == err_ref
    assert ev_fast == ev_ref
    assert dataclasses.asdict(s_fast) == dataclasses.asdict(s_ref)


@pytest.mark.parametrize("cache_max", [1 << 16, 2])
def test_every_path_decodes_alike_however_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache_max: int
):
    # Decoded paths are cached by their bytes; the same bytes with and without F_NOBASE, under
    # each call kind, and a cache emptied when full (memory stays flat) change nothing.
    monkeypatch.setattr(fast, "_PATH_CACHE_MAX", cache_max)
    records, ts = [], 0
    for _ in range(2):
        for flags in (0, fast.F_NOBASE, fast.F_TRUNCATED):
            for nr in (257, 262, 83, 82, 88, 59):  # openat, newfstatat, mkdir, rename, symlink, execve
                for base in BASES:
                    for path in PATHS:
                        ts += 1
                        body = struct.pack("<6Q6HI", AT_FDCWD, 0, 0o101, 0, 0, 0, len(base), len(path), len(base), len(path), len(path), 0, 0)  # fmt: skip
                        records.append(_rec(2, body + base + path + base + path + path, 100, nr, flags, ts))
                        records.append(_rec(3, struct.pack("<qIHHHH16s", -2 if ts % 3 else 0, 0, 0, 0, 0, 0, b""), 100, nr, 0, ts))  # fmt: skip
    log = tmp_path / "c.ebpf"
    log.write_bytes(_header() + b"".join(records))
    assert assert_same(log) > len(BASES) * len(PATHS) * 6


def test_another_format_is_refused_by_both(tmp_path: Path):
    log = tmp_path / "m.ebpf"
    log.write_bytes(_header(0x1234))
    with pytest.raises(ValueError, match="not an osptrack-ebpf log"):
        list(fast.parse_log(log, "install"))


# ---------------------------------------------------------------- logs the loader records

SCRIPT = (
    "cat /etc/hostname > /dev/null; stat /etc/shadow /etc/passwd >/dev/null 2>&1; "
    'cd /etc && stat shadow ./sudoers ../etc/gshadow >/dev/null 2>&1; cd "$D"; '
    'mkdir -p "$D/a/b" "$D/.ssh"; echo x > "$D/a/f"; mv "$D/a/f" "$D/a/g"; ln -s g "$D/a/l"; '
    'chmod 600 "$D/a/g"; readlink "$D/a/l" >/dev/null; ls -l "$D/.ssh" "$D/a" >/dev/null; '
    'rm -r "$D/a"; test -e "$HOME/.aws/credentials"; cat /nonexistent 2>/dev/null; '
    "/nonexistent/prog 2>/dev/null; "
    f'{PY} -c \'import os, socket; os.listdir("/usr/lib"); [os.stat(p) for p in ("/", "/usr", "/etc/hosts")]; '
    's=socket.socket(); s.settimeout(0.2); s.connect_ex(("127.0.0.1", 9)); '
    'u=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.sendto(b"x", ("127.0.0.1", 9)); '
    'l=socket.socket(); l.bind(("127.0.0.1", 0)); l.listen()\'; '
    "sh -c 'kill -9 $$'; exit 3"
)


@needs_ebpf
def test_a_recorded_log_decodes_alike(tmp_path: Path):
    work = tmp_path / "w"
    work.mkdir()
    log = tmp_path / "t.ebpf"
    argv = [*get("ebpf").command(log, user=None), "/bin/sh", "-c", SCRIPT]
    proc = subprocess.run(argv, env={"D": str(work), "PATH": "/usr/bin:/bin", "HOME": str(work)}, capture_output=True, timeout=120)  # fmt: skip
    assert proc.returncode == 3, proc.stderr
    stats = fast.EbpfStats()
    events = list(fast.parse_log(log, "install", stats=stats))
    ops = {(e.kind, e.op) for e in events}
    assert {("file", "stat"), ("file", "mkdir"), ("file", "rename"), ("process", "exec"), ("network", "listen")} <= ops  # fmt: skip
    assert {e.path for e in events if e.op == "stat"} >= {"/etc/shadow", "/etc/sudoers", "/etc/gshadow"}
    assert stats.lost == 0
    assert assert_same(log) == len(events)
