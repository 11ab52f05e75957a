"""Null packages are valid, reproducible archives; baseline loading groups runs by ecosystem."""

from __future__ import annotations

import json
import tarfile
import zipfile
from pathlib import Path

import pytest
from dataset_helpers import TOOL_FILES, phase, write_run

from osptrack.dataset.baseline import (
    NULL_MODULE,
    build_null_npm,
    build_null_pypi_sdist,
    build_null_pypi_wheel,
    load_baselines,
    run_baseline,
)
from osptrack.errors import BadInput


def test_null_archives(tmp_path: Path) -> None:
    wheel = build_null_pypi_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        assert f"{NULL_MODULE}/__init__.py" in names
        metadata = zf.read(f"{NULL_MODULE}-0.0.0.dist-info/METADATA").decode()
        assert "Name: osptrack-null" in metadata and "Version: 0.0.0" in metadata
        record = zf.read(f"{NULL_MODULE}-0.0.0.dist-info/RECORD").decode()
        assert all(name in record for name in names)
    with tarfile.open(build_null_pypi_sdist(tmp_path)) as tf:
        setup_py = tf.extractfile(f"{NULL_MODULE}-0.0.0/setup.py")
        assert setup_py is not None and b"setup(" in setup_py.read()
    with tarfile.open(build_null_npm(tmp_path)) as tf:
        manifest = tf.extractfile("package/package.json")
        assert manifest is not None
        assert json.loads(manifest.read())["name"] == "osptrack-null"
    # Reproducible: the same bytes every time, so a baseline is the same package everywhere.
    again = tmp_path / "again"
    again.mkdir()
    assert build_null_npm(again).read_bytes() == build_null_npm(tmp_path).read_bytes()
    assert build_null_pypi_wheel(again).read_bytes() == wheel.read_bytes()


def test_load_baselines_groups_and_merges(tmp_path: Path) -> None:
    write_run(
        tmp_path / "pypi-null-wheel", "pypi", "osptrack-null", "0.0.0", {"install": phase(TOOL_FILES[:1])}
    )
    write_run(
        tmp_path / "pypi-null-sdist", "pypi", "osptrack-null", "0.0.0", {"install": phase(TOOL_FILES[1:])}
    )
    write_run(tmp_path / "npm-null-tgz", "npm", "osptrack-null", "0.0.0", {"import": phase(TOOL_FILES[:1])})
    baselines = load_baselines(tmp_path)
    assert sorted(baselines) == ["npm", "pypi"]
    assert set(baselines["pypi"].for_phase("install").files) == {f["Path"] for f in TOOL_FILES}
    # A phase the baseline never ran falls back to every phase it did run.
    assert set(baselines["npm"].for_phase("install").files) == {TOOL_FILES[0]["Path"]}
    with pytest.raises(BadInput, match="no baseline run folder"):
        load_baselines(_empty(tmp_path))


def _empty(tmp_path: Path) -> Path:
    empty = tmp_path / "empty"
    empty.mkdir()
    return empty


def test_baseline_for_unsupported_ecosystem(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="no null package for rubygems"):
        run_baseline("rubygems", tmp_path)
