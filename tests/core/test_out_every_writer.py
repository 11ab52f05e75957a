"""Every command that writes keeps the user's files: a foreign --out is refused before any work.

Each case puts a decoy file where the output would go and checks, after the command, that the
command exited 2 with one line, and that the folder holds exactly what it held before.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from builders import make_wheel

HERE = Path(__file__).resolve().parent


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(HERE.parent / "batch"), os.environ.get("PYTHONPATH", "")])
    )
    return subprocess.run(
        [sys.executable, "-m", "osptrack.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def decoy_folder(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "decoy.txt").write_text("the user's own file")
    (folder / ".git").mkdir()
    (folder / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (folder / "manifest.csv").write_text("not a batch manifest\n")
    return folder


def write_run(folder: Path, name: str = "pkg") -> Path:
    """A finished osptrack run folder, as `osptrack analyze` leaves one."""
    folder.mkdir(parents=True)
    doc = {
        "Package": {"Ecosystem": "pypi", "Name": name, "Version": "1.0"},
        "CreatedTimestamp": 0,
        "Analysis": {
            "install": {"Status": "completed", "Files": [], "Sockets": [], "Commands": [], "DNS": []}
        },
    }
    (folder / "result.json").write_text(json.dumps(doc))
    (folder / "events.jsonl").write_text("")
    (folder / "network.jsonl").write_text("")
    run = {
        "tool": {"name": "osptrack", "version": "0.1.0"},
        "package": {"ecosystem": "pypi", "name": name, "version": "1.0"},
        "phases": {"install": {"status": "completed", "wall_s": 1.0}},
        "honeytokens": [],
        "trace": {"valid": True},
    }
    (folder / "run.json").write_text(json.dumps(run))
    return folder


def write_labels(path: Path) -> Path:
    from osptrack.labels.table import IOC_SCHEMA, LABEL_SCHEMA, ColumnTable, write_tables

    labels = ColumnTable(LABEL_SCHEMA)
    labels.append(
        id="MAL-1",
        source="osv",
        ecosystem="pypi",
        name="evil",
        raw_name="evil",
        versions=["1.0"],
        all_versions=False,
        ranges="[]",
        withdrawn=False,
        sub_labels=[],
        sub_label_rules=[],
        osptrack_sub_label="na",
        summary="",
        published="",
        modified="",
        origins=[],
        aliases=[],
        file="",
    )
    write_tables(path, labels.to_arrow(), ColumnTable(IOC_SCHEMA).to_arrow())
    return path


def osv_tree(root: Path) -> Path:
    folder = root / "osv" / "malicious" / "pypi" / "evil"
    folder.mkdir(parents=True)
    record = {
        "id": "MAL-2024-1",
        "summary": "Malicious code in evil",
        "details": "",
        "published": "2024-01-01T00:00:00Z",
        "modified": "2024-01-02T00:00:00Z",
        "affected": [{"package": {"ecosystem": "PyPI", "name": "evil"}, "versions": ["1.0"]}],
    }
    (folder / "MAL-2024-1.json").write_text(json.dumps(record))
    return root


def wheel(tmp: Path) -> Path:
    return make_wheel(tmp, "quiet-pkg", "1.0", {"quiet_pkg/__init__.py": "X = 1\n"})


# (name, how to build the command's inputs in `inputs`, the args before --out, the out option)
def _analyze(inputs: Path) -> list[str]:
    return ["analyze", "pypi", str(wheel(inputs))]


def _batch(inputs: Path) -> list[str]:
    targets = inputs / "t.csv"
    targets.write_text("npm,ok-a,1.0.0\n")
    return ["batch", str(targets), "--analyzer", "fake_analyzer:analyze"]


def _dataset_build(inputs: Path) -> list[str]:
    write_run(inputs / "runs" / "a")
    return [
        "dataset",
        "build",
        str(inputs / "runs"),
        "--labels",
        str(write_labels(inputs / "labels.parquet")),
    ]


def _dataset_baseline(inputs: Path) -> list[str]:
    return ["dataset", "baseline", "pypi"]


def _stats_plots(inputs: Path) -> list[str]:
    data = inputs / "dataset"
    write_run(inputs / "runs" / "a")
    labels = write_labels(inputs / "labels.parquet")
    proc = run_cli(
        "dataset", "build", str(inputs / "runs"), "--labels", str(labels), "--out", str(data), cwd=inputs
    )
    assert proc.returncode == 0, proc.stderr
    return ["dataset", "stats", str(data)]


def _hunt(inputs: Path) -> list[str]:
    write_run(inputs / "runs" / "a")
    return ["hunt", str(inputs / "runs"), "--sql", "select count(*) from runs"]


WRITERS: dict[str, tuple[Callable[[Path], list[str]], str]] = {
    "analyze": (_analyze, "--out"),
    "batch": (_batch, "--out"),
    "dataset build": (_dataset_build, "--out"),
    "dataset baseline": (_dataset_baseline, "--out"),
    "dataset stats --plots": (_stats_plots, "--plots"),
    "hunt --cache": (_hunt, "--cache"),
}


def _refused(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("osptrack: error:"), proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("writer", WRITERS)
def test_a_foreign_folder_is_refused_before_any_work(tmp_path: Path, writer: str) -> None:
    make, option = WRITERS[writer]
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    args = make(inputs)
    out = decoy_folder(tmp_path / "mine")
    before = snapshot(out)
    proc = run_cli(*args, option, str(out), cwd=inputs)
    _refused(proc)
    assert "not an osptrack" in proc.stderr
    assert snapshot(out) == before and sorted(p.name for p in tmp_path.iterdir()) == ["inputs", "mine"]


@pytest.mark.parametrize("writer", WRITERS)
def test_the_current_folder_is_refused(tmp_path: Path, writer: str) -> None:
    make, option = WRITERS[writer]
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    args = make(inputs)
    here = decoy_folder(tmp_path / "here")
    before = snapshot(here)
    _refused(run_cli(*args, option, ".", cwd=here))
    assert snapshot(here) == before
    assert sorted(p.name for p in here.iterdir()) == sorted([".git", "decoy.txt", "manifest.csv"])


@pytest.mark.parametrize("writer", WRITERS)
def test_a_file_is_refused_and_nothing_is_left_beside_it(tmp_path: Path, writer: str) -> None:
    make, option = WRITERS[writer]
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    args = make(inputs)
    target = tmp_path / "notes.txt"
    target.write_text("keep me")
    _refused(run_cli(*args, option, str(target), cwd=inputs))
    assert target.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inputs", "notes.txt"]  # no .notes.txt.old-*


@pytest.mark.parametrize("writer", WRITERS)
def test_an_unwritable_location_is_refused_before_any_work(tmp_path: Path, writer: str) -> None:
    make, option = WRITERS[writer]
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    args = make(inputs)
    proc = run_cli(*args, option, "/proc/self/osptrack-out", cwd=inputs)  # read-only even for root
    _refused(proc)
    assert "cannot write" in proc.stderr


def test_labels_build_refuses_a_foreign_file_and_a_foreign_ioc_sibling(tmp_path: Path) -> None:
    osv = osv_tree(tmp_path / "src")
    mine = tmp_path / "mine.parquet"
    mine.write_bytes(b"my own parquet, not labels")
    _refused(run_cli("labels", "build", "--osv", str(osv), "--out", str(mine), cwd=tmp_path))
    assert mine.read_bytes() == b"my own parquet, not labels"
    sibling = tmp_path / "labels.iocs.parquet"
    sibling.write_bytes(b"someone else's")
    _refused(
        run_cli("labels", "build", "--osv", str(osv), "--out", str(tmp_path / "labels.parquet"), cwd=tmp_path)
    )
    assert sibling.read_bytes() == b"someone else's" and not (tmp_path / "labels.parquet").exists()
    folder = decoy_folder(tmp_path / "folder.parquet")
    _refused(run_cli("labels", "build", "--osv", str(osv), "--out", str(folder), cwd=tmp_path))


def test_labels_build_replaces_its_own_output(tmp_path: Path) -> None:
    osv = osv_tree(tmp_path / "src")
    out = tmp_path / "out" / "labels.parquet"
    for _ in range(2):
        proc = run_cli("labels", "build", "--osv", str(osv), "--out", str(out), cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.parent.iterdir()) == ["labels.iocs.parquet", "labels.parquet"]


def test_dataset_build_and_plots_replace_their_own_output(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    args = _dataset_build(tmp_path)
    out, plots = tmp_path / "dataset", tmp_path / "plots"
    plots.mkdir()  # an empty folder is fine too
    for _ in range(2):
        proc = run_cli(*args, "--out", str(out), cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        proc = run_cli("dataset", "stats", str(out), "--plots", str(plots), cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
    assert (out / "build_stats.json").is_file() and list(plots.glob("*.png"))
    assert not [p for p in tmp_path.iterdir() if ".old" in p.name or ".tmp" in p.name]


def test_batch_resumes_into_its_own_folder(tmp_path: Path) -> None:
    args = _batch(tmp_path)
    out = tmp_path / "runs"
    for _ in range(2):
        proc = run_cli(*args, "--out", str(out), cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
    assert "already finished" in proc.stdout or "already done" in proc.stdout


def test_a_failed_build_leaves_no_folder_behind(tmp_path: Path) -> None:
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "junk.json").write_text("{not json")
    labels = write_labels(tmp_path / "labels.parquet")
    proc = run_cli(
        "dataset",
        "build",
        str(tmp_path / "runs"),
        "--labels",
        str(labels),
        "--out",
        str(tmp_path / "new"),
        cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stderr
    assert not (tmp_path / "new").exists()


@pytest.mark.sandbox
def test_analyze_replaces_an_earlier_run_and_an_empty_folder(tmp_path: Path) -> None:
    archive = wheel(tmp_path)
    out = tmp_path / "runs" / "r"
    out.mkdir(parents=True)  # empty: accepted
    for _ in range(2):  # then an earlier run: replaced
        proc = run_cli("analyze", "pypi", str(archive), "--out", str(out), cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
    assert {p.name for p in out.iterdir()} == {"result.json", "events.jsonl", "network.jsonl", "run.json"}
    assert [p.name for p in out.parent.iterdir()] == ["r"]  # no .r.old-* or .r.tmp-* beside it


def test_model_train_refuses_a_foreign_folder(tmp_path: Path) -> None:
    out = decoy_folder(tmp_path / "mine")
    before = snapshot(out)
    (tmp_path / "dataset").mkdir()
    _refused(run_cli("model", "train", str(tmp_path / "dataset"), "--out", str(out), cwd=tmp_path))
    assert snapshot(out) == before
