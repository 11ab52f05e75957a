"""Fixtures shared by the batch tests that drive the fake analyzer (fake_analyzer.py)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture()
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "state"
    folder.mkdir()
    monkeypatch.setenv("FAKE_STATE_DIR", str(folder))
    monkeypatch.setenv("FAKE_SLEEP", "0")
    return folder
