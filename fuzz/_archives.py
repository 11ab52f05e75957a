"""Shared archive construction for the archive and metadata fuzzers."""

from __future__ import annotations

import contextlib
import io
import tarfile
import time
import warnings
import zipfile
from pathlib import Path

from osptrack.ecosystems.npm import Npm
from osptrack.ecosystems.pypi import PyPI
from osptrack.errors import BadInput

warnings.filterwarnings("ignore", "Duplicate name", UserWarning)  # duplicates are wanted here

SUFFIXES = (".whl", ".tar.gz", ".zip", ".tgz", ".tar.bz2", ".tar")
SLOW_S = 5.0  # one metadata read of a ~100 KiB input taking longer than this is a hang


def build(kind: str, members: list[tuple[str, bytes, str]]) -> bytes:
    """members: (name, data, type) with type in file/dir/symlink/hardlink/fifo."""
    buf = io.BytesIO()
    if kind == "zip":
        with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name, data, _ in members:
                with contextlib.suppress(ValueError, UnicodeEncodeError, IndexError):
                    zf.writestr(name or "x", data)
        return buf.getvalue()
    mode = {"tar": "w", "tgz": "w:gz", "tbz": "w:bz2"}[kind]
    with tarfile.open(fileobj=buf, mode=mode, format=tarfile.PAX_FORMAT) as tf:
        for name, data, typ in members:
            info = tarfile.TarInfo(name)
            if typ == "file":
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
                continue
            info.type = {
                "dir": tarfile.DIRTYPE,
                "symlink": tarfile.SYMTYPE,
                "hardlink": tarfile.LNKTYPE,
                "fifo": tarfile.FIFOTYPE,
            }[typ]
            info.linkname = data.decode("latin-1")
            tf.addfile(info)
    return buf.getvalue()


def read_all(path: Path) -> None:
    """Every metadata reader the CLI runs on an untrusted archive: only BadInput may escape."""
    for eco in (PyPI(), Npm()):
        t0 = time.monotonic()
        try:
            meta = eco.read_metadata(path)
            assert meta.name and meta.version
        except BadInput as exc:
            assert "\n" not in str(exc), f"multi-line error: {exc!r}"
        took = time.monotonic() - t0
        assert took < SLOW_S, f"{eco.name} took {took:.1f} s"
