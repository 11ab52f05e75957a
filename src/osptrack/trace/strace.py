"""strace command builder and streaming log parser.

Public API (everything else here is private):

- `strace_command(log_path, string_limit=4096) -> list[str]`
    The argv prefix that wraps a sandbox from outside. It ends with `--`: append the command,
    e.g. `strace_command(log) + ["bwrap", ..., "python3", "-m", "pip", ...]`.
- `parse_log(source, phase, *, initial_cwd=None, stats=None) -> Iterator[Event]`
    Streams typed events (osptrack.trace.events.Event) in log order from a log file path or an
    iterable of lines. Never raises on a malformed line: it is counted in `stats.dropped`.
    Pass a `ParseStats()` to read the counters afterwards (run.json's `trace` block).
- `ParseStats`: lines, events, dropped, ignored, unfinished, truncated, dropped_samples.
- `TRACED_SYSCALLS`: the syscalls the command traces (and the parser understands).

What the flags buy (all verified against strace 6.1 on Debian 12):
- TZ=UTC in strace's environment (STRACE_ENV: the runner's launch_env, or `env TZ=UTC` in
  front), and `strace -E TZ`: strace's own timestamps without a stat of /etc/localtime per line;
  `-E TZ` drops it again for the traced command (the sandbox's environment has no TZ).
- `-f --seccomp-bpf`: follow children; only the traced syscalls stop the tracee (~1.6x cost
  instead of ~4x). `--seccomp-bpf` requires `-f`.
- No `--pidns-translation`: it made strace read every /proc/*/status for each new process
  (~5 ms each). The sandbox has its own pid namespace, so clone/vfork return the *namespace*
  pid (2, 3, ...) while the log's pid column is the host pid; the parser pairs them ("Process
  tree" below). Logs written with the flag (`= 3 /* 7077 in strace's PID NS */`) still parse.
- `set_tid_address`, `set_robust_list` are traced for the tree only, never emitted.
- `-ttt`: epoch timestamps with microseconds. `-v`: print execve environments in full.
- `-yy`: fd annotations (`3</etc/passwd>`, `AT_FDCWD</tmp>`, `5<TCP:[..]>`, `7<pipe:[12]>`);
  they resolve dirfd-relative paths and tell pipes/sockets from files. Paths inside
  annotations escape `<` and `>` (`\\74`, `\\76`), socket annotations may contain `->`.
- `-q`: no attach/detach chatter, but keeps `+++ exited with N +++` (unlike `-qq`).
- `-e signal=SIGSYS,...`: only signals worth recording (seccomp traps, crashes, rlimits),
  not the SIGCHLD flood.
- `-e trace=?open,...`: the `?` marks syscalls that arm64/riscv lack, so the command runs there.

Semantics (see docs/formats.md for the field list):
- open/openat/openat2/creat: op `write` when O_WRONLY/O_RDWR/O_CREAT/O_TRUNC/O_APPEND, else
  `read`. O_RDWR is one `write` event with `read=True`. `ftype` marks opens that are not files:
  `dir` (O_DIRECTORY), `path` (O_PATH), `pipe`/`socket`/`anon` (from the returned fd's
  annotation, which also catches `/proc/self/fd/N` that resolves to a pipe), `chr`/`blk`.
- Paths are made absolute: absolute args are kept; relative ones are joined to the dirfd's
  annotation (`openat(3</usr/lib>, "x")`), to `AT_FDCWD</cwd>`, or to the per-pid cwd that we
  track from chdir/fchdir and AT_FDCWD annotations (inherited on clone). Joined paths are
  normalised lexically (`..`, `.`, `//`). If no base is known the path stays relative.
- execve: `path` is the new program, `argv`/`env` its arrays (env capped at ENV_CAP entries);
  `exe`/`comm` are the image that *called* execve. A successful execve sets the pid's exe.
- clone/clone3/fork/vfork: `child_pid` (host pid). The child inherits exe and cwd.

Process tree (all pids are host pids, the log's pid column; docs/formats.md):
- A pid seen for the first time comes from a clone that had entered (strace prints a call's
  entry before the child exists) and whose child has not shown up yet: if there is one such
  clone, that is the parent. A clone whose caller shares strace's namespace (the launcher)
  returns the host pid itself, which names the child exactly.
- Several clones, of one caller or more: the pid's events wait until (a) its set_tid_address
  (libc, at every program start) returns the namespace pid that one of the clones returned; or
  (b) every candidate clone has returned and has a waiting child: pids are handed out in the
  same order in the sandbox's namespace and on the host, so the k-th smallest namespace pid is
  the k-th smallest host pid (modulo pid_max); or (c) the log ends or HOLD_CAP is reached: (b)'s
  order anyway, counted in `stats.pid_guesses`. (b) is not exact: two forks on two CPUs can
  get their namespace pids and their host pids in opposite orders (seen on kernel 6.18: once in
  21 runs of tests/trace/test_trace_e2e.py's fork storm beside a busy loop), and two children
  that never exec and run at once then swap parents.
- set_robust_list, libc's first call in a new thread or fork child, makes children show up
  at once rather than at their exit, so those waits are short.
- The clone event keeps its place in the output until its child is known (child_pid filled);
  a child that never shows up leaves it with child_pid None (OPEN_CAP, end of log).
- kill/tgkill targets are namespace pids, translated back with the pairs known (else None).
- Calls still unfinished when their process dies (a connect blocked until the timeout kill)
  are emitted with `ret=None` at the process's exit, so they are not lost.
- connect/bind/sendto/sendmsg: `family`, `address`, `port` from the sockaddr. sendto/sendmsg
  without an explicit destination (connected sockets) are not emitted: the connect was.
  AF_NETLINK/AF_UNSPEC are ignored (resolver noise). listen: op `listen` with the address and
  port from the socket's `-yy` annotation (`TCP:[0.0.0.0:8080]`), so an ephemeral bind shows
  the port it got.
- stat/lstat/newfstatat/statx (op `stat`), access/faccessat/faccessat2 (op `access`),
  readlink/readlinkat (op `readlink`): emitted only when the path is sensitive
  (osptrack.trace.sensitive), with `probe` set to its category; the rest are parsed no further
  than their path. A failed open of a sensitive path gets `probe` too. An interpreter makes
  ~4x more stats than opens, so tracing these costs time (docs/formats.md): their stat struct
  is not printed (`-e verbose=!...`), and a phase that runs no package code may leave them out
  (`strace_command(probes=False)`).
- `+++ exited with N +++` -> process `exit` with exit_code; `+++ killed by SIG +++` -> `exit`
  with `signal`. exit_group itself is not emitted (its +++ line is). chdir/fchdir only update
  state.
"""

from __future__ import annotations

import codecs
import posixpath
import re
import shutil
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from msgspec.structs import replace

from osptrack.trace.common import ARG_CAP, ParseStats  # also imported from here
from osptrack.trace.events import KIND_FILE, KIND_NETWORK, KIND_PROCESS, Event
from osptrack.trace.sensitive import SENSITIVE_PATHS
from osptrack.trace.sensitive import category as sensitive_category

