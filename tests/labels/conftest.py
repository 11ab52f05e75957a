"""Fixtures for the label tests; the record builders live in labels_fixtures.py."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from labels_fixtures import write_tree


@pytest.fixture
def osv_tree(tmp_path: Path) -> Callable[[list[tuple[str, dict[str, Any]]]], Path]:
    def build(records: list[tuple[str, dict[str, Any]]]) -> Path:
        return write_tree(tmp_path / "malicious-packages-main", records)

    return build
