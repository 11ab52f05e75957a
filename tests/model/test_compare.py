"""`dataset compare` (spread and Cliff's delta) and the fixed `dataset stats --plots`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_model import _dataset

from osptrack.dataset.compare import cliffs_delta, compare, spread
from osptrack.dataset.compare import write_plots as compare_plots
from osptrack.dataset.stats import compute_stats, noise_exact_bars, write_plots
from osptrack.errors import BadInput


def test_cliffs_delta_and_spread() -> None:
    assert cliffs_delta(np.array([5.0, 6.0]), np.array([1.0, 2.0])) == 1.0
    assert cliffs_delta(np.array([1.0, 2.0]), np.array([5.0, 6.0])) == -1.0
    assert cliffs_delta(np.array([1.0, 1.0]), np.array([1.0, 1.0])) == 0.0
    # Brute force on ties: P(a > b) - P(a < b).
    a, b = np.array([0, 0, 1, 3.0]), np.array([0, 1, 1, 2, 5.0])
    brute = (sum(x > y for x in a for y in b) - sum(x < y for x in a for y in b)) / (len(a) * len(b))
    assert cliffs_delta(a, b) == pytest.approx(brute)
    s = spread(np.array([0, 0, 0, 4, 8.0]))
    assert (s["q1"], s["median"], s["q3"], s["max"], s["nonzero_share"]) == (0, 0, 4, 8, 0.4)


def test_compare_by_label_and_plots(tmp_path: Path) -> None:
    ds = _dataset(tmp_path, "k", 4, 5)
    c = compare(ds, "label")
    assert c.groups == ["benign", "malicious"]
    top = {r["feature"]: r for r in c.features[:10]}
    # The synthetic malicious runs all read an SSH key; the benign never do.
    assert top["install_read_ssh_n"]["cliffs_delta"]["malicious vs benign"] == 1.0
    assert c.features[0]["separation"] >= c.features[-1]["separation"]
    (png,) = compare_plots(c, tmp_path / "plots")
    assert png.stat().st_size > 10_000
    with pytest.raises(BadInput, match="two ecosystem groups"):
        compare(ds, "ecosystem")  # all pypi
    with pytest.raises(BadInput, match="--by"):
        compare(ds, "colour")


def test_stats_plots_split_and_no_fake_exact_bar(tmp_path: Path) -> None:
    ds = _dataset(tmp_path, "s", 2, 3)
    stats = compute_stats(ds)
    assert len(stats.labels) == stats.reports and set(stats.labels) == {"benign", "malicious"}
    names = sorted(p.name for p in write_plots(stats, tmp_path / "plots"))
    assert "events_by_label.png" in names and "events_by_ecosystem.png" in names
    assert "noise_reduction.png" in names
    per_report = stats.noise["per_report"]
    assert per_report["sockets"]["mean_after_exact_baseline"] is None  # the table prints "-"
    assert set(noise_exact_bars(per_report)) == {"files"}
