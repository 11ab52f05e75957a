"""`osptrack batch` says, under each package's line, what was notable in each phase (issue 12)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from test_batch_cli import cli

from builders import EXFIL_HOST, make_wheel, suspicious_npm

pytestmark = pytest.mark.sandbox


def test_each_finished_package_gets_a_findings_line_per_notable_phase(tmp_path: Path) -> None:
    evil = suspicious_npm(tmp_path)
    quiet = make_wheel(tmp_path, "osptrack-quiet", "0.1", {"osptrack_quiet/__init__.py": "X = 1\n"})
    targets = tmp_path / "t.csv"
    targets.write_text(f"npm,osptrack-evil,1.0.0,{evil}\npypi,osptrack-quiet,0.1,{quiet}\n")
    result = cli(str(targets), "--out", str(tmp_path / "out"), "--retries", "0", "--workers", "1",
                 env_extra={"COLUMNS": "250"})  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    done = {line.split()[1]: i for i, line in enumerate(lines) if line.startswith("done ")}
    assert set(done) == {"npm/osptrack-evil@1.0.0", "pypi/osptrack-quiet@0.1"}, result.stdout
    after_evil = lines[done["npm/osptrack-evil@1.0.0"] + 1]
    assert re.match(r"\s+install: ", after_evil), result.stdout
    for finding in ("bait reads 1", "commands", "sh -c id", f"dns 1 ({EXFIL_HOST})", "connections 1"):
        assert finding in after_evil, after_evil
    following = lines[done["pypi/osptrack-quiet@0.1"] + 1 : done["pypi/osptrack-quiet@0.1"] + 2]
    assert not any(re.match(r"\s+(install|import): ", line) for line in following), result.stdout
