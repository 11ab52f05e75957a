"""osptrack.outputs: the --out rule every writer applies, and the atomic swap of a run folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from osptrack.errors import BadInput
from osptrack.outputs import MARKER, check_output_dir, check_output_file, claim_output_dir, replace_dir


def _run_folder(path: Path, tag: str = "old") -> Path:
    path.mkdir(parents=True)
    (path / "result.json").write_text(tag)
    (path / "run.json").write_text(json.dumps({"tool": {"name": "osptrack", "version": "0.1.0"}}))
    return path


def test_missing_and_empty_folders_are_accepted(tmp_path: Path) -> None:
    assert check_output_dir(tmp_path / "a" / "b", "run") == (tmp_path / "a" / "b").resolve()
    (tmp_path / "empty").mkdir()
    check_output_dir(tmp_path / "empty", "dataset")
    assert not (tmp_path / "a").exists()  # checking writes nothing


def test_an_earlier_output_of_the_same_kind_is_accepted(tmp_path: Path) -> None:
    check_output_dir(_run_folder(tmp_path / "run"), "run")
    batch = tmp_path / "batch"
    batch.mkdir()
    (batch / "manifest.csv").write_text("timestamp,ecosystem,name,version,archive,install\n")
    check_output_dir(batch, "batch")
    data = tmp_path / "data"
    data.mkdir()
    (data / "build_stats.json").write_text(json.dumps({"tool": {"name": "osptrack"}}))
    check_output_dir(data, "dataset")
    base = tmp_path / "base"
    _run_folder(base / "pypi-null-wheel")
    check_output_dir(base, "baseline")
    plots = tmp_path / "plots"
    claim_output_dir(plots, "plots")
    check_output_dir(plots, "plots")
    claim_output_dir(tmp_path / "newkind", "report")  # a kind added later needs no registration
    check_output_dir(tmp_path / "newkind", "report")


@pytest.mark.parametrize("kind", ["run", "batch", "dataset", "baseline", "plots", "report"])
def test_a_foreign_folder_is_refused_and_left_alone(tmp_path: Path, kind: str) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    with pytest.raises(BadInput, match="not an osptrack"):
        check_output_dir(out, kind)
    assert (out / "thesis.tex").read_text() == "precious"


def test_an_output_of_another_kind_is_refused(tmp_path: Path) -> None:
    run = _run_folder(tmp_path / "run")
    with pytest.raises(BadInput):
        check_output_dir(run, "dataset")
    claim_output_dir(tmp_path / "plots", "plots")
    with pytest.raises(BadInput):
        check_output_dir(tmp_path / "plots", "batch")


def test_a_run_json_that_osptrack_did_not_write_is_not_a_marker(tmp_path: Path) -> None:
    out = tmp_path / "x"
    out.mkdir()
    (out / "run.json").write_text(json.dumps({"tool": {"name": "something-else"}}))
    with pytest.raises(BadInput):
        check_output_dir(out, "run")
    (out / MARKER).write_text("not json")
    with pytest.raises(BadInput):
        check_output_dir(out, "run")


def test_the_current_folder_and_its_parents_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    here = tmp_path / "work"
    _run_folder(here)  # even one that looks like a run: it cannot be swapped from inside
    monkeypatch.chdir(here)
    for path in (".", "./", str(here), "..", "/"):
        with pytest.raises(BadInput, match="current folder"):
            check_output_dir(path, "run")


def test_files_and_paths_under_files_are_refused(tmp_path: Path) -> None:
    file = tmp_path / "notes.txt"
    file.write_text("keep")
    with pytest.raises(BadInput, match="is a file"):
        check_output_dir(file, "run")
    with pytest.raises(BadInput, match="is a file"):
        check_output_dir(file / "sub", "run")
    assert file.read_text() == "keep"
    assert not list(tmp_path.glob(".notes*"))


def test_an_unwritable_location_is_refused(tmp_path: Path) -> None:
    # /proc refuses new entries even to root, like a read-only mount.
    with pytest.raises(BadInput, match="cannot write"):
        check_output_dir("/proc/self/osptrack-out", "run")
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(BadInput, match="cannot write"):
            check_output_dir(locked / "out", "run")


def test_output_files(tmp_path: Path) -> None:
    ours = tmp_path / "labels.parquet"
    check_output_file(ours, lambda p: False, "labels")  # missing: fine
    ours.write_text("x")
    with pytest.raises(BadInput, match="not an osptrack labels file"):
        check_output_file(ours, lambda p: False, "labels")
    check_output_file(ours, lambda p: True, "labels")
    with pytest.raises(BadInput, match="not a file"):
        check_output_file(tmp_path, lambda p: True, "labels")


def test_replace_dir_swaps_and_leaves_nothing_beside(tmp_path: Path) -> None:
    out = _run_folder(tmp_path / "run", "old")
    (out / "extra-old-file").write_text("old")
    tmp = _run_folder(tmp_path / ".run.tmp-1", "new")
    replace_dir(tmp, out)
    assert (out / "result.json").read_text() == "new"
    assert not (out / "extra-old-file").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_replace_dir_into_missing_and_empty(tmp_path: Path) -> None:
    replace_dir(_run_folder(tmp_path / ".a.tmp"), tmp_path / "a")
    (tmp_path / "b").mkdir()
    replace_dir(_run_folder(tmp_path / ".b.tmp"), tmp_path / "b")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]
    assert (tmp_path / "b" / "run.json").is_file()
