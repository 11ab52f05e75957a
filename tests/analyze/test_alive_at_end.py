"""Processes alive when a phase's time limit hit are named in run.json and notable (issue 12)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from builders import make_sdist
from osptrack.jsonio import read_jsonl
from osptrack.run import AnalyzeOptions, analyze
from osptrack.target import parse_target

pytestmark = pytest.mark.sandbox

SETUP_PY = """
import subprocess, time
subprocess.Popen(["/usr/bin/sleep", "302"], start_new_session=True, stdin=subprocess.DEVNULL,
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
time.sleep(300)
"""


def test_the_timeout_kills_what_is_recorded_alive(tmp_path: Path) -> None:
    archive = make_sdist(tmp_path, "osptrack-sleeper", "1.0.0", SETUP_PY)
    out = tmp_path / "run"
    outcome = analyze(
        parse_target("pypi", str(archive)), AnalyzeOptions(phases=("install",), timeout_s=15), out
    )
    assert outcome.statuses == {"install": "error_timeout"}
    run = json.loads((out / "run.json").read_text())
    alive = run["phases"]["install"]["alive_at_end"]
    by_argv = {tuple(a["argv"][:3]): a for a in alive}
    daemon = by_argv.get(("/usr/bin/sleep", "302"))
    assert daemon is not None, alive
    assert daemon["exe"] == "/usr/bin/sleep" and daemon["toolchain"] is None and daemon["started"] > 0
    pip = by_argv.get(("/usr/bin/python3", "-m", "pip"))
    assert pip is not None and pip["toolchain"] == "pip", alive  # the harness command itself, still running
    events = read_jsonl(out / "events.jsonl")
    assert any(e.get("child_pid") == daemon["pid"] for e in events)  # mapped onto the trace's tree
    notable = run["notable"]["alive_at_end"]
    assert any(f"{daemon['pid']} /usr/bin/sleep 302" in line for line in notable), notable
    assert not any("-m pip install" in line for line in notable), notable  # the toolchain's is not notable
    assert "alive at end" in run["phases"]["install"]["findings"]
    assert not any(a["exe"] == "/usr/bin/bwrap" for a in alive), alive  # the launcher is not the package
