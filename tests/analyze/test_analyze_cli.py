"""Bad input: one line on stderr, exit 2, nothing written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from builders import make_wheel

OSPTRACK = [sys.executable, "-m", "osptrack.cli"]


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*OSPTRACK, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["analyze", "cobol", "x==1"], "unknown ecosystem"),
        (["analyze", "pypi", "bad name==1"], "invalid pypi package name"),
        (["analyze", "pypi", "ok==1;rm"], "invalid version"),
        (["analyze", "pypi", "./missing-1.0.tar.gz"], "archive not found"),
        (["analyze", "pypi", "six==1.16.0"], "not found in --deps-dir"),
        (["analyze", "pypi", "x==1", "--phases", "install,explode"], "unknown phase"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    proc = run_cli(*args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_archive_that_is_not_a_package(tmp_path: Path) -> None:
    junk = tmp_path / "junk-1.0.tar.gz"
    junk.write_bytes(b"\x1f\x8b\x08\x00garbage")
    proc = run_cli("analyze", "pypi", str(junk), "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert proc.returncode == 2 and "not a readable archive" in proc.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.sandbox
def test_cli_summary_and_exit_0(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "quiet-pkg", "1.0", {"quiet_pkg/__init__.py": "X = 1\n"})
    proc = run_cli("analyze", "pypi", str(wheel), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "osptrack-runs" / "pypi-quiet-pkg-1.0"
    assert {p.name for p in out.iterdir()} == {"result.json", "events.jsonl", "network.jsonl", "run.json"}
    assert "completed" in proc.stdout and "install" in proc.stdout


@pytest.mark.sandbox
def test_private_deps_dir_is_staged_for_the_sandbox(tmp_path: Path) -> None:
    """pytest's tmp_path is 0700: the sandbox user could not enter it if it were bound as is."""
    deps = tmp_path / "private-deps"
    deps.mkdir(mode=0o700)
    make_wheel(deps, "dep-a", "1.0", {"dep_a/__init__.py": "A = 1\n"})
    (deps / "notes.txt").write_text("not an archive: never shown to the sandbox")
    main = make_wheel(
        tmp_path, "main-b", "2.0", {"main_b/__init__.py": "import dep_a\n"}, requires=("dep-a",)
    )
    proc = run_cli(
        "analyze", "pypi", str(main), "--deps-dir", str(deps), "--out", str(tmp_path / "r"), cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "r" / "result.json").read_text())
    assert {p: r["Status"] for p, r in result["Analysis"].items()} == {
        "install": "completed",
        "import": "completed",
    }
    home = json.loads((tmp_path / "r" / "run.json").read_text())["persona"]["home"]
    site = f"{home}/.local/lib/python3.11/site-packages"  # `pip install --user`'s target
    assert any(f["Path"].startswith(f"{site}/dep_a/") for f in result["Analysis"]["import"]["Files"])


@pytest.mark.sandbox
def test_json_format_prints_the_report_views_summary(tmp_path: Path) -> None:
    """--format json reads run.json and result.json only; its summary is still the full view's."""
    from osptrack.jsonio import dumps
    from osptrack.report.view import load

    wheel = make_wheel(
        tmp_path, "json-pkg", "1.0", {"json_pkg/__init__.py": "open('/etc/hostname').read()\n"}
    )
    out = tmp_path / "r"
    proc = run_cli("analyze", "pypi", str(wheel), "--out", str(out), "--format", "json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    view = load(out)
    expected = {"summary": view.summary | {"run_dir": str(out)}, "verdict": view.verdict.to_dict()}
    assert data == json.loads(dumps(expected))
    assert data["summary"]["counts"]["import"]["files"] > 0  # the comparison is over real content
