"""Hostile archives through the real CLI: a clear one-line error (exit 2) or a safe analysis.

Never a traceback, never a hang, never a write outside the run folder. Each case runs
`osptrack analyze` in a subprocess, as a user would, with the install phase only.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from containment_helpers import files_named, marker, record

from builders import make_npm, make_sdist, make_wheel
from osptrack.ecosystems import archives
from osptrack.ecosystems.pypi import PyPI
from osptrack.errors import BadInput

OSPTRACK = [sys.executable, "-m", "osptrack.cli"]
CLI_TIMEOUT_S = 120  # a hang would show as this subprocess timing out
PKG_INFO = "Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"


def _tar(path: Path, members: list[tuple[str, bytes | None, str]], compresslevel: int = 6) -> Path:
    """(name, data, kind) with kind file/symlink/hardlink; for links `data` is the target."""
    with tarfile.open(path, "w:gz", compresslevel=compresslevel) as tf:
        for name, data, kind in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(data or b"")
                tf.addfile(info, io.BytesIO(data or b""))
            else:
                info.type = tarfile.SYMTYPE if kind == "symlink" else tarfile.LNKTYPE
                info.linkname = (data or b"").decode()
                tf.addfile(info)
    return path


def _sdist(
    dest: Path, members: list[tuple[str, bytes | None, str]], name: str = "hostile", version: str = "1.0"
) -> Path:
    top = f"{name}-{version}"
    base = [
        (f"{top}/PKG-INFO", PKG_INFO.format(name=name, version=version).encode(), "file"),
        (
            f"{top}/setup.py",
            f"from setuptools import setup\nsetup(name={name!r}, version={version!r})\n".encode(),
            "file",
        ),
    ]
    return _tar(dest / f"{top}.tar.gz", base + members)


def _zeros_member(tf: tarfile.TarFile, name: str, size: int) -> None:
    class Zeros(io.RawIOBase):
        def __init__(self) -> None:
            self.left = size

        def readable(self) -> bool:
            return True

        def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
            n = min(len(b), self.left)
            b[:n] = bytes(n)
            self.left -= n
            return n

    info = tarfile.TarInfo(name)
    info.size = size
    tf.addfile(info, io.BufferedReader(Zeros()))


def tar_bomb(dest: Path) -> Path:
    path = dest / "bomb-1.0.tar.gz"
    with tarfile.open(path, "w:gz", compresslevel=9) as tf:
        _zeros_member(tf, "bomb-1.0/zeros.bin", 300 << 20)  # 300 MiB of zeros, ~300 KiB packed
        info = PKG_INFO.format(name="bomb", version="1.0").encode()
        ti = tarfile.TarInfo("bomb-1.0/PKG-INFO")
        ti.size = len(info)
        tf.addfile(ti, io.BytesIO(info))
    return path


def zip_bomb_metadata(dest: Path) -> Path:
    """A wheel whose METADATA member declares 60 bytes but inflates to 50 MiB."""
    path = dest / "zbomb-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(
            "zbomb-1.0.dist-info/METADATA", PKG_INFO.format(name="zbomb", version="1.0") + " " * (50 << 20)
        )
    data = bytearray(path.read_bytes())
    real = (50 << 20) + len(PKG_INFO.format(name="zbomb", version="1.0"))
    for sig in (b"PK\x03\x04", b"PK\x01\x02"):  # lie about the size in both headers
        at = data.find(sig)
        size_at = at + (22 if sig == b"PK\x03\x04" else 24)
        assert int.from_bytes(data[size_at : size_at + 4], "little") == real
        data[size_at : size_at + 4] = (60).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    return path


def big_wheel(dest: Path) -> Path:
    """A valid wheel holding 200 MiB of zeros (~200 KiB packed): inflated only in the sandbox."""
    path = make_wheel(dest, "zeros-wheel", "1.0", {"zeros_wheel/__init__.py": "X = 1\n"})
    with (
        zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as zf,
        zf.open("zeros_wheel/zeros.bin", "w") as fh,
    ):
        for _ in range(200):
            fh.write(bytes(1 << 20))
    return path


def many_files(dest: Path, kind: str, count: int = 100_000) -> Path:
    """`count` tiny members, with the metadata member last (past the scan cap)."""
    if kind == "zip":
        path = dest / "many-1.0-py3-none-any.whl"
        with zipfile.ZipFile(path, "w") as zf:
            for i in range(count):
                zf.writestr(f"many/f{i}.py", "")
            zf.writestr("many-1.0.dist-info/METADATA", PKG_INFO.format(name="many", version="1.0"))
        return path
    members: list[tuple[str, bytes | None, str]] = [(f"many-1.0/f{i}.py", b"", "file") for i in range(count)]
    members.append(("many-1.0/PKG-INFO", PKG_INFO.format(name="many", version="1.0").encode(), "file"))
    return _tar(dest / "many-1.0.tar.gz", members, compresslevel=1)


def truncated(dest: Path) -> Path:
    src = make_sdist(
        dest, "trunc", "1.0", "from setuptools import setup\nsetup()\n", {"big.py": "x = 1\n" * 5000}
    )
    data = src.read_bytes()
    src.write_bytes(data[: len(data) // 2])
    return src


def corrupt(dest: Path) -> Path:
    src = make_wheel(dest, "corrupt", "1.0", {"corrupt/__init__.py": "X = 1\n" * 2000})
    data = bytearray(src.read_bytes())
    for i in range(40, len(data) // 2, 97):
        data[i] ^= 0x5A
    src.write_bytes(bytes(data))
    return src


def text_file(path: Path) -> Path:
    path.write_text("hello, not an archive\n")
    return path


def renamed(src: Path, new_name: str) -> Path:
    return src.rename(src.with_name(new_name))


def metadata_sdist(name: str, version: str) -> Callable[[Path], Path]:
    def build(dest: Path) -> Path:
        top = "meta-1.0"
        raw = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
        return _tar(
            dest / f"{top}.tar.gz", [(f"{top}/PKG-INFO", raw, "file"), (f"{top}/setup.py", b"", "file")]
        )

    return build


def npm_named(name: str, version: str) -> Callable[[Path], Path]:
    def build(dest: Path) -> Path:
        path = dest / "weird-1.0.0.tgz"
        manifest = json.dumps({"name": name, "version": version}).encode()
        return _tar(path, [("package/package.json", manifest, "file"), ("package/index.js", b"", "file")])

    return build


# (case id, ecosystem, builder(dest, tag) -> archive, expected exit codes, message on exit 2)
CASES: list[tuple[str, str, Callable[[Path, str], Path], tuple[int, ...], str]] = [
    ("tar_bomb", "pypi", lambda d, t: tar_bomb(d), (2,), "archive bomb"),
    ("zip_bomb_metadata", "pypi", lambda d, t: zip_bomb_metadata(d), (2,), "not a readable archive"),
    ("zip_big_member_inflated_in_sandbox", "pypi", lambda d, t: big_wheel(d), (0,), ""),
    ("path_traversal", "pypi", lambda d, t: _sdist(d, [(f"../../../../../../tmp/{t}-dotdot", b"x", "file"),
                                                        (f"/tmp/{t}-absolute", b"x", "file")]), (0,), ""),
    ("symlink_and_hardlink_outside", "pypi", lambda d, t: _sdist(d, [
        ("hostile-1.0/passwd-link", b"/etc/passwd", "symlink"),
        (f"hostile-1.0/{t}-up", f"../../../../../../tmp/{t}-via-link".encode(), "symlink"),
        ("hostile-1.0/shadow-hard", b"/etc/shadow", "hardlink"),
    ]), (0,), ""),
    ("metadata_is_a_symlink_to_host", "pypi", lambda d, t: _tar(d / "linkmeta-1.0.tar.gz", [
        ("linkmeta-1.0/PKG-INFO", b"/etc/passwd", "symlink"), ("linkmeta-1.0/setup.py", b"", "file"),
    ]), (0, 2), "not a Python package"),
    ("many_files_tar", "pypi", lambda d, t: many_files(d, "tar"), (2,), "not a Python package"),
    ("many_files_zip", "pypi", lambda d, t: many_files(d, "zip"), (2,), "not a Python package"),
    # PKG-INFO/METADATA may sit before the damage: then pip fails in the sandbox (exit 0)
    ("truncated", "pypi", lambda d, t: truncated(d), (0, 2), "not a readable archive"),
    ("corrupt", "pypi", lambda d, t: corrupt(d), (0, 2), "not a readable archive"),
    ("wheel_named_sdist", "pypi", lambda d, t: renamed(make_wheel(d, "wrongext", "1.0", {"w/__init__.py": ""}),
                                                        "wrongext-1.0.tar.gz"), (0,), ""),  # read by content
    ("text_named_wheel", "pypi", lambda d, t: text_file(d / "text-1.0-py3-none-any.whl"), (2,),
     "not a readable archive"),
    ("npm_tarball_as_pypi", "pypi", lambda d, t: make_npm(d, "npmpkg", "1.0.0", {"index.js": ""}), (2,),
     "not a Python package"),
    ("zip_as_npm", "npm", lambda d, t: renamed(make_wheel(d, "zipnpm", "1.0", {"z/__init__.py": ""}), "zipnpm-1.0.tgz"),
     (2,), "not an npm package (no package.json): it is a Python wheel; analyse it as pypi"),
    ("name_shell_metachars", "pypi", lambda d, t: metadata_sdist(f"$(touch /tmp/{t})", "1.0")(d), (2,),
     "invalid pypi package name"),
    ("name_dotdot", "pypi", lambda d, t: metadata_sdist("../../evil", "1.0")(d), (2,), "invalid pypi package name"),
    ("version_shell_metachars", "pypi", lambda d, t: metadata_sdist("meta", f"1.0;touch /tmp/{t}")(d), (2,),
     "invalid version"),
    ("version_newline_folded", "pypi", lambda d, t: metadata_sdist("meta", "1.0\n evil")(d), (2,), "invalid version"),
    ("version_dotdot", "pypi", lambda d, t: metadata_sdist("meta", "../../1.0")(d), (2,), "invalid version"),
    ("npm_name_traversal", "npm", lambda d, t: npm_named(f"../../../tmp/{t}", "1.0.0")(d), (2,),
     "invalid npm package name"),
    ("npm_scope_traversal", "npm", lambda d, t: npm_named("@evil/../../x", "1.0.0")(d), (2,), "invalid npm package name"),
    ("npm_version_metachars", "npm", lambda d, t: npm_named("ok", f"1.0.0 && touch /tmp/{t}")(d), (2,),
     "invalid version"),
    ("file_name_with_newline_and_metachars", "pypi", lambda d, t: renamed(
        make_wheel(d, "oddname", "1.0", {"oddname/__init__.py": "X = 1\n"}),
        f"oddname-1.0-py3-none-any;$(touch {t})\n.whl"), (0, 2), ""),
]  # fmt: skip


@pytest.mark.sandbox
@pytest.mark.parametrize(("case", "ecosystem", "build", "codes", "message"), CASES, ids=[c[0] for c in CASES])
def test_hostile_archive_gives_a_clear_error_or_a_safe_analysis(
    tmp_path: Path,
    case: str,
    ecosystem: str,
    build: Callable[[Path, str], Path],
    codes: tuple[int, ...],
    message: str,
) -> None:
    tag = marker()
    src = tmp_path / "src"
    src.mkdir()
    archive = build(src, tag)
    runs = tmp_path / "runs"
    runs.mkdir()
    before = sorted(os.listdir(tmp_path))
    t0 = time.monotonic()
    proc = subprocess.run(
        [*OSPTRACK, "analyze", ecosystem, str(archive), "--out", str(runs / "out"), "--phases", "install",
         "--timeout", "60"],
        cwd=runs, capture_output=True, text=True, timeout=CLI_TIMEOUT_S,
    )  # fmt: skip
    took = time.monotonic() - t0
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr[-2000:]
    assert proc.returncode in codes, f"exit {proc.returncode}: {proc.stderr[-500:]}"
    if proc.returncode == 2:
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], proc.stderr
        assert os.listdir(runs) == []  # nothing half-written
    else:
        assert sorted(os.listdir(runs)) == ["out"]
        assert sorted(os.listdir(runs / "out")) == [
            "events.jsonl",
            "network.jsonl",
            "result.json",
            "run.json",
        ]
        status = json.loads((runs / "out" / "result.json").read_text())["Analysis"]["install"]["Status"]
        assert status in ("completed", "error_analysis", "error_timeout")
    assert sorted(os.listdir(tmp_path)) == before
    assert files_named(tag, [Path("/tmp"), Path("/var/tmp"), Path("/root"), runs], max_depth=3) == []
    record(f"archive_{case}", exit=proc.returncode, seconds=round(took, 2))


# ---------------------------------------------------------------- reader-level caps


def test_decompressed_size_cap_stops_an_incompressible_tarball(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hard cap holds where the ratio cap cannot (random data does not compress)."""
    monkeypatch.setattr(archives, "MAX_DECOMPRESSED_BYTES", 1 << 20)
    noise = os.urandom(2 << 20)
    path = _tar(tmp_path / "noise-1.0.tar.gz", [("noise-1.0/noise.bin", noise, "file"),
                                                 ("noise-1.0/PKG-INFO", PKG_INFO.format(name="noise", version="1.0").encode(),
                                                  "file")])  # fmt: skip
    with pytest.raises(archives.ArchiveBomb):
        PyPI().read_metadata(path)


