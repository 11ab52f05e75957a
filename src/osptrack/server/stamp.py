"""The code a server runs, stamped at its start and re-checked before every fork, so that a
request never runs old code: every file of the osptrack package (the eBPF loader binary lives in
it, under trace/ebpf/bin) and the interpreter, by path, size and mtime."""

from __future__ import annotations

import os
import sys

Stamp = tuple[tuple[str, int, int], ...]


def _entry(path: str) -> tuple[str, int, int]:
    try:
        st = os.stat(path)
    except OSError:
        return (path, -1, -1)
    return (path, st.st_size, st.st_mtime_ns)


def _walk(root: str, out: list[tuple[str, int, int]]) -> None:
    try:
        entries = list(os.scandir(root))
    except OSError:
        out.append((root, -1, -1))
        return
    for entry in entries:
        if entry.name == "__pycache__":
            continue  # written by the interpreter as it imports: not the source
        if entry.is_dir(follow_symlinks=False):
            _walk(entry.path, out)
            continue
        try:
            st = entry.stat()
        except OSError:
            out.append((entry.path, -1, -1))
            continue
        out.append((entry.path, st.st_size, st.st_mtime_ns))


def stamp(package: str) -> Stamp:
    out: list[tuple[str, int, int]] = []
    _walk(package, out)
    out.append(_entry(sys.executable))
    out.append(_entry(os.path.realpath(sys.executable)))
    return tuple(sorted(out))
