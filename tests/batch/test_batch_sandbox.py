"""Two real sandboxes at once (osptrack.run.analyze): same port, same home file, no interference."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import orjson
import pytest
from collections_builder import sdist

from osptrack.batch.model import make_target
from osptrack.batch.runner import BatchOptions, run_batch
from shared_data import pypi_build_tools

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]


PORT = 47123
HOME_FILE = ".osptrack-batch-shared"

# Harmless: binds a loopback port inside its own network namespace and writes one file in its own
# (sandbox) home, holds both for a moment so the two runs overlap, then checks nobody else wrote.
SETUP_PY = f"""
import os, socket, time
me = {{name!r}}
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.bind(("127.0.0.1", {PORT}))
s.listen(1)
path = os.path.join(os.path.expanduser("~"), {HOME_FILE!r})
with open(path, "w") as fh:
    fh.write(me)
time.sleep(2.0)
with open(path) as fh:
    seen = fh.read()
if seen != me:
    raise SystemExit("home file shared with another sandbox: " + seen)
s.close()
from setuptools import setup
setup(name=me, version="1.0", py_modules=[])
"""


def write_sdist(folder: Path, name: str, setup_py: str) -> Path:
    path = folder / f"{name}-1.0.tar.gz"
    path.write_bytes(sdist(name, "1.0", setup_py))
    return path


def test_two_parallel_sandboxes_bind_the_same_port_and_write_the_same_home_file(tmp_path: Path) -> None:
    from osptrack.errors import BadInput

    try:
        from osptrack.run import AnalyzeOptions
        from osptrack.sandbox.preflight import check_sandbox

        check_sandbox()
    except (ImportError, BadInput) as exc:
        pytest.fail(f"sandbox not available here (scripts/setup.sh; run as root): {exc}")
    build_tools = pypi_build_tools()
    targets = [
        make_target(
            "pypi",
            name,
            "1.0",
            archive=str(write_sdist(tmp_path, name, SETUP_PY.format(name=name))),
            deps_dirs=(build_tools,),
        )
        for name in ("twin-one", "twin-two")
    ]
    out = tmp_path / "out"
    summary = run_batch(
        targets,
        BatchOptions(
            out=str(out), workers=2, retries=0, analyze=AnalyzeOptions(phases=("install",), timeout_s=120)
        ),
    )
    assert summary.finished == 2, [(a.target.label, a.outcome, a.error) for a in summary.attempts]

    windows = []
    for target in targets:
        folder = out / target.rel_dir
        run = orjson.loads((folder / "run.json").read_bytes())
        install = run["phases"]["install"]
        assert install["exit_code"] == 0, (target.name, install)  # setup.py saw only its own home file
        windows.append((install["started"], install["started"] + install["wall_s"]))
        events = [orjson.loads(line) for line in (folder / "events.jsonl").read_bytes().splitlines() if line]
        binds = [
            e
            for e in events
            if e.get("kind") == "network" and e.get("op") == "bind" and e.get("port") == PORT
        ]
        assert binds and all(e["errno"] is None for e in binds), binds  # no EADDRINUSE from the twin
        writes = [e for e in events if e.get("kind") == "file" and str(e.get("path", "")).endswith(HOME_FILE)]
        assert writes and all(e["errno"] is None for e in writes)
    (a0, a1), (b0, b1) = windows
    assert a0 < b1 and b0 < a1, f"the two installs did not overlap: {windows}"
    assert not (Path.home() / HOME_FILE).exists()  # nothing reached the host's home


def _leftovers(work: Path) -> list[str]:
    """Processes, mounts and workspace folders of runs under `work` that are still around."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(work) in cmdline:
            found.append(f"pid {proc.name}: {cmdline[:80]}")
    found += [line for line in Path("/proc/mounts").read_text().splitlines() if str(work) in line]
    found += [str(p) for p in work.iterdir()] if work.is_dir() else []
    return found


def test_package_timeout_kills_a_real_sandbox_without_leftovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    import time

    from osptrack.errors import BadInput

    try:
        from osptrack.run import AnalyzeOptions
        from osptrack.sandbox.preflight import check_sandbox

        check_sandbox()
    except (ImportError, BadInput) as exc:
        pytest.fail(f"sandbox not available here (scripts/setup.sh; run as root): {exc}")
    # This test's sandboxes only; beside the default work root, because the sandbox user cannot
    # enter pytest's private tmp_path.
    work = Path(tempfile.mkdtemp(prefix="osptrack-batch-test-", dir="/var/tmp"))
    work.chmod(0o711)
    request.addfinalizer(lambda: shutil.rmtree(work, ignore_errors=True))
    monkeypatch.setenv("OSPTRACK_WORKDIR", str(work))
    slow = tmp_path / "slow"
    slow.mkdir()
    # An install that outlives the batch's per-package limit (analyze's own phase limit is higher).
    setup = "import time\ntime.sleep(60)\nfrom setuptools import setup\nsetup(name='sleepy', version='1.0')\n"
    archive = write_sdist(slow, "sleepy", setup)
    build_tools = pypi_build_tools()
    target = make_target("pypi", "sleepy", "1.0", archive=str(archive), deps_dirs=(build_tools,))
    summary = run_batch(
        [target],
        BatchOptions(
            out=str(tmp_path / "out"),
            retries=0,
            package_timeout_s=6,
            analyze=AnalyzeOptions(phases=("install",), timeout_s=120),
        ),
    )
    assert [a.outcome for a in summary.attempts] == ["timeout"], summary.attempts
    deadline = time.monotonic() + 10
    while _leftovers(work) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _leftovers(work) == []
    assert not (tmp_path / "out" / "pypi" / "sleepy").exists()