@pytest.mark.parametrize("mode", ["w:bz2", "w:xz", "w"])
def test_every_tar_compression_still_reads(tmp_path: Path, mode: str) -> None:
    """Regression (fuzz_archives): bz2 and xz sdists failed with a TypeError after the bomb cap."""
    path = tmp_path / "plain-1.0.tar"
    with tarfile.open(path, mode) as tf:  # type: ignore[call-overload]
        data = PKG_INFO.format(name="plain", version="1.0").encode()
        info = tarfile.TarInfo("plain-1.0/PKG-INFO")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    meta = PyPI().read_metadata(path)
    assert (meta.name, meta.version) == ("plain", "1.0")


def test_tar_reader_errors_are_one_line(tmp_path: Path) -> None:
    """Regression (fuzz_archives): tarfile's ReadError lists each method it tried on its own line."""
    path = tmp_path / "empty-1.0.whl"
    path.write_bytes(b"")
    with pytest.raises(BadInput) as err:
        PyPI().read_metadata(path)
    assert "\n" not in str(err.value)


# ---------------------------------------------------------------- found by fuzz_metadata, fixed


def test_non_ascii_metadata_header_is_a_clean_error(tmp_path: Path) -> None:
    path = tmp_path / "pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(
            "pkg-1.0.dist-info/METADATA", b"Metadata-Version: 2.1\nName: p\xc3\xa9k\xff\nVersion: 1.0\n"
        )
    with pytest.raises(BadInput):
        PyPI().read_metadata(path)


