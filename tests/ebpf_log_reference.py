"""The eBPF log reader as it was before its fast path (osptrack 36224d0): the oracle the fast one is tested against.

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
import posixpath
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from msgspec.structs import replace

from osptrack.trace.ebpf import HERE
from osptrack.trace.events import KIND_FILE, KIND_NETWORK, KIND_PROCESS, Event
from osptrack.trace.sensitive import category as sensitive_category
from osptrack.trace.strace import ARG_CAP, ParseStats

LOG_MAGIC = 0x4B525450534F0003
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
_CLONES = frozenset({"clone", "clone3", "fork", "vfork"})
_SIGNALS = {4: "SIGILL", 6: "SIGABRT", 7: "SIGBUS", 11: "SIGSEGV", 24: "SIGXCPU", 25: "SIGXFSZ", 31: "SIGSYS"}
_SIGNAMES = {
    1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL", 5: "SIGTRAP", 6: "SIGABRT", 7: "SIGBUS",
    8: "SIGFPE", 9: "SIGKILL", 10: "SIGUSR1", 11: "SIGSEGV", 12: "SIGUSR2", 13: "SIGPIPE",
    14: "SIGALRM", 15: "SIGTERM", 16: "SIGSTKFLT", 17: "SIGCHLD", 18: "SIGCONT", 19: "SIGSTOP",
    20: "SIGTSTP", 21: "SIGTTIN", 22: "SIGTTOU", 23: "SIGURG", 24: "SIGXCPU", 25: "SIGXFSZ",
    26: "SIGVTALRM", 27: "SIGPROF", 28: "SIGWINCH", 29: "SIGIO", 30: "SIGPWR", 31: "SIGSYS",
}  # fmt: skip
AT_FDCWD = -100
AT_REMOVEDIR = 0x200
O_ACCMODE, O_CREAT, O_TRUNC, O_APPEND = 3, 0o100, 0o1000, 0o2000
O_DIRECTORY, O_PATH = 0o200000, 0o10000000
_S_IFMT = 0o170000
_FTYPES = {0o010000: "pipe", 0o140000: "socket", 0o020000: "chr", 0o060000: "blk", 0: "anon"}
SOCK_DGRAM = 2
# Kernel-internal codes a syscall exit shows when a signal interrupted it (strace's names).
_KERNEL_ERRNOS = {
    512: "ERESTARTSYS",
    513: "ERESTARTNOINTR",
    514: "ERESTARTNOHAND",
    516: "ERESTART_RESTARTBLOCK",
}


@dataclass
class EbpfStats(ParseStats):
    """ParseStats plus what only this backend knows: records the kernel could not deliver."""

    lost: int = 0  # ring buffer full, or the traced-task map full: the trace is incomplete
    records: int = 0


@dataclass
class _Enter:
    t: float
    nr: int
    flags: int
    args: tuple[int, ...]
    blobs: list[bytes]
    exec_argv: tuple[int, bytes] | None = None  # REC_ARGV's flags and argv: the exec succeeded
    exec_path: bytes | None = None  # REC_ARGV's copy of the path execve got


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
    """Streams Events from one phase's log, in the order the calls started."""

    def __init__(self, phase: str, stats: EbpfStats | None = None) -> None:
        self.phase = phase
        self.stats = stats if stats is not None else EbpfStats()
        self.boot_to_epoch = 0.0
        self.root: int | None = None
        self._procs: dict[int, _Proc] = {}
        self._inflight: dict[int, _Enter] = {}
        self._forks: dict[int, tuple[int, int, int]] = {}  # parent tid -> (child tid, tgid, ns tid)
        self._nspid: dict[int, int] = {}  # namespace tid -> host tid (kill targets)
        self._tgid: dict[int, int] = {}

    def read(self, path: Path) -> Iterator[Event]:
        data = path.read_bytes()
        pos, n = 0, len(data)
        out: list[tuple[float, int, Event]] = []
        seq = 0
        while pos + _HDR.size <= n:
            size, rtype, flags, nr, tid, tgid, ts, _, _ = _HDR.unpack_from(data, pos)
            if size < _HDR.size or pos + size > n:
                self.stats.truncated = True
                break
            body = pos + _HDR.size
            self.stats.records += 1
            t = ts / 1e9 + self.boot_to_epoch
            for ev in self._record(rtype, flags, nr, tid, tgid, t, data, body, pos + size):
                out.append((ev.t, seq, ev))
                seq += 1
            pos += size
        if pos < n:
            self.stats.truncated = True
        for tid in list(self._inflight):  # calls that never returned (the log was cut)
            last = self._finish(tid, None, None)
            if last is not None:
                out.append((last.t, seq, last))
                seq += 1
        # Events are produced at each call's end; strace lists them where they started.
        out.sort(key=lambda item: (item[0], item[1]))
        self.stats.events += len(out)
        for _, _, ev in out:
            yield ev

    # ------------------------------------------------------------ records

    def _record(
        self, rtype: int, flags: int, nr: int, tid: int, tgid: int, t: float, data: bytes, body: int, end: int
    ) -> list[Event]:
        if rtype == REC_ENTER:
            vals = _ENTER.unpack_from(data, body)
            args, lens = vals[:6], vals[6:12]
            blobs, off = [], body + _ENTER.size
            for length in lens:
                blobs.append(data[off : off + length])
                off += length
            self._tgid[tid] = tgid
            prior = self._inflight.pop(tid, None)
            events = []
            if prior is not None:  # an entry with no exit: the call was interrupted for good
                self._inflight[tid] = prior
                ev = self._finish(tid, None, None)
                if ev is not None:
                    events.append(ev)
            self._inflight[tid] = _Enter(t, nr, flags, args, blobs)
            return events
        if rtype == REC_RETRY:  # path arguments read again at exit (not paged in at entry)
            call = self._inflight.get(tid)
            if call is not None:
                lens = _ENTER.unpack_from(data, body)[6:12]
                off = body + _ENTER.size
                for i, length in enumerate(lens):
                    if length and i in (1, 3):
                        call.blobs[i] = data[off : off + length]
                    off += length
            return []
        if rtype == REC_ARGV:  # the exec succeeded: argv from the new image (always readable)
            flen, length, _, _ = _ARGV.unpack_from(data, body)
            call = self._inflight.get(tid)
            if call is not None:
                start = body + _ARGV.size
                if flen:
                    call.exec_path = data[start : start + flen]
                if length and not flags & F_UNREADABLE:
                    call.exec_argv = (flags, data[start + flen : start + flen + length])
            return []
        if rtype == REC_EXIT:
            ret, mode, family, port, sotype, _, addr = _EXIT.unpack_from(data, body)
            ev = self._finish(tid, ret, (mode, family, port, sotype, addr))
            return [ev] if ev is not None else []
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

    # ------------------------------------------------------------ one syscall

    def _finish(
        self, tid: int, ret: int | None, extra: tuple[int, int, int, int, bytes] | None
    ) -> Event | None:
        call = self._inflight.pop(tid, None)
        if call is None:
            return None
        name = SYSCALLS.get(call.nr)
        if name is None:
            self.stats.dropped += 1
            return None
        err = None
        if ret is not None and -4096 < ret < 0:
            err = errno_mod.errorcode.get(-ret) or _KERNEL_ERRNOS.get(-ret, f"E{-ret}")
            ret = -1
        proc = self._proc(tid)
        a = call.args
        b = call.blobs
        trunc = bool(call.flags & F_TRUNCATED)
        nobase = bool(call.flags & F_NOBASE)

        def path_of(slot: int) -> tuple[str, str]:
            raw = _s(b[slot * 2 + 1])
            if raw.startswith("/"):
                return _join(None, raw), raw
            return _join(None if nobase else _base(b[slot * 2]), raw), raw

        # The fields every event of this call shares; each branch fills in the rest.
        common = Event(
            t=call.t, phase=self.phase, pid=tid, ppid=proc.ppid, exe=proc.exe, comm=proc.comm,
            syscall=name, kind="", op="", ret=ret, errno=err, args=[],
        )  # fmt: skip

        if name in _OPENS:
            path, raw = path_of(0)
            if name == "creat":
                op, also_read, ftype = "write", False, None
                flags = O_CREAT | 1 | O_TRUNC
            else:
                flags = a[1] if name == "open" else a[2] if name == "openat" else 0
                acc = flags & O_ACCMODE
                op = "write" if acc in (1, 2) or flags & (O_CREAT | O_TRUNC | O_APPEND) else "read"
                also_read = acc == 2
                ftype = "path" if flags & O_PATH else "dir" if flags & O_DIRECTORY else None
            if extra is not None and err is None and ret is not None:
                ftype = _FTYPES.get(extra[0] & _S_IFMT, ftype)
            dirfd = [_dirfd(a[0])] if name in ("openat", "openat2") else []
            return replace(common, kind=KIND_FILE, op=op, args=[*dirfd, _quote(raw), oct(flags)], path=path,
                read=also_read, ftype=ftype, truncated=trunc,
                probe=sensitive_category(path) if err is not None else None,
            )  # fmt: skip
        if name in _PROBES:
            path, raw = path_of(0)
            if not raw:  # AT_EMPTY_PATH: a stat of an fd already open
                self.stats.ignored += 1
                return None
            probe = sensitive_category(path)
            if probe is None:
                self.stats.ignored += 1
                return None
            args = [_dirfd(a[0]), _quote(raw)] if name in ("newfstatat", "statx", "faccessat", "faccessat2", "readlinkat") else [_quote(raw)]  # fmt: skip
            return replace(
                common, kind=KIND_FILE, op=_PROBES[name], args=args, path=path, truncated=trunc, probe=probe
            )
        if name in _FILE_OPS:
            if name in ("fchmod", "ftruncate"):
                fd_path = None if nobase else _base(b[0])
                return replace(common, kind=KIND_FILE, op=_FILE_OPS[name], args=[str(a[0])], path=fd_path)
            path, raw = path_of(0)
            path2 = None
            args = [_quote(raw)]
            if name in ("rename", "renameat", "renameat2", "link", "linkat"):
                path2, raw2 = path_of(1)
                args.append(_quote(raw2))
            if name == "unlinkat":
                args = [_dirfd(a[0]), _quote(raw), "AT_REMOVEDIR" if a[2] & AT_REMOVEDIR else "0"]
            return replace(
                common,
                kind=KIND_FILE,
                op=_FILE_OPS[name],
                args=args,
                path=path,
                path2=path2,
                truncated=trunc,
            )
        if name in ("symlink", "symlinkat"):
            link, raw_link = path_of(1)
            target = _s(b[4])
            path = target
            if not target.startswith("/") and link.startswith("/"):
                path = _join(None, posixpath.dirname(link) + "/" + target)
            return replace(common, kind=KIND_FILE, op="link", args=[_quote(target), _quote(raw_link)], path=path,
                path2=link, truncated=trunc,
            )  # fmt: skip
        if name in ("execve", "execveat"):
            if err is None and ret == 0 and call.flags & F_RETRY and call.exec_path is not None:
                b[1] = call.exec_path  # the exit's re-read was of the new image: the kernel's copy
            path, raw = path_of(0)
            argv = _entry_strings(b[4], call.flags)
            env = _entry_strings(b[5], call.flags)
            if err is None and ret == 0 and call.exec_argv is not None:
                argv, argv_trunc = _exec_argv(argv, *call.exec_argv)
                trunc = trunc or argv_trunc
            ev = replace(common, kind=KIND_PROCESS, op="exec", args=[_quote(raw)], path=path, argv=argv, env=env,
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
            if extra is not None:
                fam, port_n, addr = extra[1], extra[2], extra[4]
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
            udp = extra is not None and extra[3] == SOCK_DGRAM and sa[0] in ("AF_INET", "AF_INET6")
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
    fd = _signed(value)
    return "AT_FDCWD" if fd == AT_FDCWD else str(fd)


def parse_log(path: Path, phase: str, *, stats: EbpfStats | None = None) -> Iterator[Event]:
    """Events of one phase's eBPF log; `stats` gets the counters (lost records included)."""
    yield from EbpfLogReader(phase, stats).read(path)
