"""Turn a collection sample into an archive `analyze` accepts, inside a private staging folder.

Malware collections ship samples in encrypted zips (password `infected`) so nobody opens them by
accident. We decrypt only into the attempt's staging folder (mode 0700, under the batch's private
`.tmp`, deleted after the attempt), never beside the collection or in a folder a user browses, and
we never run anything: the files are only read and re-packed. Member names are checked (no absolute
paths, no `..`, no links, no devices) and sizes are capped, because the zips are hostile input.
"""

from __future__ import annotations

import os
import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import IO

import pyzipper

from osptrack.batch.model import DATADOG_ZIP, PLAIN, BatchTarget
from osptrack.target import ARCHIVE_SUFFIXES, normalise_name

PASSWORD = b"infected"
MAX_MEMBERS = 20_000
MAX_TOTAL_BYTES = 1 << 30  # 1 GiB unpacked
_PYPI_MARKERS = ("setup.py", "pyproject.toml", "PKG-INFO", "setup.cfg")


class StagingError(Exception):
    """The sample cannot be turned into an archive; the attempt fails with this message."""


def make_private_dir(path: Path) -> Path:
    path.mkdir(mode=0o700, parents=False, exist_ok=False)
    os.chmod(path, 0o700)  # mkdir's mode is masked by umask
    return path


def stage_archive(target: BatchTarget, stage: Path) -> Path | None:
    """Return the archive path analyze should read (None: fetch by coordinate)."""
    if target.archive is None:
        return None
    if target.packing == PLAIN:
        return Path(target.archive)
    if target.packing == DATADOG_ZIP:
        make_private_dir(stage)
        unpacked = make_private_dir(stage / "unpacked")
        extract_encrypted_zip(Path(target.archive), unpacked)
        return repack(target, unpacked, stage)
    raise StagingError(f"unknown packing {target.packing!r}")


def _safe_member(name: str) -> PurePosixPath:
    member = PurePosixPath(name.replace("\\", "/"))
    if member.is_absolute() or ".." in member.parts or not member.parts:
        raise StagingError(f"unsafe path in zip: {name!r}")
    return member


def extract_encrypted_zip(archive: Path, into: Path) -> None:
    """Decrypt (ZipCrypto or AES) and unpack regular files and folders only."""
    try:
        with pyzipper.AESZipFile(archive) as zf:
            zf.setpassword(PASSWORD)
            infos = zf.infolist()
            if len(infos) > MAX_MEMBERS:
                raise StagingError(f"zip has {len(infos)} members, more than {MAX_MEMBERS}")
            if sum(i.file_size for i in infos) > MAX_TOTAL_BYTES:
                raise StagingError("zip unpacks to more than 1 GiB")
            for info in infos:
                member = _safe_member(info.filename)
                file_type = stat.S_IFMT(info.external_attr >> 16)  # 0 when the zip was made without it
                if file_type and file_type not in (stat.S_IFREG, stat.S_IFDIR):
                    raise StagingError(f"zip member is not a regular file: {info.filename!r}")
                out = into.joinpath(*member.parts)
                if info.is_dir():
                    out.mkdir(parents=True, exist_ok=True)
                    continue
                out.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(out, "xb") as dst:
                    _copy_capped(src, dst, info.file_size)
                os.chmod(out, 0o600)  # never executable on the host
    except (zipfile.BadZipFile, RuntimeError, ValueError, FileExistsError, OSError) as exc:
        raise StagingError(f"cannot decrypt {archive.name}: {exc}") from None


def _copy_capped(src: IO[bytes], dst: IO[bytes], declared: int) -> None:
    written = 0
    while True:
        chunk = src.read(1 << 20)
        if not chunk:
            return
        written += len(chunk)
        if written > declared or written > MAX_TOTAL_BYTES:
            raise StagingError("zip member is larger than it declares")
        dst.write(chunk)


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def repack(target: BatchTarget, unpacked: Path, stage: Path) -> Path:
    """Find the package inside the decrypted sample and hand analyze a normal archive."""
    files = _files(unpacked)
    archives = [p for p in files if p.name.endswith(ARCHIVE_SUFFIXES)]
    # Some samples keep the registry archive itself; use it as published.
    if len(archives) == 1 and not _find_root(target, unpacked):
        return archives[0]
    root = _find_root(target, unpacked)
    if root is None:
        raise StagingError(f"no {target.ecosystem} package found in {Path(target.archive or '').name}")
    base = f"{normalise_name(target.ecosystem, target.name).replace('/', '-').lstrip('@')}-{target.version}"
    if target.ecosystem == "npm":
        return _tar(root, stage / f"{base}.tgz", "package")
    if target.ecosystem == "pypi" and not any((root / m).is_file() for m in _PYPI_MARKERS):
        wheel_name = normalise_name("pypi", target.name).replace("-", "_")
        return _zip_wheel(root, stage / f"{wheel_name}-{target.version}-py3-none-any.whl")
    return _tar(root, stage / f"{base}.tar.gz", base)


def _find_root(target: BatchTarget, unpacked: Path) -> Path | None:
    """The shallowest folder that looks like the package's top level."""
    if target.ecosystem == "npm":
        markers: tuple[str, ...] = ("package.json",)
    elif target.ecosystem == "pypi":
        markers = _PYPI_MARKERS
    else:
        markers = ()
    candidates = [p.parent for p in _files(unpacked) if p.name in markers]
    if target.ecosystem == "pypi":
        # An unpacked wheel has no setup.py; its root holds the *.dist-info folder.
        candidates += [p.parent.parent for p in _files(unpacked) if p.parent.name.endswith(".dist-info")]
    if not candidates:
        return None
    return min(candidates, key=lambda p: (len(p.relative_to(unpacked).parts), str(p)))


def _tar(root: Path, out: Path, prefix: str) -> Path:
    def clean(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mode = 0o755 if info.isdir() else 0o644
        return info

    with tarfile.open(out, "w:gz") as tar:
        for file in _files(root):
            tar.add(file, arcname=f"{prefix}/{file.relative_to(root).as_posix()}", filter=clean)
    return out


def _zip_wheel(root: Path, out: Path) -> Path:
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for file in _files(root):
            zf.write(file, file.relative_to(root).as_posix())
    return out