FILE_SYSCALLS = (
    "open", "openat", "openat2", "creat", "unlink", "unlinkat", "rmdir", "rename", "renameat",
    "renameat2", "mkdir", "mkdirat", "chmod", "fchmod", "fchmodat", "link", "linkat", "symlink",
    "symlinkat", "truncate", "ftruncate",
)  # fmt: skip
PROCESS_SYSCALLS = (
    "execve", "execveat", "clone", "clone3", "fork", "vfork", "exit_group", "kill", "tgkill",
    "tkill", "chdir", "fchdir",
)  # fmt: skip
NETWORK_SYSCALLS = ("connect", "bind", "listen", "sendto", "sendmsg")
# Not events: they place a new process in the tree without --pidns-translation (see _adopt).
TREE_SYSCALLS = ("set_tid_address", "set_robust_list")
# Looking without opening: emitted only for sensitive paths (osptrack.trace.sensitive), so the
# thousands of stats an interpreter makes cost parse time, not events.
PROBE_SYSCALLS = (
    "stat", "lstat", "newfstatat", "statx", "access", "faccessat", "faccessat2", "readlink", "readlinkat",
)  # fmt: skip
TRACED_SYSCALLS = FILE_SYSCALLS + PROCESS_SYSCALLS + NETWORK_SYSCALLS + PROBE_SYSCALLS + TREE_SYSCALLS
_STAT_SYSCALLS = ("stat", "lstat", "newfstatat", "statx")  # the probes with a struct result
# Not on every architecture (arm64 and riscv have only the *at forms); `?name` tells strace to skip
# a syscall the architecture lacks instead of refusing to start.
_LEGACY_SYSCALLS = frozenset(
    {
        "open",
        "creat",
        "unlink",
        "rmdir",
        "rename",
        "renameat",
        "mkdir",
        "chmod",
        "link",
        "symlink",
        "fork",
        "vfork",
        "stat",
        "lstat",
        "access",
        "readlink",
    }
)
RECORDED_SIGNALS = ("SIGSYS", "SIGSEGV", "SIGBUS", "SIGILL", "SIGABRT", "SIGXCPU", "SIGXFSZ")

ENV_CAP = 256  # entries kept per execve environment
HOLD_CAP = 20_000  # events held back (unfinished call / unknown parent) before giving up order
OPEN_CAP = 4096  # returned clones whose child has not shown up, kept before dropping the oldest
_DROPPED_SAMPLES = 5
_BATCH = 256  # events handed out per yield burst; keeps generator overhead off the hot path


def _pid_max() -> int:
    try:
        return int(Path("/proc/sys/kernel/pid_max").read_text())
    except (OSError, ValueError):
        return 1 << 22  # PID_MAX_LIMIT


_PID_MAX = _pid_max()


def strace_binary() -> str:
    return shutil.which("strace") or "/usr/bin/strace"


# strace stamps each line through glibc's localtime(), which, with TZ unset, stats /etc/localtime
# every time to see whether it changed: ~2.6 stats per traced line, about a fifth of strace's own
# syscall time. A set TZ is read once (-ttt prints epoch seconds, so the zone is never shown);
# strace's `-E TZ` keeps it out of the traced command's environment.
STRACE_ENV = {"TZ": "UTC"}


def strace_command(
    log_path: Path, string_limit: int = 4096, probes: bool = True, env_wrapper: bool = True
) -> list[str]:
    """argv prefix: `strace ... -o LOG --`; append the command to trace. `probes=False` leaves
    the probe syscalls out (for a phase in which no code of the package can run).

    `env_wrapper=False`: the caller starts strace with STRACE_ENV in its environment itself
    (the runner's `launch_env`), instead of through `env TZ=UTC`, an exec of its own (~4-6 ms a
    phase). Either way `-E TZ` takes TZ out of the traced command's environment."""
    traced = TRACED_SYSCALLS if probes else tuple(n for n in TRACED_SYSCALLS if n not in PROBE_SYSCALLS)
    wrapper = [shutil.which("env") or "/usr/bin/env", *(f"{k}={v}" for k, v in STRACE_ENV.items())]
    return [
        *(wrapper if env_wrapper else []),
        strace_binary(),
        "-E",
        "TZ",
        "-f",
        "--seccomp-bpf",
        "-ttt",
        "-yy",
        "-v",
        "-q",
        "-s",
        str(int(string_limit)),
        "-e",
        "signal=" + ",".join(RECORDED_SIGNALS),
        "-e",
        "trace=" + ",".join("?" + name if name in _LEGACY_SYSCALLS else name for name in traced),
        # A probe is its path and result: strace need not read and print the stat struct (-v
        # would, at ~400 bytes a line). Halves what a traced stat costs; Python makes thousands.
        "-e",
        "verbose=!" + ",".join("?" + name if name in _LEGACY_SYSCALLS else name for name in _STAT_SYSCALLS),
        "-o",
        str(log_path),
        "--",
    ]


# ---------------------------------------------------------------- lexical helpers

_STR = r'"[^"\\]*(?:\\.[^"\\]*)*"'  # unrolled: runs of plain chars in one step
# One argument-level token: a quoted string, an fd annotation, a run of plain text, or one char.
_TOKEN_RE = re.compile(
    _STR + r"(?:\.\.\.)?"
    r"|<(?:[A-Za-z0-9_.-]+:\[(?:[^\[\]]|\[[^\]]*\])*\]|[^<>]*(?:<[^<>]*>)?)>"
    r'|[^"<\[\]{}(),]+'
    r"|.",
    re.S,
)
_RET_RE = re.compile(
    r"\s*=\s*(-?\d+|0x[0-9a-fA-F]+|\?)"
    r"(?:<(.*)>"
    r"|(?: /\* (\d+) in strace's PID NS \*/)?(?: (E[A-Z0-9_]+) \(.*\))?)"
)
_OPENAT_RE = re.compile(
    r"openat\(((AT_FDCWD|-?\d+)(?:<([^<>]*)>)?), (" + _STR + r")(\.\.\.)?, ([A-Za-z0-9_|]+)"
    r"(?:, (\d+))?\) = (-?\d+|\?)(?:<(.*)>| (E[A-Z0-9_]+) \(.*\))?$"
)
# execve's three arguments without the generic token walk (its env makes lines ~4 KB long).
_ARRAY = (
    r"\[(?:" + _STR + r"(?:\.\.\.)?(?:, )?)*(?:\.\.\.)?\]"
    r"|\[/\* \d+ vars? \*/\]|NULL|0x[0-9a-f]+(?: /\* \d+ vars? \*/)?"
)
_EXECVE_RE = re.compile(r"execve\((" + _STR + r"(?:\.\.\.)?), (" + _ARRAY + r"), (" + _ARRAY + r")(\).*)$")
# A whole openat line (pid, time, call, result) in one match: the hot path of the parser.
_OPENAT_LINE_RE = re.compile(r"(\d+) +(\d+\.\d+) " + _OPENAT_RE.pattern)
_STR_ITEM_RE = re.compile(r'"([^"\\]*(?:\\.[^"\\]*)*)"(\.\.\.)?')
_SIN_RE = re.compile(r'sa_family=AF_INET, sin_port=htons\((\d+)\), sin_addr=inet_addr\("([^"]*)"\)')
_SIN6_RE = re.compile(r'sa_family=AF_INET6, sin6_port=htons\((\d+)\).*?inet_pton\(AF_INET6, "([^"]*)"')
_SUN_RE = re.compile(r"sa_family=AF_UNIX(?:, sun_path=(@?)(" + _STR + r"))?")
_FAMILY_RE = re.compile(r"sa_family=(AF_[A-Z0-9_]+)")
_PID_ARG_RE = re.compile(r"(-?\d+)(?: /\* (\d+) in strace's PID NS \*/)?")
_OPENAT2_FLAGS_RE = re.compile(r"flags=([A-Za-z0-9_|]+)")
_EXIT_RE = re.compile(r"\+\+\+ (?:exited with (-?\d+)|killed by (SIG[A-Z0-9]+))")
_SIGNAL_RE = re.compile(r"--- (SIG[A-Z0-9]+)")

