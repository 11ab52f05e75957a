"""`../shared` beside the repository: the corpus and data snapshots some tests read.

A fresh clone has no `../shared`. Tests that need it skip with a reason saying so (use
`needs(path)`), and nothing here reads a file at import time, so collection never fails.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

SHARED = (Path(__file__).resolve().parents[1] / ".." / "shared").resolve()
CORPUS = SHARED / "corpus"
CORPUS_MANIFEST = CORPUS / "manifest.json"
OSV_ZIP = SHARED / "data" / "malicious-packages-main.zip"
PYPI_BUILD = CORPUS / "pypi" / "_build"


def needs(path: Path) -> pytest.MarkDecorator:
    """Skip unless `path` (under ../shared) exists."""
    where = path.relative_to(SHARED) if path.is_relative_to(SHARED) else path
    return pytest.mark.skipif(
        not path.exists(), reason=f"needs ../shared/{where}, absent here (a fresh clone has no ../shared)"
    )


def corpus_entries() -> list[dict[str, Any]]:
    """The corpus manifest's packages, or [] without ../shared."""
    if not CORPUS_MANIFEST.is_file():
        return []
    packages: list[dict[str, Any]] = json.loads(CORPUS_MANIFEST.read_text())["packages"]
    return packages


def pypi_build_tools() -> str:
    """Offline setuptools/wheel for sdist builds: the corpus's copy, else the one setup.sh fetched."""
    if PYPI_BUILD.is_dir():
        return str(PYPI_BUILD)
    from osptrack.ecosystems.pypi import build_tools_dir

    found = build_tools_dir()
    if found is None:
        pytest.skip("no offline setuptools/wheel: run scripts/setup.sh (or provide ../shared)")
    return str(found)
