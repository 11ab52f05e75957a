"""Run a test package through `analyze()` and keep what it wrote into its home during each phase.

The sandbox's home is a host tmpfs removed with the run, so a probe package that writes what it
saw (the layout, the locale, ...) there is read back by wrapping run_phase.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


def analyze_keeping(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    archive: Path,
    pattern: str,
    before_phase: Callable[[str], None] | None = None,
) -> tuple[Path, Path]:
    """Analyse the PyPI `archive`; returns (the run folder, a folder holding every home file that
    matched `pattern` after a phase). `before_phase(name)` runs as each phase starts."""
    import osptrack.run as run
    from osptrack.run import AnalyzeOptions, analyze
    from osptrack.target import parse_target

    kept = tmp_path / "kept"
    kept.mkdir()
    base = run.run_phase

    def run_phase(name: str, spec: Any, ws: Any, *a: Any, **k: Any) -> Any:
        if before_phase is not None:
            before_phase(name)
        outcome = base(name, spec, ws, *a, **k)
        for found in ws.home.glob(pattern):
            shutil.copyfile(found, kept / found.name)
        return outcome

    monkeypatch.setattr(run, "run_phase", run_phase)
    out = tmp_path / "run"
    outcome = analyze(parse_target("pypi", str(archive)), AnalyzeOptions(timeout_s=180), out)
    assert outcome.statuses == {"install": "completed", "import": "completed"}, outcome.statuses
    return out, kept
