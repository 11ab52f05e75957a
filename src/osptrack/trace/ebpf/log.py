"""Reads the eBPF tracer's binary log (record.h) into the same `Event`s as the strace parser.

The kernel side resolves what strace's `-yy` annotations give the strace parser: the base of
a relative path (cwd or dirfd), an fd's path (fchmod, ftruncate, fchdir), the type of the file
an open returned, a socket's type and a listening socket's address. Here the records of one
syscall (entry, exit) are paired by thread id, fork records give the process tree in host pids
and clone's namespace pid, and events come out in the order their calls started.
Differences from strace's events are listed in docs/formats.md ("Tracer backends").
"""

from __future__ import annotations

import errno as errno_mod
import functools
import ipaddress
import operator
import posixpath
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from msgspec.structs import replace

from osptrack.trace.common import ARG_CAP
from osptrack.trace.ebpf import HERE, LOG_MAGIC, EbpfStats
from osptrack.trace.events import KIND_FILE, KIND_NETWORK, KIND_PROCESS, Event
from osptrack.trace.sensitive import category as sensitive_category

(REC_HEADER, REC_ENTER, REC_EXIT, REC_FORK, REC_TASK_EXIT, REC_SIGNAL, REC_LOST, REC_RETRY, REC_ARGV) = range(1, 10)  # fmt: skip
F_TRUNCATED, F_NOBASE, F_RETRY, F_UNREADABLE, F_INTERP = 1, 2, 4, 8, 16
_UNREADABLE_MARK = b"\xff"  # record.h's UNREADABLE_MARK: a string the kernel could not read
# What an argv/env string unreadable at a failed execve's entry becomes (docs/formats.md).
UNREADABLE = "<unreadable>"
STR_MAX = 4096  # record.h: a string keeps at most STR_MAX - 1 bytes
ARGV_CAP = 256

_HDR = struct.Struct("<IBBHIIQII")  # size, type, flags, nr, tid, tgid, ts, slot, pad
_ENTER = struct.Struct("<6Q6HI")  # args, len[6], pad
_ARGV = struct.Struct("<IIII")  # flen, len, argc, pad
_EXIT = struct.Struct("<qIHHHH16s")  # ret, mode, family, port, sotype, pad, addr
_FORK = struct.Struct("<III")
_TASK_EXIT = struct.Struct("<iB")
_SIGNAL = struct.Struct("<iiiI")  # sig, si_code, syscall (SIGSYS), arch
_HEADER = struct.Struct("<QqI")
_LOST = struct.Struct("<Q")

# x86_64 syscall numbers of osptrack.trace.strace.TRACED_SYSCALLS (loader.c's table).
SYSCALLS = {
    2: "open", 257: "openat", 437: "openat2", 85: "creat", 87: "unlink", 263: "unlinkat",
    84: "rmdir", 82: "rename", 264: "renameat", 316: "renameat2", 83: "mkdir", 258: "mkdirat",
    90: "chmod", 91: "fchmod", 268: "fchmodat", 86: "link", 265: "linkat", 88: "symlink",
    266: "symlinkat", 76: "truncate", 77: "ftruncate", 59: "execve", 322: "execveat", 56: "clone",
    435: "clone3", 57: "fork", 58: "vfork", 62: "kill", 234: "tgkill", 200: "tkill", 80: "chdir",
    81: "fchdir", 42: "connect", 49: "bind", 50: "listen", 44: "sendto", 46: "sendmsg", 4: "stat",
    6: "lstat", 262: "newfstatat", 332: "statx", 21: "access", 269: "faccessat",
    439: "faccessat2", 89: "readlink", 267: "readlinkat",
}  # fmt: skip
_OPENS = frozenset({"open", "openat", "openat2", "creat"})
_FILE_OPS = {
    "unlink": "delete", "unlinkat": "delete", "rmdir": "delete", "rename": "rename",
    "renameat": "rename", "renameat2": "rename", "mkdir": "mkdir", "mkdirat": "mkdir",
    "chmod": "chmod", "fchmod": "chmod", "fchmodat": "chmod", "link": "link", "linkat": "link",
    "truncate": "truncate", "ftruncate": "truncate",
}  # fmt: skip
_PROBES = {
    "stat": "stat", "lstat": "stat", "newfstatat": "stat", "statx": "stat", "access": "access",
    "faccessat": "access", "faccessat2": "access", "readlink": "readlink", "readlinkat": "readlink",
}  # fmt: skip
_AT_PROBES = frozenset({"newfstatat", "statx", "faccessat", "faccessat2", "readlinkat"})  # a dirfd first
_TWO_PATHS = frozenset({"rename", "renameat", "renameat2", "link", "linkat"})
_CLONES = frozenset({"clone", "clone3", "fork", "vfork"})
# What one lookup of a call's number tells _finish: (name, class, op, form). Classes: a probe
# (op: its op; form: a dirfd first), an open (op: from its flags; form: where its flags are: an argument index,
# None for openat2, -1 for creat; a dirfd first for openat/openat2), a file operation (form:
# one path, two, an fd's path, unlinkat's), and the rest (_rare).
_PROBE, _OPEN, _FILE, _RARE = range(4)
_ONE_PATH, _TWO, _FD, _UNLINKAT = range(4)
_OPEN_FLAGS = {"open": 1, "openat": 2, "openat2": None, "creat": -1}


