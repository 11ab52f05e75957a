"""Usage mistakes are one line and exit 2; -h/--help print help; --version prints the version."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from osptrack import __version__

OSPTRACK = [sys.executable, "-m", "osptrack.cli"]


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*OSPTRACK, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "missing command: one of analyze, batch, dataset"),
        (["explode"], "No such command 'explode'"),
        (["analyze"], "Missing argument"),
        (["analyze", "pypi"], "Missing argument 'TARGET'"),
        (["analyze", "pypi", "x==1", "--bogus"], "No such option '--bogus'"),
        (["analyze", "pypi", "x==1", "--timeout"], "requires an argument"),
        (["analyze", "pypi", "x==1", "--timeout", "abc"], "'--timeout'"),
        (["dataset"], "missing command: one of baseline, build, compare, stats"),
        (["labels", "nope"], "No such command 'nope'"),
        (["batch"], "Missing argument"),
        (["batch", "t.csv", "--workers", "two", "--out", "o"], "'--workers'"),
    ],
)
def test_usage_error_is_one_line_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    proc = run_cli(*args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("osptrack: error: ") and message.lower() in lines[0].lower(), lines[0]
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert list(tmp_path.iterdir()) == []


# Every option that is a duration, a count or a size: nan, inf, 0 and -1 stop before any work.
NUMERIC = [
    (["analyze", "pypi", "x==1"], "--timeout"),
    (["batch", "t.csv", "--out", "o"], "--timeout"),
    (["batch", "t.csv", "--out", "o"], "--package-timeout"),
    (["batch", "t.csv", "--out", "o"], "--workers"),
    (["dataset", "build", "runs", "--labels", "l.parquet", "--out", "o"], "--workers"),
    (["dataset", "build", "runs", "--labels", "l.parquet", "--out", "o"], "--chunk-size"),
    (["dataset", "baseline", "pypi", "--out", "o"], "--timeout"),
    (["hunt", "runs", "--sql", "select 1"], "--workers"),
]


def main_in_process(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """main() as the console script runs it, without a new interpreter per case (the matrix is big)."""
    from osptrack.cli import main

    argv = sys.argv
    sys.argv = ["osptrack", *args]
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.argv = argv
    return code, capsys.readouterr().err


@pytest.mark.parametrize(("args", "option"), NUMERIC)
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e999", "0", "-1"])
def test_numeric_options_must_be_positive_and_finite(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    option: str,
    value: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    code, err = main_in_process([*args, f"{option}={value}"], capsys)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and option in lines[0] and "Traceback" not in err, err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("value", ["nan", "-1", "1.5"])
def test_retries_may_be_zero_but_not_negative_or_nan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    monkeypatch.chdir(tmp_path)
    code, err = main_in_process(["batch", "t.csv", "--out", "o", f"--retries={value}"], capsys)
    assert code == 2 and "--retries" in err, err


def test_a_timeout_of_nan_is_refused_by_the_console_script(tmp_path: Path) -> None:
    proc = run_cli("analyze", "pypi", "x==1", "--timeout", "nan", cwd=tmp_path)
    assert proc.returncode == 2 and "--timeout" in proc.stderr and len(proc.stderr.splitlines()) == 1


@pytest.mark.parametrize("flag", ["-h", "--help"])
@pytest.mark.parametrize(
    "command", [[], ["analyze"], ["batch"], ["dataset"], ["dataset", "build"], ["doctor"]]
)
def test_help_on_both_flags(tmp_path: Path, flag: str, command: list[str]) -> None:
    proc = run_cli(*command, flag, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Usage:" in proc.stdout and proc.stderr == ""


def test_help_texts_speak_to_users(tmp_path: Path) -> None:
    top = run_cli("--help", cwd=tmp_path).stdout
    assert "sandbox" in top and "Exit codes" in top and "doctor" in top
    analyze = " ".join(run_cli("analyze", "--help", cwd=tmp_path).stdout.split())
    assert "install" in analyze and "import" in analyze and "execute" in analyze


def test_version(tmp_path: Path) -> None:
    proc = run_cli("--version", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip() == f"osptrack {__version__}"
    # The command modules are registered as well: --version also works alongside other options.
    both = run_cli("--version", "doctor", cwd=tmp_path)
    assert both.returncode == 0 and both.stdout.strip() == f"osptrack {__version__}"
