"""`dataset stats`: the paper's Table II, event-count summary and noise-reduction figures.

Reads only small columns (coordinates, labels, the per-phase counts in features.parquet) and
build_stats.json, so it is quick on a 10,000-report dataset whose nested columns hold 40M records.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from osptrack.dataset.model import PHASES
from osptrack.errors import BadInput

KIND_NAMES = ("files", "sockets", "commands", "dns")


@dataclass
class KindSummary:
    kind: str
    mean_raw: float
    median_raw: float
    mean_denoised: float
    median_denoised: float


@dataclass
class DatasetStats:
    reports: int
    table2: list[tuple[str, str, str, int]]  # ecosystem, label, sub_label, count
    by_source: dict[str, int]
    kinds: list[KindSummary]
    noise: dict[str, Any] = field(default_factory=dict)
    # Per-report values behind the plots' spread (not in the JSON): kind -> counts, and the
    # report's label and ecosystem, in row order.
    raw_counts: dict[str, list[int]] = field(default_factory=dict)
    denoised_counts: dict[str, list[int]] = field(default_factory=dict)
    labels: list[str] = field(default_factory=list)
    ecosystems: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "reports": self.reports,
            "table2": [
                {"Ecosystem": e, "Label": lab, "Sub_Label": s, "count": n} for e, lab, s, n in self.table2
            ],
            "by_source": self.by_source,
            "events_per_report": [k.__dict__ for k in self.kinds],
            "noise": self.noise,
        }


def _read(path: Path, columns: list[str]) -> pa.Table:
    if not path.is_file():
        raise BadInput(f"{path} not found: run `osptrack dataset build` first")
    try:
        return pq.read_table(path, columns=columns)
    except (pa.ArrowInvalid, OSError, KeyError) as exc:
        raise BadInput(f"{path}: not a dataset file ({exc})") from None


def _label_text(value: int | None) -> str:
    return "unknown" if value is None else ("malicious" if value == 1 else "benign")


def compute_stats(folder: Path) -> DatasetStats:
    if not folder.is_dir():
        raise BadInput(f"dataset folder not found: {folder}")
    meta = _read(folder / "dataset.parquet", ["Ecosystem", "Label", "Sub_Label", "Simulation_Source"])
    counts: dict[tuple[str, str, str], int] = {}
    by_source: dict[str, int] = {}
    for eco, label, sub, src in zip(
        meta.column("Ecosystem").to_pylist(),
        meta.column("Label").to_pylist(),
        meta.column("Sub_Label").to_pylist(),
        meta.column("Simulation_Source").to_pylist(),
        strict=True,
    ):
        key = (eco, _label_text(label), sub or "na")
        counts[key] = counts.get(key, 0) + 1
        by_source[src] = by_source.get(src, 0) + 1
    table2 = [(*k, n) for k, n in sorted(counts.items())]

    cols = [f"{p}_{k}_{s}" for p in PHASES for k in KIND_NAMES for s in ("raw_n", "n")]
    feats = _read(folder / "features.parquet", cols)
    kinds = []
    raw_counts: dict[str, list[int]] = {}
    denoised_counts: dict[str, list[int]] = {}
    for kind in KIND_NAMES:
        raw = _sum_phases(feats, kind, "raw_n")
        den = _sum_phases(feats, kind, "n")
        raw_counts[kind], denoised_counts[kind] = raw, den
        kinds.append(
            KindSummary(
                kind,
                statistics.fmean(raw) if raw else 0.0,
                float(statistics.median(raw)) if raw else 0.0,
                statistics.fmean(den) if den else 0.0,
                float(statistics.median(den)) if den else 0.0,
            )
        )
    noise: dict[str, Any] = {}
    build_stats = folder / "build_stats.json"
    if build_stats.is_file():
        noise = orjson.loads(build_stats.read_bytes()).get("noise", {})
        n = max(meta.num_rows, 1)
        raw = noise.get("raw", {})
        exact = noise.get("removed_exact_paths", {})
        templ = noise.get("removed_after_templating", {})
        noise["per_report"] = {
            k: {
                "mean_raw": raw.get(k, 0) / n,
                "mean_after_exact_baseline": (raw.get(k, 0) - exact[k]) / n if k in exact else None,
                "mean_after_baseline_and_templating": (raw.get(k, 0) - templ.get(k, 0)) / n,
                "removed_share": (templ.get(k, 0) / raw[k]) if raw.get(k) else 0.0,
            }
            for k in KIND_NAMES
        }
    return DatasetStats(
        meta.num_rows,
        table2,
        dict(sorted(by_source.items())),
        kinds,
        noise,
        raw_counts,
        denoised_counts,
        [_label_text(v) for v in meta.column("Label").to_pylist()],
        [str(v) for v in meta.column("Ecosystem").to_pylist()],
    )


def _sum_phases(table: pa.Table, kind: str, suffix: str) -> list[int]:
    total: list[int] | None = None
    for p in PHASES:
        values = table.column(f"{p}_{kind}_{suffix}").to_pylist()
        total = values if total is None else [a + b for a, b in zip(total, values, strict=True)]
    return total or []


def noise_exact_bars(per_report: dict[str, dict[str, Any]]) -> dict[str, float]:
    """The "baseline, exact paths" bars: only kinds that have that step (files), never a stand-in."""
    return {
        k: row["mean_after_exact_baseline"]
        for k, row in per_report.items()
        if row["mean_after_exact_baseline"] is not None
    }


def write_plots(stats: DatasetStats, folder: Path) -> list[Path]:
    """PNG charts: Table II, records per report (spread; split by label and ecosystem), noise removed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from osptrack.outputs import check_output_dir, claim_output_dir

    check_output_dir(folder, "plots", option="--plots")
    claim_output_dir(folder, "plots")
    written: list[Path] = []

    def save(fig: Any, name: str) -> None:
        path = folder / name
        tmp = folder / f".{name}.tmp.png"
        fig.savefig(tmp, dpi=110, bbox_inches="tight", metadata={"Software": None})
        plt.close(fig)
        tmp.replace(path)
        written.append(path)

    ecos = sorted({e for e, _, _, _ in stats.table2})
    groups = sorted({(lab, sub) for _, lab, sub, _ in stats.table2})
    fig, ax = plt.subplots(figsize=(8, 4.5))
    bottom = [0] * len(ecos)
    for lab, sub in groups:
        heights = [
            sum(n for e, la, s, n in stats.table2 if e == eco and la == lab and s == sub) for eco in ecos
        ]
        ax.bar(ecos, heights, bottom=bottom, label=f"{lab} / {sub}")
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    ax.set_ylabel("reports")
    ax.set_title("Reports by ecosystem, Label and Sub_Label (Table II)")
    ax.legend(fontsize=8)
    save(fig, "table2.png")

    from osptrack.dataset.compare import symlog_axis

    # Spread, not means: boxes of records per report, raw and after noise removal, per kind.
    fig, ax = plt.subplots(figsize=(8, 4.5))
    kinds = [k.kind for k in stats.kinds]
    data, positions = [], []
    for i, kind in enumerate(kinds):
        data += [stats.raw_counts.get(kind) or [0], stats.denoised_counts.get(kind) or [0]]
        positions += [3 * i + 0.6, 3 * i + 1.4]
    boxes = ax.boxplot(data, positions=positions, widths=0.7, whis=(5, 95), patch_artist=True)
    for n, patch in enumerate(boxes["boxes"]):
        patch.set_facecolor("#c6dbef" if n % 2 == 0 else "#fdae6b")
    ax.set_xticks([3 * i + 1 for i in range(len(kinds))], kinds)
    symlog_axis(ax)
    ax.set_ylabel("records per report")
    ax.legend([boxes["boxes"][0], boxes["boxes"][1]], ["raw", "after noise removal"])
    ax.set_title("Event records per report (boxes: quartiles, whiskers: 5th-95th percentile)")
    save(fig, "events_per_report.png")

    # The same de-noised counts split by label and by ecosystem.
    splits: list[tuple[str, list[str]]] = [("label", stats.labels), ("ecosystem", stats.ecosystems)]
    for split, keys in splits:
        names_ = sorted(set(keys))
        if not names_:
            continue
        fig, axes = plt.subplots(1, len(kinds), figsize=(3.2 * len(kinds), 3.8), squeeze=False)
        for ax, kind in zip(axes[0], kinds, strict=True):
            values = stats.denoised_counts.get(kind) or []
            per = [[v for v, k in zip(values, keys, strict=True) if k == g] or [0] for g in names_]
            ax.boxplot(per, whis=(5, 95))
            ax.set_xticks(
                range(1, len(names_) + 1), [f"{g}\n(n={keys.count(g)})" for g in names_], fontsize=8
            )
            symlog_axis(ax)
            ax.set_title(kind)
        fig.suptitle(f"De-noised records per report by {split} (quartiles, 5th-95th percentile whiskers)")
        fig.tight_layout()
        save(fig, f"events_by_{split}.png")

    per_report = stats.noise.get("per_report") or {}
    if per_report:
        fig, ax = plt.subplots(figsize=(8, 4.5))
        kinds = list(per_report)
        raw = [per_report[k]["mean_raw"] for k in kinds]
        final = [per_report[k]["mean_after_baseline_and_templating"] for k in kinds]
        xs = range(len(kinds))
        ax.bar([x - 0.27 for x in xs], raw, width=0.27, label="raw")
        # The exact-path step exists for files only; the table prints "-" elsewhere, so the
        # plot draws no bar there (it used to draw the raw value under this label).
        exact_bars = noise_exact_bars(per_report)
        exact_x = [kinds.index(k) for k in exact_bars]
        ax.bar(exact_x, list(exact_bars.values()), width=0.27, label="baseline, exact paths (files only)")
        for x, k in zip(xs, kinds, strict=True):
            if per_report[k]["mean_after_exact_baseline"] is None:
                ax.text(x, 0.05, "n/a", ha="center", va="bottom", fontsize=8, color="grey")
        ax.bar([x + 0.27 for x in xs], final, width=0.27, label="baseline + templating")
        ax.set_xticks(list(xs), kinds)
        symlog_axis(ax)
        ax.set_ylabel("mean records per report (all reports)")
        ax.set_title("Noise reduction, step by step")
        ax.legend()
        save(fig, "noise_reduction.png")
    return written
