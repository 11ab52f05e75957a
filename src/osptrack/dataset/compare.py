"""`dataset compare`: how behaviour differs across ecosystems or labels, feature by feature.

Distributions, not means: behaviour counts are heavy-tailed (most runs do nothing unusual, a few
do a lot), so each group is described by its quartiles, 90th percentile, maximum and the share of
runs where the feature is non-zero. Separation is Cliff's delta (P(X > Y) - P(X < Y) for a run X
of one group and Y of the other), a rank effect size that heavy tails and ties do not distort:
0 is no separation, +-1 complete. For ecosystems each group is compared with all the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from osptrack.dataset.features import FEATURE_NAMES
from osptrack.dataset.stats import _read
from osptrack.errors import BadInput

BY = ("label", "ecosystem")
_KEYS = ("Ecosystem", "Label")


def _names(path: Path) -> set[str]:
    try:
        return set(pq.read_schema(path).names)
    except (OSError, ValueError):
        return set()  # _read names the problem


def cliffs_delta(a: np.ndarray, b: np.ndarray) -> float | None:
    """Cliff's delta of a over b from the Mann-Whitney U (average ranks for ties), O(n log n)."""
    if not len(a) or not len(b):
        return None
    from scipy.stats import rankdata

    ranks = rankdata(np.concatenate([a, b]))
    u = float(np.sum(ranks[: len(a)])) - len(a) * (len(a) + 1) / 2
    return 2 * u / (len(a) * len(b)) - 1


def spread(values: np.ndarray) -> dict[str, float | int]:
    if not len(values):
        return {"n": 0}
    q1, med, q3, p90 = np.percentile(values, [25, 50, 75, 90])
    return {
        "n": len(values),
        "q1": float(q1),
        "median": float(med),
        "q3": float(q3),
        "p90": float(p90),
        "max": float(values.max()),
        "nonzero_share": float(np.mean(values != 0)),
    }


@dataclass
class Comparison:
    by: str
    groups: list[str]
    features: list[dict[str, Any]]  # sorted by separation, strongest first
    values: dict[str, dict[str, np.ndarray]]  # feature -> group -> values (for plots)

    def to_json(self) -> dict[str, Any]:
        return {"by": self.by, "groups": self.groups, "features": self.features}


def _label_name(v: Any) -> str:
    return "unknown" if v is None else ("malicious" if v == 1 else "benign")


def compare(folder: Path, by: str = "label") -> Comparison:
    if by not in BY:
        raise BadInput(f"--by must be one of {', '.join(BY)}, not {by!r}")
    if not folder.is_dir():
        raise BadInput(f"dataset folder not found: {folder}")
    path = folder / "features.parquet"
    present = _names(path)
    table = _read(path, [*_KEYS, *(n for n in FEATURE_NAMES if n in present)])
    key = (
        [_label_name(v) for v in table.column("Label").to_pylist()]
        if by == "label"
        else [str(v) for v in table.column("Ecosystem").to_pylist()]
    )
    keys = np.asarray(key)
    groups = sorted(set(key) - ({"unknown"} if by == "label" else set()))
    if len(groups) < 2:
        raise BadInput(
            f"{folder}: needs at least two {by} groups to compare, has {', '.join(groups) or 'none'}"
        )
    rows: list[dict[str, Any]] = []
    values: dict[str, dict[str, np.ndarray]] = {}
    for name in FEATURE_NAMES:
        if name not in table.column_names:
            continue
        col = np.asarray(table.column(name).to_numpy(zero_copy_only=False), dtype=np.float64)
        per = {g: col[(keys == g) & ~np.isnan(col)] for g in groups}
        if all(not len(v) for v in per.values()):
            continue
        values[name] = per
        if by == "label":
            deltas = (
                {"malicious vs benign": cliffs_delta(per.get("malicious", np.array([])), per["benign"])}
                if ("benign" in per)
                else {}
            )
        else:
            deltas = {f"{g} vs rest": cliffs_delta(per[g], col[(keys != g) & ~np.isnan(col)]) for g in groups}
        known = [abs(d) for d in deltas.values() if d is not None]
        rows.append(
            {
                "feature": name,
                "groups": {g: spread(v) for g, v in per.items()},
                "cliffs_delta": deltas,
                "separation": max(known) if known else 0.0,
            }
        )
    rows.sort(key=lambda r: (-r["separation"], r["feature"]))
    return Comparison(by, groups, rows, values)


def symlog_axis(ax: Any) -> None:
    """Counts from 0 to thousands on one readable axis: linear below 1, log above, plain numbers."""
    from matplotlib.ticker import FuncFormatter

    ax.set_yscale("symlog", linthresh=1)
    ax.set_ylim(bottom=-0.3)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))


def write_plots(c: Comparison, folder: Path, top: int = 12) -> list[Path]:
    """Box plots of the `top` most separating features, one panel each, a box per group."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    feats = [r for r in c.features if r["separation"] > 0][:top] or c.features[:top]
    cols = 4
    nrows = max(1, -(-len(feats) // cols))
    fig, axes = plt.subplots(nrows, cols, figsize=(4 * cols, 3.2 * nrows), squeeze=False)
    for ax, row in zip(axes.flat, feats, strict=False):
        data = [c.values[row["feature"]][g] for g in c.groups]
        ax.boxplot([d if len(d) else [np.nan] for d in data], showfliers=True, whis=(5, 95))
        ax.set_xticks(range(1, len(c.groups) + 1), c.groups, fontsize=8, rotation=20)
        symlog_axis(ax)
        delta = ", ".join(f"{v:+.2f}" for v in row["cliffs_delta"].values() if v is not None)
        ax.set_title(f"{row['feature']}\nCliff's δ {delta}", fontsize=8)
    for ax in list(axes.flat)[len(feats) :]:
        ax.axis("off")
    fig.suptitle(f"Most separating features by {c.by} (boxes: quartiles, whiskers: 5th-95th percentile)")
    fig.tight_layout()
    path = folder / f"compare_{c.by}.png"
    tmp = folder / f".{path.name}.tmp.png"
    fig.savefig(tmp, dpi=100, metadata={"Software": None})
    plt.close(fig)
    tmp.replace(path)
    return [path]