def _call_spec(name: str) -> tuple[str, int, str, Any]:
    if name in _PROBES:
        return name, _PROBE, _PROBES[name], name in _AT_PROBES
    if name in _OPENS:
        return name, _OPEN, "", _OPEN_FLAGS[name]
    if name in _FILE_OPS:
        form = (
            _FD if name in ("fchmod", "ftruncate") else _TWO if name in _TWO_PATHS
            else _UNLINKAT if name == "unlinkat" else _ONE_PATH
        )  # fmt: skip
        return name, _FILE, _FILE_OPS[name], form
    return name, _RARE, "", None


_CALLS = {nr: _call_spec(name) for nr, name in SYSCALLS.items()}
_SIGNALS = {4: "SIGILL", 6: "SIGABRT", 7: "SIGBUS", 11: "SIGSEGV", 24: "SIGXCPU", 25: "SIGXFSZ", 31: "SIGSYS"}
_SIGNAMES = {
    1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL", 5: "SIGTRAP", 6: "SIGABRT", 7: "SIGBUS",
    8: "SIGFPE", 9: "SIGKILL", 10: "SIGUSR1", 11: "SIGSEGV", 12: "SIGUSR2", 13: "SIGPIPE",
    14: "SIGALRM", 15: "SIGTERM", 16: "SIGSTKFLT", 17: "SIGCHLD", 18: "SIGCONT", 19: "SIGSTOP",
    20: "SIGTSTP", 21: "SIGTTIN", 22: "SIGTTOU", 23: "SIGURG", 24: "SIGXCPU", 25: "SIGXFSZ",
    26: "SIGVTALRM", 27: "SIGPROF", 28: "SIGWINCH", 29: "SIGIO", 30: "SIGPWR", 31: "SIGSYS",
}  # fmt: skip
AT_FDCWD = -100
# AT_FDCWD as a syscall argument (u64): sign-extended, or as the 32-bit int most callers pass
_AT_FDCWD_ARGS = frozenset({AT_FDCWD & 0xFFFFFFFFFFFFFFFF, AT_FDCWD & 0xFFFFFFFF})
AT_REMOVEDIR = 0x200
O_ACCMODE, O_CREAT, O_TRUNC, O_APPEND = 3, 0o100, 0o1000, 0o2000
O_DIRECTORY, O_PATH = 0o200000, 0o10000000
_S_IFMT = 0o170000
_FTYPES = {0o010000: "pipe", 0o140000: "socket", 0o020000: "chr", 0o060000: "blk", 0: "anon"}
SOCK_DGRAM = 2
_T = operator.attrgetter("t")
_PATH_CACHE_MAX = 1 << 16  # distinct (base, path) pairs kept decoded
# Kernel-internal codes a syscall exit shows when a signal interrupted it (strace's names).
_KERNEL_ERRNOS = {
    512: "ERESTARTSYS",
    513: "ERESTARTNOINTR",
    514: "ERESTARTNOHAND",
    516: "ERESTART_RESTARTBLOCK",
}