_WRITE_FLAGS = ("O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC", "O_APPEND")
_OPEN_MODES: dict[str, tuple[str, bool, str | None]] = {}  # flags string -> _open_mode(flags)
# name -> (op, has a dirfd argument before the path)
_PROBES: dict[str, tuple[str, bool]] = {
    "stat": ("stat", False), "lstat": ("stat", False), "newfstatat": ("stat", True), "statx": ("stat", True),
    "access": ("access", False), "faccessat": ("access", True), "faccessat2": ("access", True),
    "readlink": ("readlink", False), "readlinkat": ("readlink", True),
}  # fmt: skip
# an fd of a deleted file is annotated <path>(deleted): the persona init fstat()s its command fd
_PROBE_DIRFD_RE = re.compile(
    r"((?:AT_FDCWD|-?\d+)(?:<[^<>]*(?:<[^<>]*>)?>(?:\(deleted\))?)?), (" + _STR + r")(\.\.\.)?"
)
_PROBE_PATH_RE = re.compile(r"(" + _STR + r")(\.\.\.)?")
# A whole probe line up to its path, when the path has no escapes and the dirfd annotation no
# nested <...>: most of an interpreter's trace, and nearly all of it is dropped unemitted, so
# it is decided here without the line split (see StraceParser._probe_fast).
_PROBE_LINE_RE = re.compile(
    r"(\d+) +\d+\.\d+ (stat|lstat|newfstatat|statx|access|faccessat2?|readlink(?:at)?)\("
    r'(?:(AT_FDCWD|-?\d+)(?:<([^<>]*)>)?, )?"([^"\\]*)",'
)
# Every sensitive path (osptrack.trace.sensitive) lies under one of these: others need no lookup.
_SENSITIVE_ROOTS = tuple(
    {"/root/", "/home/"} | {p[: p.index("/", 1) + 1] for _, p in SENSITIVE_PATHS if p.startswith("/")}
)
# A listening socket's annotation: TCP:[127.0.0.1:8080], TCPv6:[[::1]:8080]
_LISTEN_ANNO_RE = re.compile(r"(TCP|UDP|TCPv6|UDPv6):\[(?:\[([^\]]*)\]|([0-9.]+)):(\d+)\]$")


def _unescape(raw: str) -> str:
    """strace C-style escapes (\\n, \\", \\ooo, \\xHH) -> text; bytes that are not UTF-8 stay escaped."""
    if "\\" not in raw:
        return raw
    try:
        data = codecs.escape_decode(raw.encode("latin-1"))[0]
    except (ValueError, UnicodeEncodeError):
        return raw
    return data.decode("utf-8", "backslashreplace")


def _unquote(tok: str) -> tuple[str, bool] | None:
    """'"abc"' -> ("abc", False); '"abc"...' -> ("abc...", True); not a string -> None."""
    truncated = tok.endswith("...") and not tok.endswith('"')
    if truncated:
        tok = tok[:-3]
    if len(tok) < 2 or tok[0] != '"' or tok[-1] != '"':
        return None
    text = _unescape(tok[1:-1])
    return (text + "...", True) if truncated else (text, False)


# One argument of a call whose args hold no brackets: a string, or plain text with an optional
# fd annotation, followed by its separator. Most non-openat lines (mkdir, rename, unlink,
# chmod, ...) split with a handful of these matches instead of the token walk.
_SIMPLE_ARG_RE = re.compile(r"(" + _STR + r'(?:\.\.\.)?|[^"<>(){}\[\],]*(?:<[^<>]*(?:<[^<>]*>)?>)?)(, |\))')


def _split_simple(s: str, pos: int) -> tuple[list[str], int] | None:
    args: list[str] = []
    match = _SIMPLE_ARG_RE.match
    while True:
        m = match(s, pos)
        if m is None:
            return None
        args.append(m.group(1))
        pos = m.end()
        if m.group(2) == ")":
            if args == [""]:
                args = []
            return args, pos


def _split_args(s: str, pos: int) -> tuple[list[str], int] | None:
    """Split `a, b, {c, d})...` at top-level commas from `pos`; return args and index after `)`."""
    depth = 0
    start = pos
    args: list[str] = []
    for m in _TOKEN_RE.finditer(s, pos):
        ch = m.group()[0]
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            if depth == 0:
                if ch != ")":
                    return None
                last = s[start : m.start()].strip()
                if last or args:
                    args.append(last)
                return args, m.end()
            depth -= 1
        elif ch == "," and depth == 0:
            args.append(s[start : m.start()].strip())
            start = m.end()
    return None


def _anno(tok: str) -> str | None:
    """`3</usr/lib>` -> '/usr/lib' (raw, still escaped); no annotation -> None."""
    lt = tok.find("<")
    if lt < 0 or not tok.endswith(">"):
        return None
    return tok[lt + 1 : -1]


def _anno_ftype(anno: str) -> str | None:
    """Classify an fd annotation: None for a plain path, else dir-less object type."""
    if anno.startswith("/"):
        if anno.endswith(">"):  # /dev/null<char 1:3>
            kind = anno[anno.rfind("<") + 1 :].split(" ", 1)[0]
            return {"char": "chr", "block": "blk"}.get(kind)
        return None
    if anno.startswith("pipe:"):
        return "pipe"
    if anno.startswith("anon_inode:"):
        return "anon"
    if ":[" in anno:  # socket:[123], TCP:[..], UNIX-STREAM:[..], NETLINK:[..]
        return "socket"
    return None


def _anno_path(anno: str) -> str:
    """Annotation -> unescaped path without a trailing device tag."""
    if anno.endswith(">"):
        anno = anno[: anno.rfind("<")]
    return _unescape(anno)


def _norm(path: str) -> str:
    if "/." in path or "//" in path:
        return posixpath.normpath(path)
    return path


def _cap(args: list[str]) -> list[str]:
    return [a if len(a) <= ARG_CAP else a[:ARG_CAP] + "..." for a in args]


def _str_array(tok: str) -> tuple[list[str] | None, bool]:
    """`["a", "b"...]` -> (["a", "b..."], truncated); `[/* 30 vars */]` or a pointer -> (None, False)."""
    if not tok.startswith("["):
        return None, False
    items: list[str] = []
    truncated = False
    for text, dots in _STR_ITEM_RE.findall(tok):
        if "\\" in text:
            text = _unescape(text)
        if dots:
            text += "..."
            truncated = True
        items.append(text)
    if not items and "/*" in tok:
        return None, False
    if tok.endswith("...]"):  # strace cut the array itself
        truncated = True
    return items, truncated


def _sockaddr(tok: str) -> tuple[str, str | None, int | None] | None:
    """(family, address, port) from a printed sockaddr; None when there is none."""
    m = _SIN_RE.search(tok)
    if m:
        return "AF_INET", m.group(2), int(m.group(1))
    m = _SIN6_RE.search(tok)
    if m:
        return "AF_INET6", m.group(2), int(m.group(1))
    m = _SUN_RE.search(tok)
    if m:
        if m.group(2) is None:
            return "AF_UNIX", None, None
        text = _unquote(m.group(2))
        return "AF_UNIX", (m.group(1) + text[0]) if text else None, None
    m = _FAMILY_RE.search(tok)
    if m:
        return m.group(1), None, None
    return None


def _open_mode(flags: str) -> tuple[str, bool, str | None]:
    """(op, also_read, ftype) for open flags, symbolic or numeric."""
    if flags[:1].isdigit():
        try:
            value = int(flags, 0)
        except ValueError:
            return "read", False, None
        acc = value & 3
        write = acc in (1, 2) or bool(value & (0o100 | 0o1000 | 0o2000))
        ftype = "path" if value & 0o10000000 else "dir" if value & 0o200000 else None
        return ("write" if write else "read"), acc == 2, ftype
    write = any(f in flags for f in _WRITE_FLAGS)
    ftype = "path" if "O_PATH" in flags else "dir" if "O_DIRECTORY" in flags else None
    return ("write" if write else "read"), "O_RDWR" in flags, ftype


# ---------------------------------------------------------------- per-process state


class _Proc:
    __slots__ = ("ppid", "exe", "comm", "cwd", "execd", "ns", "gone")

    def __init__(self, ppid: int | None, exe: str | None, cwd: str | None, ns: int = 0) -> None:
        self.ppid = ppid
        self.exe = exe
        self.comm = posixpath.basename(exe) if exe else None
        self.cwd = cwd
        self.execd = False
        self.ns = ns  # which pid namespace it lives in: 0 is strace's (see _Birth)
        self.gone = False  # exited while its parent was still unknown

    def set_exe(self, exe: str) -> None:
        self.exe = exe
        self.comm = posixpath.basename(exe)
        self.execd = True


class _Slot:
    """The place in the output of a call that has not resumed yet, or of a clone whose child's
    host pid is not known yet (`birth` set: the event waits for its child_pid)."""

    __slots__ = ("event", "done", "abandoned", "birth")

    def __init__(self) -> None:
        self.event: Event | None = None
        self.done = False
        self.abandoned = False
        self.birth: _Birth | None = None


