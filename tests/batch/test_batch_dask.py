"""One batch through a Dask LocalCluster, writing to an fsspec URL (file://)."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import pytest
from fake_analyzer import FakeOptions

from osptrack.batch.model import make_target
from osptrack.batch.runner import BatchOptions, run_batch


@pytest.mark.slow
def test_local_cluster_run_to_fsspec_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("FAKE_SLEEP", "0.2")
    out = tmp_path / "out"
    targets = [make_target("npm", f"p{i}", "1.0.0") for i in range(4)] + [
        make_target("npm", "fail-f", "1.0.0")
    ]
    options = BatchOptions(
        out=f"file://{out}",
        cluster="local:2",
        retries=1,
        analyzer="fake_analyzer:analyze",
        analyze=FakeOptions(),
    )
    started = time.monotonic()
    summary = run_batch(targets, options)
    elapsed = time.monotonic() - started
    assert summary.finished == 4
    assert [r.target.name for r in summary.failed] == ["fail-f"]
    for i in range(4):
        assert (out / "npm" / f"p{i}" / "1.0.0" / "run.json").is_file()
        assert (out / "npm" / f"p{i}" / "1.0.0" / "result.json").is_file()
    assert not (out / "npm" / "fail-f").exists()
    with open(out / "manifest.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted((r["name"], r["attempt"], r["outcome"]) for r in rows) == [
        ("fail-f", "1", "failed"),
        ("fail-f", "2", "failed"),
        *[(f"p{i}", "1", "finished") for i in range(4)],
    ]
    # Both Dask worker processes ran attempts (each attempt's parent is the Dask worker that ran it).
    assert len(set((tmp_path / "ppids.log").read_text().split())) == 2
    assert elapsed < 60


@pytest.mark.slow
def test_existing_scheduler_by_address(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from distributed import LocalCluster

    monkeypatch.setenv("FAKE_STATE_DIR", str(tmp_path))
    out = tmp_path / "out"
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=True, dashboard_address=None) as cluster:
        address = cluster.scheduler_address
        assert address.startswith("tcp://")
        options = BatchOptions(
            out=str(out), cluster=address, analyzer="fake_analyzer:analyze", analyze=FakeOptions()
        )
        summary = run_batch([make_target("pypi", f"q{i}", "1.0") for i in range(3)], options)
        assert summary.finished == 3
        assert len(cluster.scheduler.workers) == 1  # our cluster was used, and is still up
    assert sorted(p.parent.parent.name for p in out.glob("pypi/*/1.0/run.json")) == ["q0", "q1", "q2"]