class _Proc:
    __slots__ = ("ppid", "exe", "comm")

    def __init__(self, ppid: int | None, exe: str | None) -> None:
        self.ppid = ppid
        self.exe = exe
        self.comm = posixpath.basename(exe) if exe else None


def _s(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "backslashreplace")


def _strings(raw: bytes) -> list[str]:
    items = raw.split(b"\0")
    if items and items[-1] == b"":
        items.pop()
    return [i.decode("utf-8", "backslashreplace") for i in items]


def _entry_strings(raw: bytes, flags: int) -> list[str]:
    """argv/env read at the execve entry; strings the kernel could not read become UNREADABLE."""
    if not flags & F_UNREADABLE:
        return _strings(raw)
    items = raw.split(b"\0")
    if items and items[-1] == b"":
        items.pop()
    return [UNREADABLE if i == _UNREADABLE_MARK else i.decode("utf-8", "backslashreplace") for i in items]


def _exec_argv(entry: list[str], flags: int, raw: bytes) -> tuple[list[str], bool]:
    """The argv the caller passed, from the new image's (REC_ARGV), with the entry's limits.

    An interpreter (#!, binfmt_misc) replaced argv[0] and put its own words first: then only
    the new image's last len(entry) - 1 strings are the caller's, and argv[0] stays the entry's.
    """
    items = raw.split(b"\0")
    if items and items[-1] == b"":
        items.pop()
    trunc = bool(flags & F_TRUNCATED)
    if len(items) > ARGV_CAP:
        items, trunc = items[:ARGV_CAP], True
    cut = [i[: STR_MAX - 1] for i in items]
    trunc = trunc or any(len(i) >= STR_MAX for i in items)
    argv = [i.decode("utf-8", "backslashreplace") for i in cut]
    if flags & F_INTERP:
        if trunc or not entry or len(entry) - 1 > len(argv):
            return entry, trunc
        argv = entry[:1] + (argv[len(argv) - len(entry) + 1 :] if len(entry) > 1 else [])
    return argv, trunc


def _base(raw: bytes) -> str:
    """Components leaf first (record.h) -> an absolute path."""
    parts = _strings(raw)
    return "/" + "/".join(reversed(parts)) if parts else "/"


def _join(base: str | None, path: str) -> str:
    if path.startswith("/"):
        return posixpath.normpath(path) if ("/." in path or "//" in path) else path
    if base is None:
        return path
    if not path:
        return base
    return posixpath.normpath(base.rstrip("/") + "/" + path)


def _quote(text: str) -> str:
    q = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return q if len(q) <= ARG_CAP else q[:ARG_CAP] + "..."


def _sockaddr(raw: bytes) -> tuple[str, str | None, int | None] | None:
    if len(raw) < 2:
        return None
    family = int.from_bytes(raw[:2], "little")
    if family == 2 and len(raw) >= 8:
        return "AF_INET", str(ipaddress.IPv4Address(raw[4:8])), int.from_bytes(raw[2:4], "big")
    if family == 10 and len(raw) >= 24:
        return "AF_INET6", str(ipaddress.IPv6Address(raw[8:24])), int.from_bytes(raw[2:4], "big")
    if family == 1:
        path = raw[2:]
        if not path:
            return "AF_UNIX", None, None
        if path[:1] == b"\0":  # abstract: strace prints it as @name
            name = path[1:].split(b"\0", 1)[0].decode("utf-8", "backslashreplace")
            return "AF_UNIX", "@" + name, None
        return "AF_UNIX", _s(path) or None, None
    return None


