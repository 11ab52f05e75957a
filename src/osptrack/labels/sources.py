"""Read JSON documents out of a folder, a `.zip` or a tarball, without unpacking to disk.

Every reader yields `(member_name, raw_bytes)`; parsing is the caller's job so one bad member is a
warning, never the end of the build. An unreadable *container* is a `BadInput` naming the file.
"""

from __future__ import annotations

import io
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

from osptrack.errors import BadInput
from osptrack.labels.report import BuildReport

TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")


def iter_json_documents(path: Path, report: BuildReport) -> Iterator[tuple[str, bytes]]:
    """Yield every `*.json` member under `path`; other members are counted as ignored."""
    if path.is_dir():
        yield from _iter_folder(path, report)
    elif not path.exists():
        raise BadInput(f"{path}: no such file or folder")
    elif path.name.lower().endswith(".zip"):
        yield from _iter_zip(path, report)
    elif path.name.lower().endswith(TAR_SUFFIXES):
        yield from _iter_tar(path, report)
    elif path.name.lower().endswith(".json"):
        yield str(path), _read(path)
    else:
        raise BadInput(f"{path}: not a folder, .zip, tarball or .json file")


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise BadInput(f"{path}: cannot read: {exc.strerror}") from None


def _iter_folder(root: Path, report: BuildReport) -> Iterator[tuple[str, bytes]]:
    for file in sorted(root.rglob("*")):
        if not file.is_file():
            continue
        if file.suffix.lower() != ".json":
            report.ignored_files += 1
            continue
        try:
            data = file.read_bytes()
        except OSError as exc:
            report.skip(str(file), f"cannot read: {exc.strerror}")
            continue
        # The absolute path, so `osv/withdrawn/` is still seen when that folder itself is passed.
        yield file.resolve().as_posix(), data


def _iter_zip(path: Path, report: BuildReport) -> Iterator[tuple[str, bytes]]:
    # The whole archive is read once (43 MB for the real snapshot) and members are inflated
    # straight from that buffer: ZipFile.read() re-seeks and re-parses headers per member, which
    # costs more than inflating 33k small records. CRCs are still checked.
    try:
        blob = path.read_bytes()
        archive = zipfile.ZipFile(io.BytesIO(blob))
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise BadInput(f"{path}: not a readable zip archive ({exc})") from None
    with archive:
        for info in archive.infolist():
            if info.is_dir():
                continue
            if not info.filename.lower().endswith(".json"):
                report.ignored_files += 1
                continue
            try:
                data = _inflate(blob, info)
                if data is None:  # encrypted, zip64 oddities, other methods: the slow, general path
                    data = archive.read(info)
            except (
                zipfile.BadZipFile,
                zlib.error,
                OSError,
                EOFError,
                NotImplementedError,
                ValueError,
            ) as exc:
                report.skip(f"{path}:{info.filename}", f"corrupt member ({exc})")
                continue
            yield info.filename, data


_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")


def _inflate(blob: bytes, info: zipfile.ZipInfo) -> bytes | None:
    if info.flag_bits & 0x1 or info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        return None
    start = info.header_offset
    header = _LOCAL_HEADER.unpack_from(blob, start)
    if header[0] != b"PK\x03\x04":
        raise zipfile.BadZipFile("bad local file header")
    data_start = start + _LOCAL_HEADER.size + header[10] + header[11]
    raw = blob[data_start : data_start + info.compress_size]
    if len(raw) != info.compress_size:
        raise zipfile.BadZipFile("truncated member")
    data = raw if info.compress_type == zipfile.ZIP_STORED else zlib.decompress(raw, -15)
    if zlib.crc32(data) != info.CRC or len(data) != info.file_size:
        raise zipfile.BadZipFile("CRC or size mismatch")
    return data


def _iter_tar(path: Path, report: BuildReport) -> Iterator[tuple[str, bytes]]:
    try:
        archive = tarfile.open(path, mode="r:*")  # noqa: SIM115 - closed by `with` below
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BadInput(f"{path}: not a readable tarball ({exc})") from None
    with archive:
        try:
            for member in archive:
                if not member.isfile():
                    continue
                if not member.name.lower().endswith(".json"):
                    report.ignored_files += 1
                    continue
                fh = archive.extractfile(member)
                if fh is None:
                    continue
                yield member.name, fh.read()
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            # A truncated stream cannot be resumed; what was read is kept and the loss is reported.
            report.skip(str(path), f"tarball is corrupt after {report.documents} documents ({exc})")