def test_overlong_target_is_a_clean_error(tmp_path: Path) -> None:
    proc = subprocess.run([*OSPTRACK, "analyze", "pypi", "a" * 300], cwd=tmp_path, capture_output=True, text=True,
                          timeout=CLI_TIMEOUT_S)  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


@pytest.mark.parametrize("kind", ["zip", "gzip"])
def test_damaged_deflate_stream_is_a_clean_error(tmp_path: Path, kind: str) -> None:
    """Regression (fuzz_archives): zlib.error escaped the reader as a traceback."""
    body = PKG_INFO.format(name="dmg", version="1.0").encode() + os.urandom(3000).hex().encode()
    if kind == "zip":
        path = tmp_path / "dmg-1.0-py3-none-any.whl"
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("dmg-1.0.dist-info/METADATA", body)
        start = len(b"PK\x03\x04") + 26 + len("dmg-1.0.dist-info/METADATA")
    else:
        path = _tar(tmp_path / "dmg-1.0.tar.gz", [("dmg-1.0/PKG-INFO", body, "file")])
        start = 10  # the gzip header
    data = bytearray(path.read_bytes())
    for i in range(start + 2, start + 200, 3):  # scramble the deflate stream, keep the headers
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(BadInput) as err:
        PyPI().read_metadata(path)
    assert "\n" not in str(err.value)


