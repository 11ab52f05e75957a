"""`osptrack-ebpf --check`'s answer, kept per loader build and boot (trace/tracers/ebpf.py).

A fake loader (a script that counts its runs) stands in for the real one: no kernel needed,
only root (the kept answer is root's) and BTF (checked before the loader is asked).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from osptrack.trace.ebpf.log import LOG_MAGIC
from osptrack.trace.tracers import ebpf

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not Path("/sys/kernel/btf/vmlinux").exists(),
    reason="the kept answer is root's, and the check asks the loader only where the kernel has BTF",
)


@pytest.fixture
def loader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    fake = tmp_path / "bin" / "osptrack-ebpf"
    fake.parent.mkdir()
    _write_loader(fake, "ok")
    run_dir = tmp_path / "run"
    monkeypatch.setenv("OSPTRACK_EBPF_LOADER", str(fake))
    monkeypatch.setattr(ebpf, "RUN_DIR", run_dir)
    ebpf._check.cache_clear()
    yield fake
    ebpf._check.cache_clear()


def _write_loader(path: Path, answer: str, code: int = 0) -> None:
    runs = path.parent / "runs"
    path.write_text(f"#!/bin/sh\necho x >> {runs}\necho {answer} {LOG_MAGIC:x}\nexit {code}\n")
    path.chmod(0o755)


def _runs(loader: Path) -> int:
    runs = loader.parent / "runs"
    return len(runs.read_text().splitlines()) if runs.exists() else 0


def _check_fresh_process() -> tuple[bool, str]:
    ebpf._check.cache_clear()  # as a new osptrack process would start
    return ebpf._check()


def test_the_answer_is_kept_across_processes(loader: Path) -> None:
    assert _check_fresh_process()[0] is True
    assert _runs(loader) == 1
    assert _check_fresh_process()[0] is True
    assert _runs(loader) == 1  # answered from the kept file
    (kept,) = ebpf.RUN_DIR.glob("ebpf-check-*.json")
    assert kept.stat().st_mode & 0o777 == 0o600 and ebpf.RUN_DIR.stat().st_mode & 0o777 == 0o700


def test_a_rebuilt_loader_is_asked_again(loader: Path) -> None:
    assert _check_fresh_process()[0] is True
    before = loader.stat().st_mtime_ns
    _write_loader(loader, "nok")  # a rebuild: new contents, new mtime; answers another format
    os.utime(loader, ns=(before + 10**9, before + 10**9))
    ok, why = _check_fresh_process()
    assert _runs(loader) == 2
    assert ok is False and "another build" in why


def test_another_boot_is_asked_again(loader: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _check_fresh_process()[0] is True
    boot = tmp_path / "boot_id"
    boot.write_text("00000000-0000-0000-0000-000000000000\n")
    monkeypatch.setattr(ebpf, "BOOT_ID", boot)
    assert _check_fresh_process()[0] is True
    assert _runs(loader) == 2


def test_a_refusal_is_not_kept(loader: Path) -> None:
    _write_loader(loader, "ok", code=1)
    assert _check_fresh_process()[0] is False
    assert _check_fresh_process()[0] is False
    assert _runs(loader) == 2
    assert not list(ebpf.RUN_DIR.glob("ebpf-check-*.json"))


def test_a_kept_answer_others_could_have_written_is_ignored(loader: Path) -> None:
    assert _check_fresh_process()[0] is True
    (kept,) = ebpf.RUN_DIR.glob("ebpf-check-*.json")
    kept.chmod(0o622)  # writable by others: anyone could have said "ok"
    assert _check_fresh_process()[0] is True
    assert _runs(loader) == 2
    kept.chmod(0o600)
    os.chown(kept, 65534, 65534)  # not root's
    _check_fresh_process()
    assert _runs(loader) == 3
    os.chown(kept, 0, 0)
    ebpf.RUN_DIR.chmod(0o777)  # a folder others can write into
    _check_fresh_process()
    assert _runs(loader) == 4


def test_doctor_asks_the_loader_live(loader: Path) -> None:
    assert _check_fresh_process()[0] is True
    ebpf.refresh_check()
    assert ebpf._check()[0] is True
    assert _runs(loader) == 2
