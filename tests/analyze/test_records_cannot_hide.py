"""A package that imitates malware's hiding tricks still shows in every record (issue 12).

One harmless sdist (PEP 517, so pip builds it in an isolated build env with its own runner)
whose setup.py runs decoys: a copy of `cat` renamed `uname` reading ~/.ssh/id_rsa, a copy of
`sh` renamed `lsb_release` with a child, a copy of `cat` named `bwrap`, `python3 -c "... -m pip"`,
and its own `python3 -m pip install`. None of them may vanish from notable; pip's own build-env
runner must.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from builders import make_sdist
from osptrack.jsonio import read_jsonl
from osptrack.run import AnalyzeOptions, analyze
from osptrack.target import parse_target

pytestmark = pytest.mark.sandbox

PYPROJECT = '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
SETUP_PY = """
import os, shutil, subprocess, sys
home = os.path.expanduser("~")
decoys = "/tmp/osptrack-decoys"
os.makedirs(decoys, exist_ok=True)
shutil.copy("/usr/bin/cat", decoys + "/uname")
shutil.copy("/bin/sh", decoys + "/lsb_release")
shutil.copy("/usr/bin/cat", decoys + "/bwrap")
subprocess.run([decoys + "/uname", home + "/.ssh/id_rsa"], stdout=subprocess.DEVNULL)
subprocess.run([decoys + "/lsb_release", "-c", "/usr/bin/id -u; /usr/bin/id -g"])
subprocess.run([decoys + "/bwrap", home + "/.aws/credentials"], stdout=subprocess.DEVNULL)
subprocess.run([sys.executable, "-c", "print('decoy-ran')  # -m pip"])
subprocess.run([sys.executable, "-m", "pip", "install", "--no-index", "osptrack-nothing-here"])
from setuptools import setup
setup(name="osptrack-hider", version="1.0.0", py_modules=["osptrack_hider"])
"""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("src")
    files = {"osptrack_hider.py": "VALUE = 1\n", "pyproject.toml": PYPROJECT}
    archive = make_sdist(src, "osptrack-hider", "1.0.0", SETUP_PY, files)
    out = tmp_path_factory.mktemp("runs") / "hider"
    outcome = analyze(
        parse_target("pypi", str(archive)), AnalyzeOptions(phases=("install",), timeout_s=180), out
    )
    assert outcome.statuses == {"install": "completed"}
    return out


def run_json(run_dir: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((run_dir / "run.json").read_text())
    return result


def test_a_renamed_copy_stays_notable_with_its_children(run_dir: Path) -> None:
    commands = run_json(run_dir)["notable"]["commands"]
    assert any(c.startswith("[install] /tmp/osptrack-decoys/uname /root/.ssh/id_rsa") for c in commands), (
        commands
    )
    assert any("/tmp/osptrack-decoys/lsb_release -c" in c for c in commands), commands
    assert "[install] /usr/bin/id -g" in commands, commands  # the renamed shell's child
    baits = run_json(run_dir)["notable"]["bait_reads"]
    assert "[install] /root/.ssh/id_rsa by /tmp/osptrack-decoys/uname" in baits, baits


def test_a_program_named_bwrap_is_not_taken_for_the_sandbox(run_dir: Path) -> None:
    run = run_json(run_dir)
    assert any("/tmp/osptrack-decoys/bwrap" in c for c in run["notable"]["commands"]), run["notable"]
    assert any(r["exe"] == "/tmp/osptrack-decoys/bwrap" for r in run["bait_reads"]), run["bait_reads"]
    events = read_jsonl(run_dir / "events.jsonl")
    assert any(e.get("exe") == "/tmp/osptrack-decoys/bwrap" and e["kind"] == "file" for e in events)


def test_argv_that_mentions_pip_does_not_hide(run_dir: Path) -> None:
    commands = run_json(run_dir)["notable"]["commands"]
    assert any("decoy-ran" in c and "# -m pip" in c for c in commands), commands
    assert any("-m pip install --no-index osptrack-nothing-here" in c for c in commands), commands


def test_pips_own_processes_are_not_notable(run_dir: Path) -> None:
    commands = run_json(run_dir)["notable"]["commands"]
    events = read_jsonl(run_dir / "events.jsonl")
    runner = [
        e
        for e in events
        if e["kind"] == "process" and e["op"] == "exec" and "__pip-runner__.py" in str(e.get("argv"))
    ]
    assert runner, "pip built this sdist without its isolated build env: the test proves nothing"
    assert not any("__pip-runner__" in c for c in commands), commands
    assert not any("_in_process.py" in c for c in commands), commands
    # pip's own user-agent probes (the real lsb_release and uname) stay out.
    assert not any(
        c.startswith(("[install] lsb_release", "[install] uname", "[install] getopt")) for c in commands
    )
