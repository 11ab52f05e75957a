"""The low-wake-latency request (osptrack.sandbox.wakeup): held for a run, dropped after it, never
seen by the package, and a run without it says so instead of failing."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import pytest

from builders import make_sdist
from kept_views import analyze_keeping
from osptrack.sandbox import wakeup

NEEDS_DEVICE = pytest.mark.skipif(
    os.geteuid() != 0 or not wakeup.DEVICE.exists(), reason=f"needs root and {wakeup.DEVICE}"
)


def _current() -> int:
    """The machine's effective request (the minimum of all held ones), as the kernel reads it back."""
    fd = os.open(wakeup.DEVICE, os.O_RDONLY)
    try:
        return struct.unpack("=i", os.read(fd, 4))[0]
    finally:
        os.close(fd)


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@NEEDS_DEVICE
def test_held_sets_no_idle_latency_and_closes_its_fd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(wakeup.OFF_ENV, raising=False)
    before = _open_fds()
    with wakeup.held() as state:
        assert state == "held"
        assert _current() == 0
        assert len(_open_fds() - before) == 1
    assert _open_fds() == before  # dropped: the kernel removes a request when its fd closes


def test_off_opens_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(wakeup.OFF_ENV, "0")
    before = _open_fds()
    with wakeup.held() as state:
        assert state == f"off ({wakeup.OFF_ENV}=0)"
        assert _open_fds() == before


def test_a_machine_without_the_device_runs_without_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(wakeup.OFF_ENV, raising=False)
    monkeypatch.setattr(wakeup, "DEVICE", tmp_path / "absent")
    with wakeup.held() as state:
        assert state.startswith("unavailable (") and "absent" in state


# Harmless: at import, notes whether the sandbox has the request's device at all.
SEES = (
    "import os\n"
    "with open(os.path.expanduser('~/wakeup-view.txt'), 'w') as fh:\n"
    "    fh.write(str(os.path.exists('/dev/cpu_dma_latency')))\n"
)


@pytest.mark.sandbox
@NEEDS_DEVICE
def test_a_run_holds_the_request_while_its_phases_run_and_the_package_cannot_see_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(wakeup.OFF_ENV, raising=False)
    sdist = make_sdist(
        tmp_path,
        "wakeup-view",
        "1.0",
        "from setuptools import setup\nsetup(name='wakeup-view', version='1.0', packages=['wakeup_view'])\n",
        {"wakeup_view/__init__.py": SEES},
    )
    during: dict[str, int] = {}
    fds = _open_fds()
    out, kept = analyze_keeping(
        tmp_path,
        monkeypatch,
        sdist,
        "wakeup-view.txt",
        before_phase=lambda name: during.setdefault(name, _current()),
    )
    assert during == {"install": 0, "import": 0}
    assert (kept / "wakeup-view.txt").read_text() == "False"  # written at import
    assert json.loads((out / "run.json").read_text())["sandbox"]["low_wake_latency"] == "held"
    assert _open_fds() == fds  # nothing of the request outlives the run


@pytest.mark.sandbox
def test_a_run_with_the_request_off_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from osptrack.run import AnalyzeOptions, analyze
    from osptrack.target import parse_target

    monkeypatch.setenv(wakeup.OFF_ENV, "0")
    sdist = make_sdist(
        tmp_path,
        "wakeup-off",
        "1.0",
        "from setuptools import setup\nsetup(name='wakeup-off', version='1.0', py_modules=[])\n",
    )
    out = tmp_path / "run"
    analyze(parse_target("pypi", str(sdist)), AnalyzeOptions(timeout_s=180), out)
    assert (
        json.loads((out / "run.json").read_text())["sandbox"]["low_wake_latency"]
        == f"off ({wakeup.OFF_ENV}=0)"
    )
