"""Typed trace events: one `Event` per traced syscall (or process exit), as written to events.jsonl.

The common fields of docs/formats.md are declared without defaults so they are always encoded,
`null` included. Kind-specific fields default to None and are left out of the JSON when unset
(`omit_defaults`), which keeps a 100k-event log small.

Additions beyond docs/formats.md (all optional, omitted when unset):
- `read`: True on a `write` open that was O_RDWR, i.e. the file was also opened for reading.
  One event per syscall keeps counts honest; the flag carries the second access mode.
- `ftype`: what an open actually reached when it is not a plain file, from the `-yy` annotation
  and the flags: `dir` (O_DIRECTORY), `path` (O_PATH, no I/O possible), `pipe`, `socket`,
  `anon` (anon_inode: eventfd, epoll, ...), `chr`/`blk` (device nodes). Aggregation ignores
  `dir`, `path`, `pipe`, `socket` and `anon` opens: they are not file reads or writes.
- `signal`: the signal name for op `signal` (kill/tgkill sent, or a received `--- SIG... ---`)
  and for op `exit` when the process was killed (`+++ killed by SIGKILL +++`).
- `target_pid`: the pid a kill/tgkill was aimed at (host pid when strace could translate it).
- `truncated`: True when strace cut a string argument (`"..."...`) of this event.
- `probe`: the category (osptrack.trace.sensitive) of a sensitive path that was looked at without
  being read: a stat/access/readlink (ops `stat`, `access`, `readlink`, emitted only for such
  paths) or a failed open. Set even when the file is absent.
- `lookup_probe`: True on a connect of a UDP socket that never sent a byte: glibc's getaddrinfo
  choosing a source address (RFC 6724), not a connection. Set by the run from the fake network's
  records.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import msgspec

from osptrack.jsonio import atomic_write_bytes
from osptrack.trace.common import KIND_FILE as KIND_FILE  # re-exported: where most code imports them
from osptrack.trace.common import KIND_NETWORK as KIND_NETWORK
from osptrack.trace.common import KIND_PROCESS as KIND_PROCESS

FILE_OPS = (
    "read", "write", "delete", "create", "rename", "mkdir", "chmod", "link", "truncate", "exec",
    "stat", "access", "readlink",
)  # fmt: skip
PROCESS_OPS = ("exec", "clone", "exit", "signal")
NETWORK_OPS = ("connect", "bind", "listen", "sendto")

# Open targets that are not files: never a Read/Write in result.json.
NON_FILE_FTYPES = frozenset({"dir", "path", "pipe", "socket", "anon"})


class Event(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    """One traced event. `pid`/`ppid`/`child_pid` are host pids (as strace sees them).

    Not tracked by the cyclic garbage collector (`gc=False`): its fields are strings, numbers
    and lists of strings, so it can never be part of a cycle, and a phase's decoder holds tens
    of thousands of them until the log is whole, which each collection would walk again.
    """

    t: float
    phase: str
    pid: int
    ppid: int | None
    exe: str | None  # image of the *calling* process; for an execve, the image that called it
    comm: str | None
    syscall: str
    kind: str
    op: str
    ret: int | None
    errno: str | None
    args: list[str]
    path: str | None = None  # absolute where known; for execve the new program
    path2: str | None = None  # rename / link destination
    argv: list[str] | None = None
    env: list[str] | None = None
    child_pid: int | None = None
    exit_code: int | None = None
    family: str | None = None
    address: str | None = None
    port: int | None = None
    read: bool = False
    ftype: str | None = None
    signal: str | None = None
    target_pid: int | None = None
    truncated: bool = False
    probe: str | None = None
    lookup_probe: bool = False

    @property
    def ok(self) -> bool:
        """The call succeeded (no errno). Unfinished calls (ret None, no errno) count as ok."""
        return self.errno is None

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = msgspec.to_builtins(self)
        return result


_encoder = msgspec.json.Encoder()


def encode_event(event: Event) -> bytes:
    """One JSON object, no newline."""
    return _encoder.encode(event)


def encode_events_jsonl(events: Iterable[Event]) -> bytes:
    buf = bytearray()
    for event in events:
        _encoder.encode_into(event, buf, len(buf))
        buf += b"\n"
    return bytes(buf)


def write_events_jsonl(path: Path, events: Iterable[Event]) -> int:
    """Atomically write events.jsonl; returns the number of events written."""
    data = encode_events_jsonl(events)
    atomic_write_bytes(path, data)
    return data.count(b"\n")


_decoder = msgspec.json.Decoder(Event)


def read_events_jsonl(path: Path) -> list[Event]:
    return list(EventLog(path))


class EventLog:
    """events.jsonl as a re-iterable: each pass reads the file again, one event at a time, so a
    consumer that needs several passes never holds the run's events."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __iter__(self) -> Iterator[Event]:
        return map(_decoder.decode, self.lines())

    def lines(self) -> Iterator[bytes]:
        """Each event's line, undecoded (a pass that needs only some events decodes those)."""
        with self.path.open("rb", buffering=1 << 20) as fh:
            yield from filter(bytes.strip, fh)  # blank lines are no event; skipped in C


def decode_event(line: bytes) -> Event:
    return _decoder.decode(line)
