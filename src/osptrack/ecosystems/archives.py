"""Read one metadata member out of an archive, bounded, without extracting anything.

Everything here runs on the host against an untrusted file, so every read is capped:
- the member itself (MAX_MEMBER_BYTES), the number of members looked at (MAX_MEMBERS_SCANNED),
  and a zip's declared entry count, checked before zipfile parses its central directory;
- for compressed tarballs, the bytes decompressed while scanning for the member: a hard cap
  (MAX_DECOMPRESSED_BYTES) and a ratio cap (MAX_RATIO once past RATIO_FLOOR_BYTES), because
  tarfile must inflate every member it skips and a bomb would otherwise stall the analysis;
- the error message: one line, whatever the archive library put in its exception.

Archives are recognised by what they hold, not by their names (`identify`): a wheel saved as
`.zip` is still a wheel, and an ecosystem handed something else says what it was instead.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import lzma
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from osptrack.errors import BadInput

MAX_MEMBER_BYTES = 4 << 20  # metadata files are small; anything bigger is hostile
MAX_MEMBERS_SCANNED = 20000
MAX_ZIP_ENTRIES = 200_000  # a central directory this large costs hundreds of MB to parse
MAX_DECOMPRESSED_BYTES = 1 << 30
RATIO_FLOOR_BYTES = 64 << 20  # small archives may compress very well (all-zero test files)
MAX_RATIO = 200  # real source tarballs inflate 3-20x; bombs inflate 1000x and more

# Each decompressor wraps the open file (gzip wants it as `fileobj`, bz2 and lzma positionally).
_COMPRESSED: dict[bytes, Callable[[IO[bytes]], IO[bytes]]] = {
    b"\x1f\x8b": lambda f: gzip.GzipFile(fileobj=f, mode="rb"),  # type: ignore[dict-item,return-value]
    b"BZh": lambda f: bz2.BZ2File(f, "rb"),  # noqa: SIM115 - closed by the caller's ExitStack
    b"\xfd7zXZ": lambda f: lzma.LZMAFile(f, "rb"),  # noqa: SIM115
}


class ArchiveBomb(BadInput):
    """Decompressing the archive exceeded the size or ratio cap."""


class _Capped(io.RawIOBase):
    """A read-only stream that counts decompressed bytes and stops a bomb mid-scan."""

    def __init__(self, inner: IO[bytes], name: str, compressed_size: int) -> None:
        self.inner = inner
        self.name = name
        self.compressed = max(compressed_size, 1)
        self.total = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.inner.read(min(len(buffer), 1 << 20))
        self.total += len(data)
        if self.total > MAX_DECOMPRESSED_BYTES:
            raise ArchiveBomb(f"{self.name}: decompresses to more than {MAX_DECOMPRESSED_BYTES >> 20} MiB")
        if self.total > RATIO_FLOOR_BYTES and self.total > MAX_RATIO * self.compressed:
            raise ArchiveBomb(f"{self.name}: decompression ratio above {MAX_RATIO}:1 (an archive bomb)")
        buffer[: len(data)] = data
        return len(data)


def read_member(archive: Path, want: Callable[[str], bool]) -> tuple[str, bytes] | None:
    """The first regular-file member whose name satisfies `want`, as (name, bytes)."""
    with _one_line_errors(archive):
        if zipfile.is_zipfile(archive):
            return _read_zip(archive, want)
        return _read_tar(archive, want)


@contextlib.contextmanager
def _one_line_errors(archive: Path) -> Iterator[None]:
    try:
        yield
    except BadInput:
        raise
    except (
        tarfile.TarError,
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        EOFError,
        OSError,
        ValueError,
        lzma.LZMAError,
        struct.error,
        NotImplementedError,
        RuntimeError,
        UnicodeError,
        zlib.error,  # a damaged deflate stream, in a zip member or a gzip tarball
        IndexError,  # zipfile's is_dir() on an entry whose name is empty
    ) as exc:
        # tarfile's ReadError lists every method it tried, one per line: keep it to one line.
        detail = " ".join(str(exc).split())[:300]
        raise BadInput(
            f"{archive.name}: not a readable archive ({exc.__class__.__name__}: {detail})"
        ) from None


def _read_zip(archive: Path, want: Callable[[str], bool]) -> tuple[str, bytes] | None:
    entries = _zip_declared_entries(archive)
    if entries is not None and entries > MAX_ZIP_ENTRIES:
        raise BadInput(f"{archive.name}: zip declares {entries} entries (more than {MAX_ZIP_ENTRIES})")
    with zipfile.ZipFile(archive) as zf:
        for i, info in enumerate(zf.infolist()):
            if i > MAX_MEMBERS_SCANNED:
                break
            if not info.is_dir() and want(info.filename):
                if info.file_size > MAX_MEMBER_BYTES:
                    raise BadInput(f"{archive.name}: metadata member {info.filename!r} is too large")
                # zipfile stops at the declared size even if the stream inflates further
                with zf.open(info) as fh:
                    return info.filename, fh.read(MAX_MEMBER_BYTES)
    return None


def _zip_declared_entries(archive: Path) -> int | None:
    """Total entries from the end-of-central-directory record (zip64 aware), before parsing it."""
    with archive.open("rb") as fh:
        fh.seek(0, io.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - (1 << 16) - 22))
        tail = fh.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) < at + 22:
        return None
    entries = struct.unpack("<H", tail[at + 10 : at + 12])[0]
    loc = tail.rfind(b"PK\x06\x07", 0, at)  # zip64 locator sits just before the EOCD
    if entries == 0xFFFF and loc >= 0 and len(tail) >= loc + 20:
        offset = struct.unpack("<Q", tail[loc + 8 : loc + 16])[0]
        with archive.open("rb") as fh:
            fh.seek(min(offset, size))
            rec = fh.read(56)
        if rec[:4] == b"PK\x06\x06" and len(rec) >= 40:
            entries = struct.unpack("<Q", rec[32:40])[0]
    return int(entries)


@contextlib.contextmanager
def _open_tar(archive: Path) -> Iterator[tarfile.TarFile]:
    with contextlib.ExitStack() as stack:
        raw: IO[bytes] = stack.enter_context(archive.open("rb"))
        magic = raw.read(6)
        raw.seek(0)
        opener = next((cls for m, cls in _COMPRESSED.items() if magic.startswith(m)), None)
        inner = stack.enter_context(opener(raw)) if opener is not None else raw
        stream = io.BufferedReader(_Capped(inner, archive.name, archive.stat().st_size), 1 << 16)
        # stream mode ("r|"): members are read in order and never seeked back to
        with tarfile.open(fileobj=stream, mode="r|") as tf:
            yield tf


def _read_tar(archive: Path, want: Callable[[str], bool]) -> tuple[str, bytes] | None:
    with _open_tar(archive) as tf:
        for i, member in enumerate(tf):
            if i > MAX_MEMBERS_SCANNED:
                break
            if member.isfile() and want(member.name):
                if member.size > MAX_MEMBER_BYTES:
                    raise BadInput(f"{archive.name}: metadata member {member.name!r} is too large")
                fh = tf.extractfile(member)
                return (member.name, fh.read()) if fh else None
    return None


def tar_members(archive: Path, want: Callable[[str], bool]) -> Iterator[tuple[str, bytes | None]]:
    """Every member of a tarball in order, with its bytes when `want(name)` says so (a regular
    file; None otherwise), under the same caps as read_member. Raises BadInput past
    MAX_MEMBERS_SCANNED, so a caller that must see every member never sees a partial list."""
    with _one_line_errors(archive), _open_tar(archive) as tf:
        for i, member in enumerate(tf):
            if i >= MAX_MEMBERS_SCANNED:
                raise BadInput(f"{archive.name}: more than {MAX_MEMBERS_SCANNED} members")
            data = None
            if member.isfile() and want(member.name):
                if member.size > MAX_MEMBER_BYTES:
                    raise BadInput(f"{archive.name}: metadata member {member.name!r} is too large")
                fh = tf.extractfile(member)
                data = fh.read() if fh else None
            yield member.name, data


def depth(member: str) -> int:
    return member.strip("/").count("/")


# --- recognising an archive by its contents ---------------------------------------------------

WHEEL, SDIST, NPM, GEM, COMPOSER, CRATE, NUPKG = "wheel", "sdist", "npm", "gem", "composer", "crate", "nupkg"
KIND_LABELS = {
    WHEEL: "a Python wheel",
    SDIST: "a Python sdist",
    NPM: "an npm tarball",
    GEM: "a RubyGems gem",
    COMPOSER: "a Composer zip",
    CRATE: "a crate",
    NUPKG: "a NuGet package",
}
# The ecosystem each kind belongs to, for the hint in a wrong-kind error.
KIND_ECOSYSTEM = {
    WHEEL: "pypi",
    SDIST: "pypi",
    NPM: "npm",
    GEM: "rubygems",
    COMPOSER: "packagist",
    CRATE: "crates.io",
    NUPKG: "nuget",
}
# The suffix a toolchain needs to take the file for what it is, by container format.
CONTAINER_SUFFIX = {
    "zip": ".zip",
    "tar": ".tar",
    "tar.gz": ".tar.gz",
    "tar.bz2": ".tar.bz2",
    "tar.xz": ".tar.xz",
}
_MAGIC_CONTAINER = {b"\x1f\x8b": "tar.gz", b"BZh": "tar.bz2", b"\xfd7zXZ": "tar.xz"}


@dataclass(frozen=True)
class Listing:
    """The regular-file member names of an archive (at most MAX_MEMBERS_SCANNED of them)."""

    container: str  # a CONTAINER_SUFFIX key
    names: tuple[str, ...]
    truncated: bool = False


def container_of(archive: Path) -> str | None:
    """The container format from the first bytes ("zip", "tar.gz", ...); None if none of them."""
    if zipfile.is_zipfile(archive):
        return "zip"
    with archive.open("rb") as fh:
        head = fh.read(512)
    for magic, container in _MAGIC_CONTAINER.items():
        if head.startswith(magic):
            return container
    return "tar" if head[257:262] == b"ustar" else None


def list_members(archive: Path) -> Listing:
    """Bounded listing, with the same caps and one-line errors as `read_member`."""
    with _one_line_errors(archive):
        container = container_of(archive)
        if container is None:
            raise BadInput(f"{archive.name}: not an archive (neither zip nor tar, compressed or not)")
        names: list[str] = []
        if container == "zip":
            entries = _zip_declared_entries(archive)
            if entries is not None and entries > MAX_ZIP_ENTRIES:
                raise BadInput(
                    f"{archive.name}: zip declares {entries} entries (more than {MAX_ZIP_ENTRIES})"
                )
            with zipfile.ZipFile(archive) as zf:
                for info in zf.infolist():
                    if len(names) >= MAX_MEMBERS_SCANNED:
                        return Listing(container, tuple(names), truncated=True)
                    if not info.is_dir():
                        names.append(info.filename)
            return Listing(container, tuple(names))
        with _open_tar(archive) as tf:
            for member in tf:
                if len(names) >= MAX_MEMBERS_SCANNED:
                    return Listing(container, tuple(names), truncated=True)
                if member.isfile():
                    names.append(member.name)
        return Listing(container, tuple(names))


def _at(names: tuple[str, ...], level: int, basename: str) -> bool:
    return any(depth(n) == level and n.rstrip("/").rsplit("/", 1)[-1] == basename for n in names)


def identify(listing: Listing) -> tuple[str, ...]:
    """Every kind of package the listing fits, most specific first (a GitHub zipball may be
    both a Composer package and an npm one; the ecosystem asking picks its own)."""
    names = tuple(n[2:] if n.startswith("./") else n for n in listing.names)
    kinds: list[str] = []
    is_zip = listing.container == "zip"
    if {"metadata.gz", "data.tar.gz"} <= {n for n in names if depth(n) == 0} and not is_zip:
        kinds.append(GEM)
    if is_zip and any(depth(n) == 1 and n.endswith(".dist-info/METADATA") for n in names):
        kinds.append(WHEEL)
    if is_zip and any(depth(n) == 0 and n.lower().endswith(".nuspec") for n in names):
        kinds.append(NUPKG)
    if not is_zip and _at(names, 1, "Cargo.toml"):
        kinds.append(CRATE)
    if not is_zip and _at(names, 1, "package.json"):
        kinds.append(NPM)
    if is_zip and (_at(names, 0, "composer.json") or _at(names, 1, "composer.json")):
        kinds.append(COMPOSER)
    if WHEEL not in kinds and any(_at(names, 1, m) for m in ("PKG-INFO", "setup.py", "pyproject.toml")):
        kinds.append(SDIST)
    return tuple(kinds)


def describe(archive: Path, listing: Listing | None = None) -> str:
    """What the archive is, for an error message: its kinds, or its format and a few members."""
    listing = listing or list_members(archive)
    kinds = identify(listing)
    if kinds:
        return " and ".join(KIND_LABELS[k] for k in kinds)
    shown = ", ".join(sorted(listing.names, key=lambda n: (depth(n), n))[:4])
    more = "+" if listing.truncated else ""
    return f"a {listing.container} archive of {len(listing.names)}{more} files ({shown or 'empty'})"


def not_a(archive: Path, wanted: str, ecosystem: str) -> BadInput:
    """The error for an archive that holds no package of `wanted` kind: names what it does hold."""
    listing = list_members(archive)
    found = describe(archive, listing)
    others = sorted({KIND_ECOSYSTEM[k] for k in identify(listing)} - {ecosystem})
    hint = f"; analyse it as {' or '.join(others)}" if others else ""
    return BadInput(f"{archive.name}: not {wanted}: it is {found}{hint}")


def kind_of(archive: Path, wanted: tuple[str, ...], label: str, ecosystem: str) -> tuple[str, Listing]:
    """The first of `wanted` kinds the archive holds, whatever its name; else `not_a`'s error."""
    listing = list_members(archive)
    kinds = identify(listing)
    for kind in kinds:
        if kind in wanted:
            return kind, listing
    raise not_a(archive, label, ecosystem)


def staged_name(archive: Path, right_suffixes: tuple[str, ...], canonical: str) -> str:
    """The file name the toolchain gets: the archive's own when it already ends right, else
    `canonical` (pip, npm, gem and composer pick their unpacker from the name)."""
    return archive.name if archive.name.endswith(right_suffixes) else canonical