def test_member_names_with_newlines_stay_on_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression (fuzz_archives): a too-large member named `dir\\n/PKG-INFO` gave a two-line error."""
    monkeypatch.setattr(archives, "MAX_MEMBER_BYTES", 4)
    path = _tar(tmp_path / "nl-1.0.tar.gz", [("nl-1.0\n/PKG-INFO", b"12345678", "file")])
    with pytest.raises(BadInput) as err:
        archives.read_member(path, lambda name: name.endswith("/PKG-INFO"))
    assert "\n" not in str(err.value) and "too large" in str(err.value)


def test_zip_entry_with_an_empty_name_is_a_clean_error(tmp_path: Path) -> None:
    """Regression (fuzz_archives): zipfile's is_dir() raised IndexError on an empty entry name."""
    path = tmp_path / "empty-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("abcd", b"x")
    data = path.read_bytes()
    cd = data.rfind(b"PK\x01\x02")
    name_len_at = cd + 28  # central-directory file name length: make it zero, drop the name
    patched = (
        data[:name_len_at] + (0).to_bytes(2, "little") + data[name_len_at + 2 : cd + 46] + data[cd + 46 + 4 :]
    )
    eocd = patched.rfind(b"PK\x05\x06")
    size = int.from_bytes(patched[eocd + 12 : eocd + 16], "little") - 4  # the directory got 4 bytes shorter
    patched = patched[: eocd + 12] + size.to_bytes(4, "little") + patched[eocd + 16 :]
    path.write_bytes(patched)
    try:
        PyPI().read_metadata(path)
    except BadInput as exc:
        assert "\n" not in str(exc)
