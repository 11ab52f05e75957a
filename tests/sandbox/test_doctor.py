"""`osptrack doctor` checks the sandbox's own prerequisites, each ready or missing with a fix."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from osptrack.sandbox import doctor

COMPONENTS = (
    "bubblewrap",
    "strace",
    "nft",
    "ip",
    "root",
    "user namespaces",
    "network namespaces",
    "cgroups",
    "seccomp",
    "tracer",
    "low wake latency",
    "persona locales",
)


def test_every_prerequisite_has_a_line() -> None:
    checks = doctor.sandbox_checks()
    assert tuple(c.name for c in checks) == COMPONENTS
    for check in checks:
        assert check.detail if check.ready else check.fix, check


def test_a_missing_binary_names_its_package(monkeypatch: pytest.MonkeyPatch) -> None:
    real = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name: None if name in ("bwrap", "nft") else real(name))
    by_name = {c.name: c for c in doctor.sandbox_checks()}
    assert not by_name["bubblewrap"].ready and by_name["bubblewrap"].fix == "apt-get install -y bubblewrap"
    assert not by_name["nft"].ready and by_name["nft"].fix == "apt-get install -y nftables"
    assert by_name["strace"].ready == (real("strace") is not None)


def test_a_namespace_that_cannot_be_made_says_why(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "unshare"
    fake.write_text("#!/bin/sh\necho 'unshare: unshare failed: Operation not permitted' >&2\nexit 1\n")
    fake.chmod(0o755)
    real = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name: str(fake) if name == "unshare" else real(name))
    by_name = {c.name: c for c in doctor.sandbox_checks()}
    for name in ("user namespaces", "network namespaces"):
        assert not by_name[name].ready and "Operation not permitted" in by_name[name].fix


@pytest.mark.sandbox
def test_doctor_on_a_ready_machine(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "osptrack.cli", "doctor"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = {line.split("│")[1].strip(): line for line in proc.stdout.splitlines() if line.count("│") >= 3}
    for name in COMPONENTS:
        assert name in lines and "ready" in lines[name], proc.stdout
    assert not list(tmp_path.iterdir()) and not list(Path("/sys/fs/cgroup/memory").glob("osptrack-doctor-*"))


def test_the_tracer_line_says_which_and_why(monkeypatch: pytest.MonkeyPatch) -> None:
    from osptrack.trace.tracers import ebpf

    line = {c.name: c for c in doctor.sandbox_checks()}["tracer"]
    assert line.ready and line.detail.split()[0] in ("ebpf", "strace") and "(" in line.detail
    monkeypatch.setenv("OSPTRACK_EBPF_LOADER", "/nonexistent/osptrack-ebpf")
    ebpf._check.cache_clear()
    try:
        line = {c.name: c for c in doctor.sandbox_checks()}["tracer"]
        assert line.ready and line.detail.startswith(
            "strace (default, eBPF unavailable: the loader is not built"
        )
    finally:
        ebpf._check.cache_clear()


def test_a_persona_locale_without_sources_is_degraded_not_broken(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from osptrack.sandbox import locales

    monkeypatch.setattr(locales, "I18N_DIR", str(tmp_path / "no-i18n"))  # Debian's `locales` absent
    line = {c.name: c for c in doctor.sandbox_checks()}["persona locales"]
    assert not line.ready and not line.required
    assert "missing: no " in line.fix and line.fix.endswith(
        "apt-get install -y locales (glibc's locale sources)"
    )
