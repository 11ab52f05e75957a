"""Reading a phase's trace log while its tracer still writes it, so the phase's digest runs while
the phase does and only the tail is left when it exits (docs/performance.md, "Digesting while
the phase runs").

`chunks(path, done)` yields what the writer has appended, as it comes, and ends at the end of
the file only once `done` is set: the runner sets it when the tracer process has exited (strace,
or the resident eBPF tracer's client, which exits once the tracer has completed the log). A
record or line cut between two reads is the reader's to keep until it is whole: `lines` does so
for strace's text log, EbpfLogReader.read_chunks for the binary one.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

# How long the reader sleeps at the end of the log before looking again. A wake-up costs this
# machine's thread about 0.1-0.2 ms of CPU (docs/performance.md, "The follower's CPU"), and the
# resident eBPF tracer writes in bursts (every 512 KiB or 500 ms); the end of the log is never
# waited for: `done` wakes the reader at once.
POLL_S = 0.1
CHUNK_BYTES = 1 << 18  # per read: the parser's turn between two looks stays short


def chunks(
    path: Path, done: threading.Event, chunk_bytes: int = CHUNK_BYTES, poll_s: float = POLL_S
) -> Iterator[bytes]:
    """The bytes of `path` as its writer appends them, until `done` is set and all are read.

    The log does not exist until the tracer has started; if it never appears, FileNotFoundError,
    as reading the finished log would raise.
    """
    while True:
        finished = done.is_set()
        try:
            fh = open(path, "rb", buffering=0)  # noqa: SIM115 - closed below; one read() per look
            break
        except FileNotFoundError:
            if finished:
                raise
            done.wait(poll_s)
    with fh:
        while True:
            finished = done.is_set()  # before the read: a set `done` and then EOF is the end
            data = fh.read(chunk_bytes)
            if data:
                yield data
            elif finished:
                return
            else:
                done.wait(poll_s)


def lines(path: Path, done: threading.Event, chunk_bytes: int = CHUNK_BYTES) -> Iterator[str]:
    """The lines of a growing text log as a text-mode read of the finished file gives them
    (latin-1, split at "\\n" only, each ending with it but perhaps the last)."""
    rest = ""
    for data in chunks(path, done, chunk_bytes):
        text = rest + data.decode("latin-1") if rest else data.decode("latin-1")
        cut = text.rfind("\n") + 1
        rest = text[cut:]
        if cut:
            parts = text[: cut - 1].split("\n")
            for part in parts:
                yield part + "\n"
    if rest:
        yield rest