class _Birth:
    """One clone/fork/vfork call, from its entry until its child's host pid is known.

    `value` is the call's return value, in the *caller's* pid namespace: inside the sandbox that
    is not the host pid that the log's pid column shows. `ns` numbers the namespaces the parser
    has seen: 0 is strace's (the launcher's), a clone with CLONE_NEWPID opens a new one.
    """

    __slots__ = ("parent", "exe", "comm", "cwd", "ns", "child_ns", "seq", "value", "host", "slot")

    def __init__(self, parent: int, proc: _Proc, ns: int, child_ns: int, seq: int) -> None:
        self.parent = parent
        self.exe, self.comm, self.cwd = proc.exe, proc.comm, proc.cwd
        self.ns, self.child_ns, self.seq = ns, child_ns, seq
        self.value: int | None = None  # None while the call is in flight
        self.host: int | None = None  # the child's host pid, once matched
        self.slot: _Slot | None = None  # the clone's event, held until `host` is known

    def child_nspid(self) -> int | None:
        """The child's pid in its own namespace (1 for the first process of a new one)."""
        return self.value if self.child_ns == self.ns else 1


_CLONES = frozenset({"clone", "clone3", "fork", "vfork"})

# name -> (op, dirfd index, path index, dirfd2 index, path2 index); None = not present.
_FILE_OPS: dict[str, tuple[str, int | None, int | None, int | None, int | None]] = {
    "unlink": ("delete", None, 0, None, None),
    "unlinkat": ("delete", 0, 1, None, None),
    "rmdir": ("delete", None, 0, None, None),
    "rename": ("rename", None, 0, None, 1),
    "renameat": ("rename", 0, 1, 2, 3),
    "renameat2": ("rename", 0, 1, 2, 3),
    "mkdir": ("mkdir", None, 0, None, None),
    "mkdirat": ("mkdir", 0, 1, None, None),
    "chmod": ("chmod", None, 0, None, None),
    "fchmodat": ("chmod", 0, 1, None, None),
    "fchmod": ("chmod", 0, None, None, None),  # path from the fd's annotation
    "link": ("link", None, 0, None, 1),
    "linkat": ("link", 0, 1, 2, 3),
    "truncate": ("truncate", None, 0, None, None),
    "ftruncate": ("truncate", 0, None, None, None),
}


