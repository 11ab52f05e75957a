"""`osptrack batch` on the command line: bad input is one line, exit 2, nothing written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def cli(*args: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-c", "from osptrack.cli import main; main()", "batch", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("make", "extra", "message"),
    [
        (lambda d: d / "missing.csv", [], "targets not found"),
        (lambda d: (d / "t.csv").write_text("npm,x\n") and d / "t.csv", [], "t.csv:1: expected"),
        (
            lambda d: (d / "t.csv").write_text("npm,x,1.0.0\n") and d / "t.csv",
            ["--workers", "0"],
            "--workers",
        ),
        (
            lambda d: (d / "t.csv").write_text("npm,x,1.0.0\n") and d / "t.csv",
            ["--cluster", "bogus"],
            "--cluster",
        ),
        (
            lambda d: (d / "t.csv").write_text("npm,x,1.0.0\n") and d / "t.csv",
            ["--phases", "nap"],
            "unknown phase",
        ),
        (
            lambda d: (d / "t.parquet").write_bytes(b"nope") and d / "t.parquet",
            [],
            "cannot read labels parquet",
        ),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path: Path, make, extra, message) -> None:  # type: ignore[no-untyped-def]
    targets = make(tmp_path)
    out = tmp_path / "out"
    result = cli(str(targets), "--out", str(out), *extra)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_cli_run_prints_a_line_per_package_and_exit_status(tmp_path: Path) -> None:
    targets = tmp_path / "t.csv"
    targets.write_text("ecosystem,name,version\nnpm,good,1.0.0\nnpm,fail-b,1.0.0\n")
    out = tmp_path / "out"
    state = tmp_path / "state"
    state.mkdir()
    result = cli(
        str(targets), "--out", str(out), "--retries", "0", "--analyzer", "fake_analyzer:analyze",
        env_extra={"FAKE_STATE_DIR": str(state), "COLUMNS": "200"},
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr  # one package failed
    assert "done npm/good@1.0.0" in result.stdout
    assert "failed npm/fail-b@1.0.0" in result.stdout and "simulated analyzer failure" in result.stdout
    assert "1 finished, 1 failed" in result.stdout
    again = cli(
        str(targets), "--out", str(out), "--retries", "0", "--analyzer", "fake_analyzer:analyze",
        env_extra={"FAKE_STATE_DIR": str(state), "COLUMNS": "200"},
    )  # fmt: skip
    assert "resuming: 1 of 2 already finished" in again.stdout


def test_unusable_out_url_is_bad_input(tmp_path: Path) -> None:
    targets = tmp_path / "t.csv"
    targets.write_text("npm,x,1.0.0\n")
    result = cli(str(targets), "--out", "nosuch://bucket/runs", "--analyzer", "fake_analyzer:analyze")
    assert result.returncode == 2 and "cannot use --out nosuch://bucket/runs" in result.stderr
