"""Read one metadata member out of an archive, bounded, without extracting anything."""

from __future__ import annotations

import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from osptrack.errors import BadInput

MAX_MEMBER_BYTES = 4 << 20  # metadata files are small; anything bigger is hostile
MAX_MEMBERS_SCANNED = 20000


def read_member(archive: Path, want: Callable[[str], bool]) -> tuple[str, bytes] | None:
    """The first regular-file member whose name satisfies `want`, as (name, bytes)."""
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                for i, info in enumerate(zf.infolist()):
                    if i > MAX_MEMBERS_SCANNED:
                        break
                    if not info.is_dir() and want(info.filename):
                        if info.file_size > MAX_MEMBER_BYTES:
                            raise BadInput(f"{archive.name}: metadata member {info.filename} is too large")
                        return info.filename, zf.read(info)
            return None
        with tarfile.open(archive, mode="r:*") as tf:
            for i, member in enumerate(tf):
                if i > MAX_MEMBERS_SCANNED:
                    break
                if member.isfile() and want(member.name):
                    if member.size > MAX_MEMBER_BYTES:
                        raise BadInput(f"{archive.name}: metadata member {member.name} is too large")
                    fh = tf.extractfile(member)
                    return (member.name, fh.read()) if fh else None
        return None
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        raise BadInput(f"{archive.name}: not a readable archive ({exc.__class__.__name__}: {exc})") from None


def depth(member: str) -> int:
    return member.strip("/").count("/")
