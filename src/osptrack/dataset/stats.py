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
    for kind in KIND_NAMES:
        raw = _sum_phases(feats, kind, "raw_n")
        den = _sum_phases(feats, kind, "n")
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
    return DatasetStats(meta.num_rows, table2, dict(sorted(by_source.items())), kinds, noise)


def _sum_phases(table: pa.Table, kind: str, suffix: str) -> list[int]:
    total: list[int] | None = None
    for p in PHASES:
        values = table.column(f"{p}_{kind}_{suffix}").to_pylist()
        total = values if total is None else [a + b for a, b in zip(total, values, strict=True)]
    return total or []


def write_plots(stats: DatasetStats, folder: Path) -> list[Path]:
    """PNG charts: Table II, events per report (raw vs de-noised), noise removed per kind."""
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

    fig, ax = plt.subplots(figsize=(8, 4.5))
    xs = range(len(stats.kinds))
    ax.bar([x - 0.2 for x in xs], [k.mean_raw for k in stats.kinds], width=0.4, label="raw")
    ax.bar(
        [x + 0.2 for x in xs], [k.mean_denoised for k in stats.kinds], width=0.4, label="after noise removal"
    )
    ax.set_xticks(list(xs), [k.kind for k in stats.kinds])
    ax.set_yscale("symlog")
    ax.set_ylabel("mean records per report")
    ax.set_title("Event records per report, before and after noise removal")
    ax.legend()
    save(fig, "events_per_report.png")

    per_report = stats.noise.get("per_report") or {}
    if per_report:
        fig, ax = plt.subplots(figsize=(8, 4.5))
        kinds = list(per_report)
        raw = [per_report[k]["mean_raw"] for k in kinds]
        exact = [per_report[k]["mean_after_exact_baseline"] or per_report[k]["mean_raw"] for k in kinds]
        final = [per_report[k]["mean_after_baseline_and_templating"] for k in kinds]
        xs = range(len(kinds))
        ax.bar([x - 0.27 for x in xs], raw, width=0.27, label="raw")
        ax.bar(list(xs), exact, width=0.27, label="baseline, exact paths")
        ax.bar([x + 0.27 for x in xs], final, width=0.27, label="baseline + templating")
        ax.set_xticks(list(xs), kinds)
        ax.set_yscale("symlog")
        ax.set_ylabel("mean records per report")
        ax.set_title("Noise reduction, step by step")
        ax.legend()
        save(fig, "noise_reduction.png")
    return written
