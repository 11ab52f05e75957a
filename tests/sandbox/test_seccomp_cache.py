"""The compiled seccomp deny-list is cached once per machine, atomically, and never leaks to /tmp."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from osptrack.sandbox import bwrap


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OSPTRACK_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(bwrap, "_SECCOMP_PATH", None)
    return tmp_path / "cache" / "seccomp"


def _compiled_in_fresh_process(env: dict[str, str]) -> str:
    code = "from osptrack.sandbox.bwrap import seccomp_filter_file; print(seccomp_filter_file())"
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()


def test_filter_is_compiled_once_then_reused(cache: Path) -> None:
    first = bwrap.seccomp_filter_file()
    assert first.parent == cache
    assert first.read_bytes() == bwrap.compile_seccomp_filter()
    assert len(first.read_bytes()) % 8 == 0 and first.stat().st_mode & 0o777 == 0o644
    stamp = first.stat().st_mtime_ns
    # Another process (a new CLI run) finds it and does not write it again.
    again = _compiled_in_fresh_process(dict(os.environ))
    assert Path(again) == first
    assert first.stat().st_mtime_ns == stamp
    assert [p.name for p in cache.iterdir()] == [first.name]  # no temp files left beside it


def test_nothing_is_left_in_tmp(cache: Path, tmp_path: Path) -> None:
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    _compiled_in_fresh_process({**os.environ, "TMPDIR": str(tmpdir)})
    assert list(tmpdir.iterdir()) == []
    assert len(list(cache.glob("filter-*.bpf"))) == 1


def test_key_follows_the_rules(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = bwrap.seccomp_filter_file()
    monkeypatch.setattr(bwrap, "SECCOMP_ERRNO", bwrap.SECCOMP_ERRNO[:-1])
    monkeypatch.setattr(bwrap, "_SECCOMP_PATH", None)
    second = bwrap.seccomp_filter_file()
    assert second != first
    assert second.read_bytes() != first.read_bytes()


def test_a_tampered_or_truncated_file_is_recompiled(cache: Path) -> None:
    path = bwrap.seccomp_filter_file()
    good = path.read_bytes()
    path.write_bytes(good[:13])  # not whole instructions
    bwrap._SECCOMP_PATH = None
    assert bwrap.seccomp_filter_file().read_bytes() == good
    path.chmod(0o666)  # writable by anyone: not trusted
    bwrap._SECCOMP_PATH = None
    assert bwrap.seccomp_filter_file().read_bytes() == good
    assert path.stat().st_mode & 0o777 == 0o644


def _compile(_: int) -> bytes:
    bwrap._SECCOMP_PATH = None
    return bwrap.seccomp_filter_file().read_bytes()


def test_concurrent_workers_all_get_a_whole_filter(cache: Path) -> None:
    with ProcessPoolExecutor(4) as pool:
        results = list(pool.map(_compile, range(8)))
    expected = bwrap.compile_seccomp_filter()
    assert all(r == expected for r in results)
    assert [p.name for p in cache.iterdir() if not p.name.startswith("filter-")] == []


def test_falls_back_to_the_work_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("")  # a file where the cache folder would go: mkdir fails
    monkeypatch.setenv("OSPTRACK_CACHE", str(blocked))
    monkeypatch.setenv("OSPTRACK_WORKDIR", str(tmp_path / "work"))
    monkeypatch.setattr(bwrap, "_SECCOMP_PATH", None)
    assert bwrap.seccomp_filter_file().parent == tmp_path / "work" / "seccomp"
