"""The test-package builders give the same bytes whenever they run (no timestamps leak in).

Tests compare archives built seconds apart (batch staging repacks and compares a tgz): a clock
that moves between the two builds must not change a byte.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from builders import make_npm, make_sdist, make_wheel

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "batch"))
from collections_builder import npm_tgz, sdist  # noqa: E402

BUILDERS: dict[str, Callable[[Path], bytes]] = {
    "sdist": lambda d: make_sdist(d, "pkg", "1.0", "print('x')\n", {"pkg/__init__.py": ""}).read_bytes(),
    "wheel": lambda d: make_wheel(d, "pkg", "1.0", {"pkg/__init__.py": "X = 1\n"}).read_bytes(),
    "npm": lambda d: make_npm(d, "@s/pkg", "1.0.0", {"index.js": "module.exports = 1;\n"}).read_bytes(),
    "collection tgz": lambda d: npm_tgz("pkg", "1.0.0"),
    "collection sdist": lambda d: sdist("pkg", "1.0"),
}


@pytest.mark.parametrize("kind", BUILDERS)
def test_same_bytes_an_hour_later(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = BUILDERS[kind](tmp_path / "a")
    later = time.time() + 3600.5
    monkeypatch.setattr(time, "time", lambda: later)
    assert BUILDERS[kind](tmp_path / "b") == first
