"""Atomic writes and fast JSON, shared by every writer in the project."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson


def dumps(obj: Any, pretty: bool = False) -> bytes:
    opts = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
    if pretty:
        opts |= orjson.OPT_INDENT_2
    return orjson.dumps(obj, option=opts)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temp file in the same folder, fsync, then rename over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would make results unreadable to other users
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, dumps(obj, pretty=True) + b"\n")


def write_jsonl(path: Path, rows: Iterable[Any]) -> None:
    atomic_write_bytes(path, b"".join(dumps(r) + b"\n" for r in rows))


def read_jsonl(path: Path) -> list[Any]:
    with path.open("rb") as fh:
        return [orjson.loads(line) for line in fh if line.strip()]