class StraceParser:
    """Incremental parser: `feed(line)` then `finish()`; events accumulate in `out`."""

    def __init__(self, phase: str, initial_cwd: str | None = None, stats: ParseStats | None = None):
        self.phase = phase
        self.initial_cwd = initial_cwd
        self.stats = stats if stats is not None else ParseStats()
        self.out: list[Event] = []
        self._procs: dict[int, _Proc] = {}
        # pid -> (t, partial body, name, slot) for calls printed as `<unfinished ...>`; slot None
        # for a probe already decided at its entry to be dropped (_probe_fast)
        self._pending: dict[int, tuple[float, str, str, _Slot | None]] = {}
        self._seen_any = False
        self._queue: deque[Event | _Slot] = deque()
        self._slot: _Slot | None = None  # set while a resumed call is being parsed
        self._unresolved: set[int] = set()
        # pid -> (ppid, inherited exe) at resolution, to patch its events held meanwhile
        self._resolved: dict[int, tuple[int | None, str | None]] = {}
        # Process tree without --pidns-translation (see "Process tree" in the module docstring)
        self._inflight: dict[int, _Birth] = {}  # caller pid -> its clone still in flight
        self._open: dict[tuple[int, int], _Birth] = {}  # (ns, value) -> returned, child not seen yet
        self._host_of: dict[tuple[int, int], int] = {}  # (ns, pid in ns) -> host pid
        self._candidates: dict[int, list[_Birth]] = {}  # unresolved pid -> births it may be from
        self._anchors: dict[tuple[int, int], int] = {}  # (ns, own pid) -> unresolved host pid
        self._seq = 0
        self._first_host = 0
        self._next_ns = 1
        self._last_ns = 0
        self._handlers: dict[str, Callable[[int, _Proc, float, str, list[str], str], None]] = {
            "open": self._h_open,
            "openat": self._h_open,
            "openat2": self._h_open,
            "creat": self._h_open,
            "symlink": self._h_symlink,
            "symlinkat": self._h_symlink,
            "execve": self._h_exec,
            "execveat": self._h_exec,
            "clone": self._h_clone,
            "clone3": self._h_clone,
            "fork": self._h_clone,
            "vfork": self._h_clone,
            "kill": self._h_kill,
            "tgkill": self._h_kill,
            "tkill": self._h_kill,
            "set_tid_address": self._h_tid,
            "set_robust_list": self._h_presence,
            "chdir": self._h_chdir,
            "fchdir": self._h_chdir,
            "connect": self._h_net,
            "bind": self._h_net,
            "sendto": self._h_net,
            "sendmsg": self._h_net,
        }
        for name in _FILE_OPS:
            self._handlers[name] = self._h_file
        self._handlers["listen"] = self._h_listen
        for name in _PROBES:
            self._handlers[name] = self._h_probe

    # ------------------------------------------------------------ line level

    def feed(self, line: str) -> None:
        stats = self.stats
        stats.lines += 1
        if line[-1:] != "\n":
            stats.truncated = True  # only the last line can lack one; still try to parse it
        else:
            line = line[:-1]
        m = _OPENAT_LINE_RE.match(line)
        if m is not None:  # the hot path: ~80% of an install trace
            pid = int(m.group(1))
            try:
                self._openat_fast(pid, self._procs.get(pid) or self._proc(pid), float(m.group(2)), m)
            except (ValueError, IndexError, KeyError, TypeError, AttributeError):
                self._drop(line)
            return
        m = _PROBE_LINE_RE.match(line)
        if m is not None and self._probe_fast(m, line):
            return
        parts = line.split(None, 2)
        if len(parts) < 3:
            self._drop(line)
            return
        try:
            pid = int(parts[0])
            t = float(parts[1])
        except ValueError:
            self._drop(line)
            return
        body = parts[2]
        first = body[0]
        try:
            if first == "<":
                self._resumed(pid, t, body, line)
            elif first == "+":
                self._exit(pid, t, body, line)
            elif first == "-":
                self._signal(pid, t, body, line)
            else:
                paren = body.find("(")
                if paren <= 0:
                    self._drop(line)
                    return
                name = body[:paren]
                if name not in self._handlers:
                    stats.ignored += 1
                    if name not in TRACED_SYSCALLS and not name.isidentifier():
                        self._drop(line)
                        stats.ignored -= 1
                    return
                if body.endswith(" <unfinished ...>"):
                    proc = self._proc(pid)  # register the pid now: order of first appearance matters
                    slot = _Slot()  # keeps the event's place in the output until it resumes
                    self._queue.append(slot)
                    self._pending[pid] = (t, body[:-17], name, slot)
                    if name in _CLONES:
                        self._inflight[pid] = self._new_birth(pid, proc, body)
                    return
                self._call(pid, t, name, body, line)
        except (ValueError, IndexError, KeyError, TypeError, AttributeError):
            # A line we misread must not end the parse; it is evidence of a weird log, counted.
            self._drop(line)

    def _probe_fast(self, m: re.Match[str], line: str) -> bool:
        """Drop a probe of a path that is not sensitive, from its line's start; False when the
        line needs the full parse (sensitive, or a relative path without a named base).

        Same effects as the full parse of a dropped probe: the pid is registered, AT_FDCWD's
        annotation teaches the cwd, `ignored` counts it; an unfinished one reserves no place in
        the output (it will emit nothing), and its resumed line is dropped with it."""
        pid_s, name, dirfd, anno, path = m.groups()
        if path:
            if anno is not None and "\\" in anno:
                anno = _unescape(anno)
            if path[0] != "/":
                if anno is None or anno[:1] != "/":
                    return False
                path = anno.rstrip("/") + "/" + path
            if "/." in path or "//" in path:
                path = posixpath.normpath(path)
            if path.startswith(_SENSITIVE_ROOTS) and sensitive_category(path) is not None:
                return False
        pid = int(pid_s)
        proc = self._procs.get(pid) or self._proc(pid)
        if path and dirfd == "AT_FDCWD" and anno is not None and anno[:1] == "/":
            proc.cwd = anno
        self.stats.ignored += 1
        if line.endswith(" <unfinished ...>"):
            self._pending[pid] = (0.0, "", name, None)
        return True

    def finish(self) -> None:
        for pid in list(self._pending):
            self._flush_unfinished(pid)
        self._give_up()

    def _drop(self, line: str) -> None:
        self.stats.dropped += 1
        if len(self.stats.dropped_samples) < _DROPPED_SAMPLES:
            self.stats.dropped_samples.append(line[:300])

    def _resumed(self, pid: int, t: float, body: str, line: str) -> None:
        # "<... openat resumed>REST"
        end = body.find(" resumed>")
        if end < 0:
            self._drop(line)
            return
        name = body[5:end]
        rest = body[end + 9 :]
        if name not in self._handlers:
            self.stats.ignored += 1
            return
        pending = self._pending.get(pid)
        if pending is not None and pending[2] == name:
            del self._pending[pid]
            t0, partial, _, slot = pending
            if slot is not None:  # else a probe dropped at its entry, counted then
                self._call_into(slot, pid, t0, name, partial + rest, line)
            return
        if not rest.startswith(")"):
            self._drop(line)
            return
        self._call(pid, t, name, name + "(" + rest, line)

    def _call_into(self, slot: _Slot, pid: int, t: float, name: str, body: str, line: str) -> None:
        """Run a resumed call so that its event lands in its reserved slot, then flush."""
        self._slot = slot
        try:
            self._call(pid, t, name, body, line)
        except (ValueError, IndexError, KeyError, TypeError, AttributeError):
            self._drop(line)
        finally:
            self._slot = None
            slot.done = True
        if slot.abandoned and slot.event is not None:
            self._emit(slot.event)  # its place was given up (HOLD_CAP); emit late
        self._drain()

    def _exit(self, pid: int, t: float, body: str, line: str) -> None:
        m = _EXIT_RE.match(body)
        if m is None:
            # e.g. "+++ superseded by execve in pid N +++": understood, nothing to record
            if body.startswith("+++ ") and body.endswith(" +++"):
                self.stats.ignored += 1
            else:
                self._drop(line)
            return
        if pid in self._pending:
            self._flush_unfinished(pid)
        proc = self._proc(pid)
        code = int(m.group(1)) if m.group(1) is not None else None
        self._emit(
            Event(
                t=t, phase=self.phase, pid=pid, ppid=proc.ppid, exe=proc.exe, comm=proc.comm,
                syscall="exit", kind=KIND_PROCESS, op="exit", ret=None, errno=None, args=[],
                exit_code=code, signal=m.group(2),
            )
        )  # fmt: skip
        if pid not in self._unresolved:
            del self._procs[pid]  # pids get reused: a later clone registers it afresh
        else:
            proc.gone = True  # forgotten once its parent is known

    def _signal(self, pid: int, t: float, body: str, line: str) -> None:
        m = _SIGNAL_RE.match(body)
        if m is None:
            self._drop(line)
            return
        if m.group(1) == "SIGCHLD":
            self.stats.ignored += 1
            return
        proc = self._proc(pid)
        self._emit(
            Event(
                t=t, phase=self.phase, pid=pid, ppid=proc.ppid, exe=proc.exe, comm=proc.comm,
                syscall="signal", kind=KIND_PROCESS, op="signal", ret=None, errno=None,
                args=_cap([body[4:-4]]), signal=m.group(1), target_pid=pid,
            )
        )  # fmt: skip

    def _flush_unfinished(self, pid: int) -> None:
        t0, partial, name, slot = self._pending.pop(pid)
        self.stats.unfinished += 1
        if slot is not None:
            self._call_into(slot, pid, t0, name, partial + ") = ?", partial)

    # ------------------------------------------------------------ syscall level

    def _call(self, pid: int, t: float, name: str, body: str, line: str) -> None:
        proc = self._proc(pid)
        if name == "openat":  # resumed or unfinished openat: whole-call regex first
            m = _OPENAT_RE.match(body)
            if m is not None:
                self._openat_fast(pid, proc, t, m)
                return
        if name in _PROBES:  # before any argument split: most of these are dropped unparsed
            self._h_probe_line(pid, proc, t, name, body)
            return
        if name == "execve":
            m = _EXECVE_RE.match(body)
            if m is not None:
                self._h_exec(pid, proc, t, name, [m.group(1), m.group(2), m.group(3)], m.group(4)[1:])
                return
        split = _split_simple(body, len(name) + 1) or _split_args(body, len(name) + 1)
        if split is None:
            self._drop(line)
            return
        args, end = split
        self._handlers[name](pid, proc, t, name, args, body[end:])

    def _base(self, proc: _Proc, dirfd: str | None) -> str | None:
        """Directory a relative path is relative to: dirfd annotation, else the tracked cwd."""
        if dirfd is not None:
            anno = _anno(dirfd)
            if anno is not None and anno.startswith("/"):
                base = _anno_path(anno)
                if dirfd.startswith("AT_FDCWD"):
                    proc.cwd = base
                return base
            if not dirfd.startswith("AT_FDCWD"):
                return None  # a real dirfd strace could not name: the cwd would be a wrong guess
        return proc.cwd

    def _resolve(self, proc: _Proc, dirfd: str | None, path: str) -> str:
        if path.startswith("/"):
            if dirfd is not None and dirfd.startswith("AT_FDCWD<"):
                self._base(proc, dirfd)  # learn the cwd anyway
            return _norm(path)
        base = self._base(proc, dirfd)
        if base is None:
            return path
        if not path:
            return base  # AT_EMPTY_PATH: the dirfd itself
        return _norm(base.rstrip("/") + "/" + path)

    def _openat_fast(self, pid: int, proc: _Proc, t: float, m: re.Match[str]) -> None:
        # The hot path: ~80% of a real install trace is openat. Keep per-line work minimal.
        dirfd_raw, dirfd, danno, qpath, trunc, flags, mode, ret_s, ranno, err = m.groups()[-10:]
        path = qpath[1:-1]
        if "\\" in path:
            path = _unescape(path)
        if trunc:
            path += "..."
            qpath += "..."
        if path[:1] != "/":
            path = self._resolve(proc, dirfd_raw, path)
        else:
            if danno is not None and dirfd == "AT_FDCWD":
                proc.cwd = _unescape(danno) if "\\" in danno else danno
            if "/." in path or "//" in path:
                path = posixpath.normpath(path)
        mode_info = _OPEN_MODES.get(flags)
        if mode_info is None:
            mode_info = _open_mode(flags)
            if len(_OPEN_MODES) < 4096:
                _OPEN_MODES[flags] = mode_info
        op, also_read, ftype = mode_info
        if ranno is not None and (ranno[:1] != "/" or ranno[-1] == ">"):  # pipe/socket/device
            ftype = _anno_ftype(ranno) or ftype
        if len(qpath) > ARG_CAP:
            qpath = qpath[:ARG_CAP] + "..."
        self._emit(
            Event(
                t=t, phase=self.phase, pid=pid, ppid=proc.ppid, exe=proc.exe, comm=proc.comm,
                syscall="openat", kind=KIND_FILE, op=op, ret=None if ret_s == "?" else int(ret_s),
                errno=err, args=[dirfd_raw, qpath, flags] if mode is None else [dirfd_raw, qpath, flags, mode],
                path=path, read=also_read, ftype=ftype, truncated=bool(trunc),
                probe=sensitive_category(path) if err is not None else None,
            )
        )  # fmt: skip

    def _h_probe_line(self, pid: int, proc: _Proc, t: float, name: str, body: str) -> None:
        op, has_dirfd = _PROBES[name]
        start = len(name) + 1
        m = (_PROBE_DIRFD_RE if has_dirfd else _PROBE_PATH_RE).match(body, start)
        if m is None:
            raise ValueError("probe without a path argument")
        dirfd = m.group(1) if has_dirfd else None
        qpath, trunc = (m.group(2), m.group(3)) if has_dirfd else (m.group(1), m.group(2))
        text = _unquote(qpath + (trunc or ""))
        if text is None:
            raise ValueError("probe path is not a string")
        if not text[0]:  # AT_EMPTY_PATH: a stat of an fd already open, whose open is the event
            self.stats.ignored += 1
            return
        path = self._resolve(proc, dirfd, text[0])
        probe = sensitive_category(path)
        if probe is None:
            self.stats.ignored += 1
            return
        end = body.rfind(") = ")
        ret, err, _, _ = self._ret(body[end + 1 :] if end >= 0 else " = ?")
        args = [dirfd, qpath] if dirfd is not None else [qpath]
        self._emit(
            Event(
                t=t, phase=self.phase, pid=pid, ppid=proc.ppid, exe=proc.exe, comm=proc.comm,
                syscall=name, kind=KIND_FILE, op=op, ret=ret, errno=err, args=_cap(args), path=path,
                truncated=text[1], probe=probe,
            )
        )  # fmt: skip

    def _h_probe(self, pid: int, proc: _Proc, t: float, name: str, args: list[str], rest: str) -> None:
        raise ValueError("probes are parsed by _h_probe_line")  # registered so feed() knows the name

    def _h_listen(self, pid: int, proc: _Proc, t: float, name: str, args: list[str], rest: str) -> None:
        ret, err, _, _ = self._ret(rest)
        anno = _anno(args[0]) if args else None
        family, address, port = None, None, None
        if anno is not None:
            m = _LISTEN_ANNO_RE.match(anno)
            if m is not None:
                family = "AF_INET6" if m.group(1).endswith("v6") else "AF_INET"
                address, port = m.group(2) or m.group(3), int(m.group(4))
            elif anno.startswith("UNIX"):
                family = "AF_UNIX"
            elif anno.startswith(("TCPv6", "UDPv6")):
                family = "AF_INET6"
            elif anno.startswith(("TCP", "UDP")):
                family = "AF_INET"
        self._emit(
            Event(
                t=t, phase=self.phase, pid=pid, ppid=proc.ppid, exe=proc.exe, comm=proc.comm,
                syscall=name, kind=KIND_NETWORK, op="listen", ret=ret, errno=err, args=_cap(args),
                family=family, address=address, port=port,
            )
        )  # fmt: skip

    def _ret(self, rest: str) -> tuple[int | None, str | None, str | None, int | None]:
        """(ret, errno, annotation, translated pid) from ` = ...`."""
        m = _RET_RE.match(rest)
        if m is None:
            return None, None, None, None
        ret_s, anno, xpid, err = m.groups()
        if ret_s == "?":
            return None, err, anno, None
        return (
            (int(ret_s, 16) if ret_s.startswith("0x") else int(ret_s)),
            err,
            anno,
            (int(xpid) if xpid else None),
        )

    def _path_arg(self, proc: _Proc, args: list[str], dirfd_i: int | None, path_i: int) -> tuple[str, bool]:
        text = _unquote(args[path_i])
        if text is None:
            raise ValueError("path argument is not a string")
        dirfd = args[dirfd_i] if dirfd_i is not None else None
        return self._resolve(proc, dirfd, text[0]), text[1]

    def _h_open(self, pid: int, proc: _Proc, t: float, name: str, args: list[str], rest: str) -> None:
        ret, err, anno, _ = self._ret(rest)
        if name == "creat":
            path, trunc = self._path_arg(proc, args, None, 0)
            op, also_read, ftype = "write", False, None
        else:
            dirfd_i = None if name == "open" else 0
            path_i = 0 if name == "open" else 1
            path, trunc = self._path_arg(proc, args, dirfd_i, path_i)
            flags = args[path_i + 1]
            if name == "openat2":
                fm = _OPENAT2_FLAGS_RE.search(flags)
                flags = fm.group(1) if fm else "O_RDONLY"
            op, also_read, ftype = _open_mode(flags)
        if anno is not None:
            ftype = _anno_ftype(anno) or ftype
        self._emit(
            Event(
                t=t, phase=self.phase, pid=pid, ppid=proc.ppid, exe=proc.exe, comm=proc.comm,
                syscall=name, kind=KIND_FILE, op=op, ret=ret, errno=err, args=_cap(args), path=path,
                read=also_read, ftype=ftype, truncated=trunc,
                probe=sensitive_category(path) if err is not None else None,
            )
        )  # fmt: skip

    def _h_file(self, pid: int, proc: _Proc, t: float, name: str, args: list[str], rest: str) -> None:
        op, dirfd_i, path_i, dirfd2_i, path2_i = _FILE_OPS[name]
        ret, err, _, _ = self._ret(rest)
        ftype = None
        trunc = trunc2 = False
        if path_i is None:  # fchmod / ftruncate: the fd annotation is the path
            anno = _anno(args[0]) if args else None
            path = _anno_path(anno) if anno is not None else None
            ftype = _anno_ftype(anno) if anno is not None else None
        else:
            path, trunc = self._path_arg(proc, args, dirfd_i, path_i)
        path2 = None
        if path2_i is not None:
            path2, trunc2 = self._path_arg(proc, args, dirfd2_i, path2_i)
        self._emit(
            Event(
                t=t, phase=self.phase, pid=pid, ppid=proc.ppid, exe=proc.exe, comm=proc.comm,
                syscall=name, kind=KIND_FILE, op=op, ret=ret, errno=err, args=_cap(args), path=path,
                path2=path2, ftype=ftype, truncated=trunc or trunc2,
            )
        )  # fmt: skip

    def _h_symlink(self, pid: int, proc: _Proc, t: float, name: str, args: list[str], rest: str) -> None:
        # symlink(target, linkpath) / symlinkat(target, newdirfd, linkpath): path2 is the new name;
        # a relative target is relative to the link's directory, not to the cwd.
        ret, err, _, _ = self._ret(rest)
        target = _unquote(args[0])
        if target is None:
            raise ValueError("symlink target is not a string")
        link, trunc = self._path_arg(proc, args, 1 if name == "symlinkat" else None, len(args) - 1)
        path = target[0]
        if not path.startswith("/") and link.startswith("/"):
            path = _norm(posixpath.dirname(link) + "/" + path)
        self._emit(
            Event(
                t=t, phase=self.phase, pid=pid, ppid=proc.ppid, exe=proc.exe, comm=proc.comm,
                syscall=name, kind=KIND_FILE, op="link", ret=ret, errno=err, args=_cap(args), path=path,
                path2=link, truncated=trunc or target[1],
            )
        )  # fmt: skip

    def _h_exec(self, pid: int, proc: _Proc, t: float, name: str, args: list[str], rest: str) -> None:
        ret, err, _, _ = self._ret(rest)
        off = 1 if name == "execveat" else 0
        path, trunc = self._path_arg(proc, args, 0 if off else None, off)
        argv, argv_trunc = _str_array(args[off + 1]) if len(args) > off + 1 else (None, False)
        env, env_trunc = _str_array(args[off + 2]) if len(args) > off + 2 else (None, False)
        if env is not None and len(env) > ENV_CAP:
            env, env_trunc = env[:ENV_CAP], True
        self._emit(
            Event(
                t=t, phase=self.phase, pid=pid, ppid=proc.ppid, exe=proc.exe, comm=proc.comm,
                syscall=name, kind=KIND_PROCESS, op="exec", ret=ret, errno=err, args=_cap(args[:off + 1]),
                path=path, argv=argv, env=env, truncated=trunc or argv_trunc or env_trunc,
            )
        )  # fmt: skip
        if err is None and ret == 0:
            proc.set_exe(path)

    def _h_clone(self, pid: int, proc: _Proc, t: float, name: str, args: list[str], rest: str) -> None:
        ret, err, _, xpid = self._ret(rest)
        birth = self._inflight.pop(pid, None)
        if birth is None:
            birth = self._new_birth(pid, proc, ", ".join(args))
        event = Event(
            t=t, phase=self.phase, pid=pid, ppid=proc.ppid, exe=proc.exe, comm=proc.comm,
            syscall=name, kind=KIND_PROCESS, op="clone", ret=ret, errno=err, args=_cap(args),
            child_pid=None,
        )  # fmt: skip
        if err is not None or ret is None or ret <= 0:
            self._emit(event)
            if err is not None:  # no child (a fork restarted by a signal: ERESTARTNOINTR, or EAGAIN)
                self._forget(birth)  # else it stays a candidate forever and blocks the pid order
                if self._unresolved:
                    self._match_unresolved()
                    self._drain()
            return
        birth.value = ret
        # The host pid is in the line when the caller shares strace's namespace (or strace
        # translated it): the child is named exactly.
        exact = xpid if xpid is not None else (ret if birth.ns == 0 else None)
        if exact is not None:
            self._emit(replace(event, child_pid=exact))
            self._bind(birth, exact)
            self._named_child(birth, exact)
            return
        if birth.host is not None:  # the child appeared while the call was in flight
            self._emit(replace(event, child_pid=birth.host))
            self._bind(birth, birth.host)
            return
        nspid = birth.child_nspid()
        waiting = self._anchors.pop((birth.child_ns, nspid), None) if nspid is not None else None
        if waiting is not None and waiting in self._unresolved:  # its set_tid_address named it
            self._emit(replace(event, child_pid=waiting))
            self._settle_parent(waiting, birth)
            self._drain()
            return
        # The child has not shown up: the event waits for it in its place in the output.
        slot = self._slot
        if slot is None:
            slot = _Slot()
            slot.done = True
            self._queue.append(slot)
        slot.event = event
        slot.birth = birth
        birth.slot = slot
        self._open[(birth.ns, ret)] = birth
        if len(self._open) > OPEN_CAP:  # children that never showed up (a cut log): give up on the oldest
            oldest = min(self._open.values(), key=lambda b: b.seq)
            self._forget(oldest)
        if self._unresolved:
            self._match_unresolved()
            self._drain()

    def _named_child(self, birth: _Birth, child: int) -> None:
        """A clone whose child's host pid the log names: the pre-namespace-parsing logic."""
        proc_exe, proc_cwd = birth.exe, birth.cwd
        known = self._procs.get(child)
        if known is None:
            self._procs[child] = _Proc(birth.parent, proc_exe, proc_cwd, birth.child_ns)
        elif child in self._unresolved:
            self._settle_parent(child, birth)
            self._match_unresolved()
            self._drain()
        elif known.ppid != birth.parent:
            known.ppid = birth.parent  # the single-candidate guess was wrong: trust the return value

    def _new_birth(self, pid: int, proc: _Proc, text: str) -> _Birth:
        child_ns = proc.ns
        if "CLONE_NEWPID" in text:
            child_ns = self._next_ns
            self._next_ns += 1
        self._last_ns = child_ns
        self._seq += 1
        return _Birth(pid, proc, proc.ns, child_ns, self._seq)

    def _bind(self, birth: _Birth, host: int) -> None:
        """Remember the host pid of the child under both names: the caller's and its own."""
        birth.host = host
        if birth.value is not None:
            self._host_of[(birth.ns, birth.value)] = host
        nspid = birth.child_nspid()
        if nspid is not None:
            self._host_of[(birth.child_ns, nspid)] = host
        self._open.pop((birth.ns, birth.value), None) if birth.value is not None else None
        slot = birth.slot
        if slot is not None:
            birth.slot = None
            slot.birth = None
            if slot.event is not None:
                slot.event = replace(slot.event, child_pid=host)

    def _forget(self, birth: _Birth) -> None:
        """Stop waiting for a clone's child: its event goes out without a child_pid."""
        if birth.value is not None:
            self._open.pop((birth.ns, birth.value), None)
        slot = birth.slot
        if slot is not None:
            birth.slot = None
            slot.birth = None
        birth.host = -1  # never a candidate again

    def _h_kill(self, pid: int, proc: _Proc, t: float, name: str, args: list[str], rest: str) -> None:
        ret, err, _, _ = self._ret(rest)
        target_tok = args[1] if name == "tgkill" else args[0]
        m = _PID_ARG_RE.match(target_tok)
        target = None
        if m is not None:
            target = int(m.group(2)) if m.group(2) else self._host_pid(proc.ns, int(m.group(1)))
        self._emit(
            Event(
                t=t, phase=self.phase, pid=pid, ppid=proc.ppid, exe=proc.exe, comm=proc.comm,
                syscall=name, kind=KIND_PROCESS, op="signal", ret=ret, errno=err, args=_cap(args),
                signal=args[-1], target_pid=target,
            )
        )  # fmt: skip

    def _host_pid(self, ns: int, value: int) -> int | None:
        """A pid argument, seen from namespace `ns`, as a host pid (None if it names no task we know).

        0 and -1 (own group, everyone) stay as they are; -N names the group of N."""
        if ns == 0 or value in (0, -1):
            return value
        host = self._host_of.get((ns, abs(value)))
        if host is None:
            return None
        return host if value > 0 else -host

    def _h_tid(self, pid: int, proc: _Proc, t: float, name: str, args: list[str], rest: str) -> None:
        # set_tid_address returns the caller's own pid in its namespace; libc calls it at every
        # program start (musl also in fork children). It pairs the log's host pid with the pid
        # the parent's clone returned: proof of who the parent is.
        self.stats.ignored += 1
        ret, err, _, xpid = self._ret(rest)
        if err is not None or ret is None or ret <= 0:
            return
        if pid in self._unresolved:
            for birth in self._candidates.get(pid, ()):
                if birth.host is None and birth.value is not None and birth.child_nspid() == ret:
                    self._settle_parent(pid, birth)
                    self._match_unresolved()
                    self._drain()
                    return
            nss = {b.child_ns for b in self._candidates.get(pid, ())}
            for ns in nss:  # its clone is still in flight (a vfork): matched when it returns
                self._anchors[(ns, ret)] = pid
            return
        self._host_of[(proc.ns, ret)] = pid if xpid is None else xpid

    def _h_presence(self, pid: int, proc: _Proc, t: float, name: str, args: list[str], rest: str) -> None:
        # set_robust_list: libc's first call in every new thread and fork child. It is traced only
        # so that a child shows up in the log right after its clone (see _proc), not at its exit.
        self.stats.ignored += 1

    def _h_chdir(self, pid: int, proc: _Proc, t: float, name: str, args: list[str], rest: str) -> None:
        self.stats.ignored += 1
        ret, err, _, _ = self._ret(rest)
        if err is not None or ret != 0:
            return
        if name == "chdir":
            text = _unquote(args[0])
            if text is not None:
                new = self._resolve(proc, None, text[0])
                proc.cwd = new if new.startswith("/") else None
        else:
            anno = _anno(args[0])
            if anno is not None and anno.startswith("/"):
                proc.cwd = _anno_path(anno)

    def _h_net(self, pid: int, proc: _Proc, t: float, name: str, args: list[str], rest: str) -> None:
        if name in ("connect", "bind"):
            addr_tok = args[1]
        elif name == "sendto":
            addr_tok = args[4] if len(args) > 4 else "NULL"
        else:  # sendmsg: only the msg_name part, never the payload
            msg = args[1]
            cut = msg.find("msg_namelen")
            addr_tok = msg[:cut] if "msg_name={" in msg[:cut] else "NULL"
        sa = _sockaddr(addr_tok) if addr_tok != "NULL" else None
        if sa is None or sa[0] not in ("AF_INET", "AF_INET6", "AF_UNIX"):
            self.stats.ignored += 1
            return
        ret, err, _, _ = self._ret(rest)
        self._emit(
            Event(
                t=t, phase=self.phase, pid=pid, ppid=proc.ppid, exe=proc.exe, comm=proc.comm,
                syscall=name, kind=KIND_NETWORK, op="sendto" if name == "sendmsg" else name, ret=ret,
                errno=err, args=_cap(args), family=sa[0], address=sa[1], port=sa[2],
            )
        )  # fmt: skip

    # ------------------------------------------------------------ process tree

    def _proc(self, pid: int) -> _Proc:
        proc = self._procs.get(pid)
        if proc is not None:
            return proc
        if not self._seen_any:
            self._seen_any = True
            self._first_host = pid
            proc = _Proc(None, None, self.initial_cwd)
        else:
            proc = self._adopt(pid)
        self._procs[pid] = proc
        if pid in self._unresolved and len(self._unresolved) > 1:
            self._match_unresolved()  # it may be the last child a group of clones waited for
            self._drain()
        return proc

    def _adopt(self, pid: int) -> _Proc:
        """A pid seen for the first time: find the clone it came from.

        Its first line comes after its parent's clone entered (strace prints the entry before the
        child exists), so the candidates are the clones in flight and those returned whose child
        has not shown up yet. One candidate: that is the parent. Several, even of one caller (which
        of its clones matters: a clone still in flight may yet be restarted and make no child), and
        the pid waits (its events are held) until its set_tid_address, a return value or the pid
        order (see _match_unresolved) tells which.
        """
        cands = [b for p, b in self._inflight.items() if b.host is None and p != pid]
        cands += self._open.values()
        if not cands:
            # Its clone was lost, or (pre-namespace logs) a pid named by no return yet.
            parents = [p for p, pend in self._pending.items() if pend[2] in _CLONES and p != pid]
            if len(parents) == 1:
                parent = self._procs.get(parents[0])
                return _Proc(parents[0], parent.exe if parent else None, parent.cwd if parent else None)
            return _Proc(None, None, None, self._last_ns)
        if len(cands) == 1:
            return self._claim(pid, cands[0])
        proc = _Proc(None, None, None, cands[0].child_ns)
        self._unresolved.add(pid)
        self._candidates[pid] = cands
        return proc

    def _claim(self, pid: int, birth: _Birth) -> _Proc:
        proc = _Proc(birth.parent, birth.exe, birth.cwd, birth.child_ns)
        birth.host = pid
        if birth.value is not None:
            self._bind(birth, pid)
        if self._unresolved:
            self._match_unresolved()  # one candidate fewer for the pids still waiting
        self._drain()
        return proc

    def _settle_parent(self, pid: int, birth: _Birth | None) -> None:
        """An unresolved pid's parent is known (or, with None, will never be)."""
        proc = self._procs[pid]
        self._unresolved.discard(pid)
        self._candidates.pop(pid, None)
        if birth is not None:
            proc.ppid = birth.parent
            proc.ns = birth.child_ns
            if not proc.execd:
                proc.exe, proc.comm = birth.exe, birth.comm
            if proc.cwd is None:
                proc.cwd = birth.cwd
            birth.host = pid
            if birth.value is not None:
                self._bind(birth, pid)
            self._resolved[pid] = (birth.parent, birth.exe)
        if proc.gone:
            del self._procs[pid]

    def _match_unresolved(self, guess: bool = False) -> None:
        """Settle the pids whose parent is open, with what is known now.

        Pids are handed out in order in the sandbox's namespace and on the host alike, so once
        every candidate clone has returned and has a child among the waiting pids, the k-th
        smallest returned pid belongs to the k-th smallest host pid. With `guess` (the log ended,
        or too much is held), the waiting pids take the candidates in that order anyway.
        """
        changed = True
        while changed and self._unresolved:
            changed = False
            for pid in sorted(self._unresolved):
                cands = [b for b in self._candidates.get(pid, ()) if b.host is None]
                if len(cands) <= 1:
                    self._settle_parent(pid, cands[0] if cands else None)
                    changed = True
            if changed:
                continue
            waiting = sorted(self._unresolved, key=self._host_order)
            births = {id(b): b for pid in waiting for b in self._candidates.get(pid, ()) if b.host is None}
            pool = sorted(births.values(), key=lambda b: (b.value is None, b.value or 0, b.seq))
            if not guess and (len(pool) != len(waiting) or any(b.value is None for b in pool)):
                return
            if guess:
                self.stats.pid_guesses += len(waiting)
            for pid, birth in zip(waiting, pool, strict=False):
                self._settle_parent(pid, birth)
            for pid in list(self._unresolved):
                self._settle_parent(pid, None)
            return

    def _host_order(self, pid: int) -> int:
        """Host pids in allocation order: they wrap at pid_max, back to low numbers."""
        return (pid - self._first_host) % _PID_MAX

    def _give_up(self, final: bool = True) -> None:
        """End of log or HOLD_CAP: decide every open question with the best guess, flush all.

        At HOLD_CAP (not `final`) the clones still waiting for a child go out without child_pid,
        but stay candidates, so the child still finds its parent when it shows up."""
        if self._unresolved:
            self._match_unresolved(guess=True)
        for birth in list(self._open.values()):
            if final:
                self._forget(birth)
            elif birth.slot is not None:
                birth.slot.birth = None
                birth.slot = None
        self._drain(force=True)

    def _emit(self, event: Event) -> None:
        slot = self._slot
        if slot is not None:
            slot.event = event
        elif self._queue or self._unresolved:
            self._queue.append(event)
            if len(self._queue) > HOLD_CAP:
                self._give_up(final=False)
        else:
            self.out.append(event)
            self.stats.events += 1

    def _drain(self, force: bool = False) -> None:
        """Move finished events from the front of the queue to `out`, keeping log order.

        The queue holds back events while a call at its front is unfinished, or while a pid's
        parent is unknown. `force` gives up on both (HOLD_CAP reached, or end of log).
        """
        if self._unresolved and not force:
            return
        queue, out, resolved = self._queue, self.out, self._resolved
        while queue:
            item = queue[0]
            event: Event
            if isinstance(item, _Slot):
                if (not item.done or item.birth is not None) and not force:
                    break
                queue.popleft()
                if item.birth is not None:  # its child never showed up: out without child_pid
                    item.birth.slot = None
                    item.birth = None
                if not item.done:
                    item.abandoned = True
                    continue
                if item.event is None:
                    continue
                event = item.event
            else:
                event = item
                queue.popleft()
            fix = resolved.get(event.pid) if resolved else None
            if fix is not None and event.ppid is None:
                if event.exe is None and fix[1] is not None:
                    event = replace(event, ppid=fix[0], exe=fix[1], comm=posixpath.basename(fix[1]))
                else:
                    event = replace(event, ppid=fix[0])
            out.append(event)
            self.stats.events += 1
        if force:
            self._unresolved.clear()
        if not queue:
            resolved.clear()


