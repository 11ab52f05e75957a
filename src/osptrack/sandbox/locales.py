"""The sandbox's /usr/lib/locale as one locale archive: the same locales, one open per process.

Debian here ships C.UTF-8 as a folder of compiled files and no locale-archive. glibc then opens,
in every process that calls setlocale() (every shell, coreutils tool, python3 of pip's tree),
the archive (ENOENT), then each LC_* category under the name as given and under its normalised
codeset (`C.UTF-8/LC_CTYPE` ENOENT, `C.utf8/LC_CTYPE`): about 25 traced opens a process, 154-180
per pip install. With an archive holding the same locales, glibc maps it once and finds every
category there: one open.

What the package sees does not change: the archive is built by glibc's own `localedef
--add-to-archive` from the host's compiled folders (the same data, byte for byte what
setlocale/nl_langinfo/`locale -a`/`locale -k` return, tests/sandbox/test_locales.py), and the
folders themselves stay (copied with their modes and times). A locale-archive is what a Debian
workstation with `locales` configured has anyway. Locales the host lacks (the persona's
en_US.UTF-8) stay missing, so setlocale fails for them exactly as before.

Built once per host into the cache and bound read-only over /usr/lib/locale; when the host
already has an archive, or no compiled locale, or no localedef, nothing is bound.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

LOCALE_DIR = "/usr/lib/locale"
ARCHIVE = "locale-archive"
_BINDS: dict[str, tuple[tuple[str, str], ...]] = {}


def compiled_locales(root: Path) -> list[Path]:
    """The compiled locale folders under `root` (those with an LC_CTYPE), sorted."""
    try:
        entries = sorted(root.iterdir())
    except OSError:
        return []
    return [p for p in entries if not p.is_symlink() and (p / "LC_CTYPE").is_file()]


def cache_key(root: Path) -> str:
    """Names the built folder by what it is built from: glibc, and every file's path, size, mode, mtime."""
    parts: list[str] = [
        os.confstr("CS_GNU_LIBC_VERSION") or "",
        os.uname().machine,
    ]  # the archive format is glibc's
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames) + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            parts.append(f"{os.path.relpath(path, root)}:{st.st_size}:{st.st_mode:o}:{st.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]


def _trusted(folder: Path) -> bool:
    """A cached folder counts only if we own it and nobody else may write it or its archive."""
    try:
        for path in (folder, folder / ARCHIVE):
            st = path.stat()
            if st.st_uid != os.geteuid() or st.st_mode & 0o022:
                return False
    except OSError:
        return False
    return True


def build(root: Path, out: Path) -> bool:
    """Write `out`: a copy of `root` plus a locale-archive of its compiled locales. False when
    there is nothing to gain (an archive already, no compiled locale) or localedef is missing."""
    found = compiled_locales(root)
    localedef = shutil.which("localedef")
    if (root / ARCHIVE).exists() or not found or localedef is None:
        return False
    shutil.copytree(root, out, symlinks=True)  # copystat: the same modes and times inside
    prefix = Path(tempfile.mkdtemp(prefix=".localedef-", dir=out.parent))
    try:
        (prefix / LOCALE_DIR.lstrip("/")).mkdir(parents=True)
        subprocess.run(
            [localedef, f"--prefix={prefix}", "--add-to-archive", *map(str, found)],
            check=True,
            capture_output=True,
            timeout=60,
        )
        archive = prefix / LOCALE_DIR.lstrip("/") / ARCHIVE
        archive.chmod(0o644)
        os.replace(archive, out / ARCHIVE)
    finally:
        shutil.rmtree(prefix, ignore_errors=True)
    st = os.stat(root)
    os.utime(out, ns=(st.st_atime_ns, st.st_mtime_ns))
    return True


def cache_dir() -> Path:
    from osptrack.sandbox.bwrap import seccomp_cache_dir  # the same cache root and fallback

    folder = seccomp_cache_dir().parent / "locale"
    folder.mkdir(parents=True, exist_ok=True, mode=0o755)
    return folder


def binds(root: Path = Path(LOCALE_DIR)) -> tuple[tuple[str, str], ...]:
    """The read-only bind that puts the archived /usr/lib/locale in the sandbox, or () when the
    host's is already as fast (or it cannot be built: the sandbox then sees the host's)."""
    key = str(root)
    if key in _BINDS:
        return _BINDS[key]
    result: tuple[tuple[str, str], ...] = ()
    try:
        result = _binds(root)
    except (OSError, subprocess.SubprocessError):
        result = ()
    _BINDS[key] = result
    return result


def _binds(root: Path) -> tuple[tuple[str, str], ...]:
    if (root / ARCHIVE).exists() or not compiled_locales(root):
        return ()
    folder = cache_dir()
    built = folder / cache_key(root)
    if not _trusted(built):
        tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=folder))
        try:
            if not build(root, tmp / "locale"):
                return ()
            with contextlib.suppress(FileNotFoundError):
                if not _trusted(built):
                    shutil.rmtree(built)  # a stale or foreign copy: replaced, never used
            with contextlib.suppress(OSError):  # a concurrent run renamed its own whole copy first
                os.rename(tmp / "locale", built)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        if not _trusted(built):
            return ()
    return ((str(built), LOCALE_DIR),)