class EbpfLogReader:
    """Streams Events from one phase's log, in the order the calls started.

    Decoding is the host's share of tracing (a digest waits for it), so the hot part is lean:
    entry and exit records, all but a handful of a log's, are decoded inline in `_records` with
    precompiled structs; a call in flight is a list, not an object; a path's string, its join
    with the base and its quoted form are made once per distinct (base, path) bytes, and a
    probe of a path that cannot be sensitive is dropped before anything else is built.
    """

    def __init__(self, phase: str, stats: EbpfStats | None = None) -> None:
        self.phase = phase
        self.stats = stats if stats is not None else EbpfStats()
        self.boot_to_epoch = 0.0
        self.root: int | None = None
        self._procs: dict[int, _Proc] = {}
        # tid -> [t, nr, flags, args, blobs, exec_argv, exec_path] (exec_*: from REC_ARGV)
        self._inflight: dict[int, list[Any]] = {}
        self._forks: dict[int, tuple[int, int, int]] = {}  # parent tid -> (child tid, tgid, ns tid)
        self._nspid: dict[int, int] = {}  # namespace tid -> host tid (kill targets)
        self._tgid: dict[int, int] = {}
        self._paths: dict[object, tuple[str, str, str]] = {}  # see _path_of
        self._broken = False  # a record of impossible size was met: the log ends there

    def read(self, path: Path) -> Iterator[Event]:
        yield from self._decode(path.read_bytes())

    def read_chunks(self, chunks: Iterable[bytes]) -> Iterator[Event]:
        """The events of a log handed over in pieces (a growing log as its writer appends,
        osptrack.trace.follow): a record cut between two chunks is decoded once it is whole,
        so the events are those of the whole file read at once."""
        out: list[Event] = []
        rest = b""
        for chunk in chunks:
            if self._broken:
                continue  # drained all the same, so the writer's follower ends
            data = rest + chunk if rest else chunk
            rest = data[self._records(data, out) :]
        yield from self._end(out, cut=bool(rest))

    def _decode(self, data: bytes) -> list[Event]:
        out: list[Event] = []
        return self._end(out, cut=self._records(data, out) < len(data))

    def _records(self, data: bytes, out: list[Event]) -> int:
        """Decode the whole records of `data` into `out`; the offset after the last of them."""
        stats = self.stats
        append = out.append
        hdr, enter, exit_ = _HDR.unpack_from, _ENTER.unpack_from, _EXIT.unpack_from
        hsize, esize = _HDR.size, _ENTER.size
        inflight, tgids, finish, event = self._inflight, self._tgid, self._finish, self._event
        xsize = hsize + _EXIT.size  # a whole exit record
        boot = self.boot_to_epoch
        pos, n, records = 0, len(data), 0
        try:
            while pos + hsize <= n:
                size, rtype, flags, nr, tid, tgid, ts, _, _ = hdr(data, pos)
                end = pos + size
                if size < hsize:
                    stats.truncated = self._broken = True  # nothing after it can be read
                    break
                if end > n:
                    break  # cut: the rest is in the next chunk, or the log ends in it
                records += 1
                body = pos + hsize
                if rtype == REC_EXIT:
                    x = exit_(data, body)
                    ev = finish(tid, x[0], x)
                    if ev is not None:
                        append(ev)
                elif rtype == REC_ENTER:
                    a0, a1, a2, a3, a4, a5, l0, l1, l2, l3, l4, l5, _ = enter(data, body)
                    o0 = body + esize
                    o1 = o0 + l0
                    o2 = o1 + l1
                    if l2 or l3 or l4 or l5:
                        o3 = o2 + l2
                        o4 = o3 + l3
                        o5 = o4 + l4
                        blobs = [
                            data[o0:o1],
                            data[o1:o2],
                            data[o2:o3],
                            data[o3:o4],
                            data[o4:o5],
                            data[o5 : o5 + l5],
                        ]
                    else:  # one path and its base, as most calls have: no empty slices to make
                        blobs = [data[o0:o1], data[o1:o2], b"", b"", b"", b""]
                    tgids[tid] = tgid
                    if tid in inflight:  # an entry with no exit: the call was interrupted for good
                        ev = finish(tid, None, None)
                        if ev is not None:
                            append(ev)
                    t, args = ts / 1e9 + boot, (a0, a1, a2, a3, a4, a5)
                    # Nearly every call's exit is the next record: then the call is finished here,
                    # without a round trip through `inflight` and the loop
                    if end + xsize <= n:
                        nsize, ntype, _, _, ntid, _, _, _, _ = hdr(data, end)
                        if ntype == REC_EXIT and ntid == tid and nsize >= hsize and end + nsize <= n:
                            x = exit_(data, end + hsize)
                            ev = event(tid, t, nr, flags, args, blobs, None, None, x[0], x)
                            if ev is not None:
                                append(ev)
                            records += 1
                            pos = end + nsize
                            continue
                    inflight[tid] = [t, nr, flags, args, blobs, None, None]
                else:
                    out.extend(self._record(rtype, flags, tid, tgid, ts / 1e9 + boot, data, body))
                    boot = self.boot_to_epoch  # set by the header record
                pos = end
        finally:
            stats.records += records
        return pos

    def _end(self, out: list[Event], cut: bool) -> list[Event]:
        """`out` completed by the calls still in flight, in the order the calls started."""
        stats = self.stats
        if cut:
            stats.truncated = True  # the log ends inside a record
        for tid in list(self._inflight):  # calls that never returned (the log was cut)
            last = self._finish(tid, None, None)
            if last is not None:
                out.append(last)
        # Events are produced at each call's end; strace lists them where they started. The
        # sort is stable: calls that started at the same time stay in the order they ended.
        out.sort(key=_T)
        stats.events += len(out)
        return out

    # ------------------------------------------------------------ records

    def _record(
        self, rtype: int, flags: int, tid: int, tgid: int, t: float, data: bytes, body: int
    ) -> list[Event]:
        """Every record but REC_ENTER and REC_EXIT (which _records reads itself)."""
        if rtype == REC_RETRY:  # path arguments read again at exit (not paged in at entry)
            call = self._inflight.get(tid)
            if call is not None:
                lens = _ENTER.unpack_from(data, body)[6:12]
                off = body + _ENTER.size
                blobs = call[4]
                for i, length in enumerate(lens):
                    if length and i in (1, 3):
                        blobs[i] = data[off : off + length]
                    off += length
            return []
        if rtype == REC_ARGV:  # the exec succeeded: argv from the new image (always readable)
            flen, length, _, _ = _ARGV.unpack_from(data, body)
            call = self._inflight.get(tid)
            if call is not None:
                start = body + _ARGV.size
                if flen:
                    call[6] = data[start : start + flen]
                if length and not flags & F_UNREADABLE:
                    call[5] = (flags, data[start + flen : start + flen + length])
            return []
        if rtype == REC_FORK:
            child, ctgid, nstid = _FORK.unpack_from(data, body)
            parent = self._proc(tid)
            self._procs[child] = _Proc(tid, parent.exe)
            self._forks[tid] = (child, ctgid, nstid)
            self._nspid[nstid] = child
            self._tgid[child] = ctgid
            return []
        if rtype == REC_TASK_EXIT:
            code, _ = _TASK_EXIT.unpack_from(data, body)
            events = []
            if tid in self._inflight:
                self.stats.unfinished += 1
                ev = self._finish(tid, None, None)
                if ev is not None:
                    events.append(ev)
            proc = self._proc(tid)
            sig = code & 0x7F
            events.append(
                Event(
                    t=t, phase=self.phase, pid=tid, ppid=proc.ppid, exe=proc.exe, comm=proc.comm,
                    syscall="exit", kind=KIND_PROCESS, op="exit", ret=None, errno=None, args=[],
                    exit_code=None if sig else (code >> 8) & 0xFF,
                    signal=_SIGNAMES.get(sig, f"SIG{sig}") if sig else None,
                )
            )  # fmt: skip
            del self._procs[tid]
            return events
        if rtype == REC_SIGNAL:
            sig, code, nr, arch = _SIGNAL.unpack_from(data, body)
            name = _SIGNALS.get(sig, f"SIG{sig}")
            proc = self._proc(tid)
            # strace's rendering of the siginfo, which the records read (si_syscall of a SIGSYS)
            info = f"{{si_signo={name}, si_code={code}"
            if sig == 31 and nr >= 0:
                arch_name = "AUDIT_ARCH_X86_64" if arch == 0xC000003E else hex(arch)
                info += f", si_syscall=__NR_{syscall_name(nr)}, si_arch={arch_name}"
            info += "}"
            return [
                Event(
                    t=t, phase=self.phase, pid=tid, ppid=proc.ppid, exe=proc.exe, comm=proc.comm,
                    syscall="signal", kind=KIND_PROCESS, op="signal", ret=None, errno=None,
                    args=[f"{name} {info}"], signal=name, target_pid=tid,
                )
            ]  # fmt: skip
        if rtype == REC_HEADER:
            magic, offset, root = _HEADER.unpack_from(data, body)
            if magic != LOG_MAGIC:
                raise ValueError("not an osptrack-ebpf log (or another version)")
            self.boot_to_epoch = offset / 1e9
            self.root = root
            self._procs[root] = _Proc(None, None)
            return []
        if rtype == REC_LOST:
            (self.stats.lost,) = _LOST.unpack_from(data, body)
            return []
        self.stats.dropped += 1
        return []

    def _proc(self, tid: int) -> _Proc:
        proc = self._procs.get(tid)
        if proc is None:
            proc = self._procs[tid] = _Proc(None, None)
        return proc

    def _path_of(self, blobs: list[bytes], slot: int, flags: int) -> tuple[str, str, str]:
        """Path argument `slot` of a call: (absolute path where known, as passed, quoted).

        A pure function of the bytes (base and string) and F_NOBASE, so it is cached by them:
        a package's runtime looks the same few hundred paths up thousands of times.
        """
        raw_b = blobs[slot * 2 + 1]
        absolute = raw_b[:1] == b"/"
        key: object = raw_b if absolute else (None if flags & F_NOBASE else blobs[slot * 2], raw_b)
        hit = self._paths.get(key)
        if hit is None:
            raw = _s(raw_b)
            if absolute:
                path = _join(None, raw)
            else:
                path = _join(None if flags & F_NOBASE else _base(blobs[slot * 2]), raw)
            hit = (path, raw, _quote(raw))
            if len(self._paths) >= _PATH_CACHE_MAX:  # memory stays flat in the trace's size
                self._paths.clear()
            self._paths[key] = hit
        return hit

    # ------------------------------------------------------------ one syscall

    def _finish(self, tid: int, ret: int | None, x: tuple[Any, ...] | None) -> Event | None:
        """The event of `tid`'s call in flight, ended by an exit record (`x`: its _EXIT fields,
        ret first) or by none (None: it never returned)."""
        call = self._inflight.pop(tid, None)
        if call is None:
            return None
        t, nr, cflags, a, b, exec_argv, exec_path = call
        return self._event(tid, t, nr, cflags, a, b, exec_argv, exec_path, ret, x)

    def _event(
        self, tid: int, t: float, nr: int, cflags: int, a: tuple[int, ...], b: list[bytes],
        exec_argv: tuple[int, bytes] | None, exec_path: bytes | None, ret: int | None, x: tuple[Any, ...] | None,
    ) -> Event | None:  # fmt: skip
        """The event of one call: its entry's fields (see `_inflight`), its exit's (as _finish)."""
        spec = _CALLS.get(nr)
        if spec is None:
            self.stats.dropped += 1
            return None
        name, cls, op, form = spec
        if cls == _PROBE:  # the commonest call: a stat of a path nobody steals
            path, raw, quoted = self._path_of(b, 0, cflags)
            if not raw:  # AT_EMPTY_PATH: a stat of an fd already open
                self.stats.ignored += 1
                return None
            probe = sensitive_category(path)
            if probe is None:
                self.stats.ignored += 1
                return None
        err = None
        if ret is not None and -4096 < ret < 0:
            err = errno_mod.errorcode.get(-ret) or _KERNEL_ERRNOS.get(-ret, f"E{-ret}")
            ret = -1
        proc = self._procs.get(tid) or self._proc(tid)
        trunc = bool(cflags & F_TRUNCATED)

        if cls == _PROBE:
            return Event(
                t, self.phase, tid, proc.ppid, proc.exe, proc.comm, name, KIND_FILE, op, ret, err,
                [_dirfd(a[0]), quoted] if form else [quoted], path=path, truncated=trunc, probe=probe,
            )  # fmt: skip
        if cls == _OPEN:
            path, raw, quoted = self._path_of(b, 0, cflags)
            if form == -1:  # creat
                op, also_read, ftype = "write", False, None
                flags = O_CREAT | 1 | O_TRUNC
            else:
                flags = 0 if form is None else a[form]
                acc = flags & O_ACCMODE
                op = "write" if acc in (1, 2) or flags & (O_CREAT | O_TRUNC | O_APPEND) else "read"
                also_read = acc == 2
                ftype = "path" if flags & O_PATH else "dir" if flags & O_DIRECTORY else None
            if x is not None and err is None:
                ftype = _FTYPES.get(x[1] & _S_IFMT, ftype)
            args = [quoted, oct(flags)] if form == 1 or form == -1 else [_dirfd(a[0]), quoted, oct(flags)]
            return Event(
                t, self.phase, tid, proc.ppid, proc.exe, proc.comm, name, KIND_FILE, op, ret, err, args,
                path=path, read=also_read, ftype=ftype, truncated=trunc,
                probe=sensitive_category(path) if err is not None else None,
            )  # fmt: skip
        if cls == _FILE:
            if form == _FD:
                fd_path = None if cflags & F_NOBASE else _base(b[0])
                return Event(
                    t, self.phase, tid, proc.ppid, proc.exe, proc.comm, name, KIND_FILE, op, ret, err,
                    [str(a[0])], path=fd_path,
                )  # fmt: skip
            path, raw, quoted = self._path_of(b, 0, cflags)
            path2 = None
            if form == _ONE_PATH:
                args = [quoted]
            elif form == _TWO:
                path2, _, quoted2 = self._path_of(b, 1, cflags)
                args = [quoted, quoted2]
            else:  # unlinkat
                args = [_dirfd(a[0]), quoted, "AT_REMOVEDIR" if a[2] & AT_REMOVEDIR else "0"]
            return Event(
                t, self.phase, tid, proc.ppid, proc.exe, proc.comm, name, KIND_FILE, op, ret, err, args,
                path=path, path2=path2, truncated=trunc,
            )  # fmt: skip
        return self._rare(tid, name, t, cflags, a, b, exec_argv, exec_path, ret, err, x, proc, trunc)

    def _rare(
        self, tid: int, name: str, t: float, cflags: int, a: tuple[int, ...], b: list[bytes],
        exec_argv: tuple[int, bytes] | None, exec_path: bytes | None, ret: int | None, err: str | None,
        x: tuple[Any, ...] | None, proc: _Proc, trunc: bool,
    ) -> Event | None:  # fmt: skip
        """Calls other than opens, probes and file operations: a few per process."""
        # The fields every event of this call shares; each branch fills in the rest.
        common = Event(
            t=t, phase=self.phase, pid=tid, ppid=proc.ppid, exe=proc.exe, comm=proc.comm,
            syscall=name, kind="", op="", ret=ret, errno=err, args=[],
        )  # fmt: skip
        if name in ("symlink", "symlinkat"):
            link, _, quoted_link = self._path_of(b, 1, cflags)
            target = _s(b[4])
            path = target
            if not target.startswith("/") and link.startswith("/"):
                path = _join(None, posixpath.dirname(link) + "/" + target)
            return replace(common, kind=KIND_FILE, op="link", args=[_quote(target), quoted_link], path=path,
                path2=link, truncated=trunc,
            )  # fmt: skip
        if name in ("execve", "execveat"):
            if err is None and ret == 0 and cflags & F_RETRY and exec_path is not None:
                b[1] = exec_path  # the exit's re-read was of the new image: the kernel's copy
            path, _, quoted = self._path_of(b, 0, cflags)
            argv = _entry_strings(b[4], cflags)
            env = _entry_strings(b[5], cflags)
            if err is None and ret == 0 and exec_argv is not None:
                argv, argv_trunc = _exec_argv(argv, *exec_argv)
                trunc = trunc or argv_trunc
            ev = replace(common, kind=KIND_PROCESS, op="exec", args=[quoted], path=path, argv=argv, env=env,
                truncated=trunc,
            )  # fmt: skip
            if err is None and ret == 0:
                proc.exe, proc.comm = path, posixpath.basename(path)
            return ev
        if name in _CLONES:
            fork = self._forks.pop(tid, None) if err is None else None
            child = fork[0] if fork is not None else None
            thread = fork is not None and fork[1] == self._tgid.get(tid, -1)
            return replace(common, kind=KIND_PROCESS, op="clone", args=["flags=CLONE_THREAD" if thread else "flags=SIGCHLD"],
                child_pid=child,
            )  # fmt: skip
        if name in ("kill", "tgkill", "tkill"):
            raw_target, sig = (a[1], a[2]) if name == "tgkill" else (a[0], a[1])
            target_ns = _signed(raw_target)
            host_target = self._nspid.get(target_ns, target_ns) if target_ns > 0 else target_ns
            signame = _SIGNAMES.get(sig & 0xFFFFFFFF, str(sig)) if sig else "0"
            return replace(common, kind=KIND_PROCESS, op="signal", args=[str(target_ns), signame], signal=signame,
                target_pid=host_target,
            )  # fmt: skip
        if name in ("chdir", "fchdir"):
            self.stats.ignored += 1
            return None
        if name == "listen":
            family, address, port = None, None, None
            if x is not None:
                fam, port_n, addr = x[2], x[3], x[6]
                if fam == 2:
                    family, address, port = "AF_INET", str(ipaddress.IPv4Address(addr[:4])), port_n
                elif fam == 10:
                    family, address, port = "AF_INET6", str(ipaddress.IPv6Address(addr)), port_n
                elif fam == 1:
                    family = "AF_UNIX"
            return replace(
                common,
                kind=KIND_NETWORK,
                op="listen",
                args=[str(a[0])],
                family=family,
                address=address,
                port=port,
            )
        if name in ("connect", "bind", "sendto", "sendmsg"):
            sa = _sockaddr(b[4])
            if sa is None:
                self.stats.ignored += 1
                return None
            udp = x is not None and x[4] == SOCK_DGRAM and sa[0] in ("AF_INET", "AF_INET6")
            fd_arg = f"{a[0]}<{'UDP' if sa[0] == 'AF_INET' else 'UDPv6'}:[]>" if udp else str(a[0])
            return replace(common, kind=KIND_NETWORK, op="sendto" if name == "sendmsg" else name, args=[fd_arg],
                family=sa[0], address=sa[1], port=sa[2],
            )  # fmt: skip
        self.stats.ignored += 1
        return None


@functools.cache
def _syscall_names() -> dict[int, str]:
    table = HERE / "bin" / "syscalls.tsv"  # written by build.sh from the kernel headers
    names = {nr: name for nr, name in SYSCALLS.items()}
    try:
        for line in table.read_text().splitlines():
            nr, _, name = line.partition("\t")
            if nr.isdigit() and name:
                names[int(nr)] = name
    except OSError:
        pass
    return names


def syscall_name(nr: int) -> str:
    return _syscall_names().get(nr, str(nr))


def _signed(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def _dirfd(value: int) -> str:
    if value in _AT_FDCWD_ARGS:  # the commonest by far
        return "AT_FDCWD"
    fd = _signed(value)
    return "AT_FDCWD" if fd == AT_FDCWD else str(fd)


def parse_log(path: Path, phase: str, *, stats: EbpfStats | None = None) -> Iterator[Event]:
    """Events of one phase's eBPF log; `stats` gets the counters (lost records included)."""
    yield from EbpfLogReader(phase, stats).read(path)
