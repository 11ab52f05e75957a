"""A phase that ends in an error shows why: analyze prints the last lines of its stderr."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from builders import make_wheel
from osptrack.run import stderr_tail


def test_stderr_tail_keeps_the_last_non_blank_lines_printable() -> None:
    text = b"".join(f"line {i}\n".encode() for i in range(30)) + b"\n\n\x1b[31mboom\xff\n  \n"
    tail = stderr_tail(text, lines=3)
    assert tail == ["line 28", "line 29", "?[31mboom\ufffd"]
    assert stderr_tail(b"") == []


@pytest.mark.sandbox
def test_a_failing_import_prints_its_traceback_tail(tmp_path: Path) -> None:
    wheel = make_wheel(
        tmp_path,
        "broken-pkg",
        "1.0",
        {"broken_pkg/__init__.py": "raise RuntimeError('osptrack-marker-42')\n"},
    )
    proc = subprocess.run(
        [sys.executable, "-m", "osptrack.cli", "analyze", "pypi", str(wheel), "--out", str(tmp_path / "r")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    out = " ".join(proc.stdout.split())
    assert "import ended error_analysis; last lines of its stderr:" in out, proc.stdout
    assert "RuntimeError: osptrack-marker-42" in out
    assert "install ended" not in out  # only failed phases