def parse_log(
    source: Path | str | Iterable[str],
    phase: str,
    *,
    initial_cwd: str | None = None,
    stats: ParseStats | None = None,
) -> Iterator[Event]:
    """Stream events from an strace log (path or lines). See the module docstring."""
    if isinstance(source, str | Path):
        # strace escapes every non-ASCII byte, so latin-1 never fails and round-trips exactly.
        with open(source, encoding="latin-1", newline="\n") as fh:
            yield from parse_file_lines(fh, phase, initial_cwd=initial_cwd, stats=stats)
        return
    parser = StraceParser(phase, initial_cwd=initial_cwd, stats=stats)
    out = parser.out
    feed = parser.feed
    for line in source:
        feed(line if line.endswith("\n") else line + "\n")
        if len(out) >= _BATCH:
            yield from out
            out.clear()
    parser.finish()
    yield from out
    out.clear()


def parse_file_lines(
    lines: Iterable[str], phase: str, *, initial_cwd: str | None = None, stats: ParseStats | None = None
) -> Iterator[Event]:
    """`parse_log` of a log's lines as its file gives them in text mode: each ends with a newline
    but perhaps the last, a line the log was cut in (osptrack.trace.follow reads a growing log so)."""
    parser = StraceParser(phase, initial_cwd=initial_cwd, stats=stats)
    out = parser.out
    feed = parser.feed
    for line in lines:
        feed(line)
        if len(out) >= _BATCH:
            yield from out
            out.clear()
    parser.finish()
    yield from out
    out.clear()
