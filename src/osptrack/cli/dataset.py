"""`osptrack dataset build | stats | baseline`: commands only; the logic is in osptrack.dataset."""

from __future__ import annotations

import time
from pathlib import Path

import click
import orjson

from osptrack.cli import params
from osptrack.cli.base import Group, LazyConsole
from osptrack.errors import BadInput


@click.group("dataset", cls=Group)
def app() -> None:
    """Build, describe and de-noise the labelled dataset."""


console = LazyConsole()


@app.command("build")
@params.argument(
    "runs",
    "Run folders, parents of runs, package-analysis result JSON, OSPtrack label_data.csv",
    type=params.PATH,
    nargs=-1,
    required=True,
)
@params.labels_file("labels.parquet from `osptrack labels build`")
@params.out("Output folder: new, empty, or an earlier dataset to replace")
@params.optional_path("--baseline", "Folder of baseline runs (`osptrack dataset baseline`)")
@params.format_("Comma list: parquet,csv", "parquet,csv")
@click.option("--unlabelled-as", default="benign", help="benign (Label=0) or unknown (Label null)")
@params.workers("Worker processes", default=2)
@click.option(
    "--chunk-size",
    type=int,
    default=32,
    callback=params.check(params.at_least_one),
    help="Reports per chunk (row group)",
)
@click.option("--skip-bad", is_flag=True, help="Skip unreadable runs/records (counted) instead of stopping")
def build_command(
    runs: tuple[Path, ...],
    labels: Path,
    out: Path,
    baseline: Path | None,
    format: str,
    unlabelled_as: str,
    workers: int,
    chunk_size: int,
    skip_bad: bool,
) -> None:
    """Build dataset.parquet, features.parquet and label_data.csv from runs and results."""
    from osptrack.dataset.build import BuildOptions, build, parse_formats
    from osptrack.dataset.labelling import UNLABELLED_CHOICES

    if unlabelled_as not in UNLABELLED_CHOICES:
        raise BadInput(
            f"--unlabelled-as must be one of {', '.join(UNLABELLED_CHOICES)}, not {unlabelled_as!r}"
        )
    options = BuildOptions(
        labels=labels,
        out=out,
        baseline=baseline,
        formats=parse_formats(format),
        unlabelled_as=unlabelled_as,
        workers=workers,
        chunk_size=chunk_size,
        skip_bad=skip_bad,
    )
    started = time.perf_counter()
    summary = build(list(runs), options)
    elapsed = time.perf_counter() - started
    labels_text = ", ".join(f"{k}: {v}" for k, v in sorted(summary.by_label.items()))
    console.print(
        f"built {summary.reports} reports from {summary.units} inputs in {elapsed:.1f}s "
        f"({summary.reports / elapsed if elapsed else 0:.0f} reports/s); labels {labels_text}; "
        f"baselines: {', '.join(summary.baseline_ecosystems) or 'none'}",
        highlight=False,
    )
    for path in summary.outputs:
        console.print(f"  {path}", highlight=False)
    if summary.rejected:
        err = LazyConsole(stderr=True)
        err.print(f"warning: skipped {len(summary.rejected)} unreadable input(s), e.g.:", highlight=False)
        for message in summary.rejected[:5]:
            err.print(f"  {message}", highlight=False, markup=False)


@app.command("stats")
@params.argument("folder", "Folder written by `osptrack dataset build`", type=params.PATH)
@params.optional_path("--plots", "Write PNG charts to this folder (new, empty, or earlier plots)")
@params.json_out("Print the figures as JSON")
def stats_command(folder: Path, plots: Path | None, json_out: bool) -> None:
    """Table II (ecosystem x Label x Sub_Label), events per report, and noise-reduction figures."""
    from rich.table import Table

    from osptrack.dataset.stats import compute_stats, write_plots
    from osptrack.outputs import check_output_dir

    if plots is not None:
        check_output_dir(plots, "plots", option="--plots")
    stats = compute_stats(folder)
    if json_out:
        console.print_json(orjson.dumps(stats.to_json()).decode())
    else:
        table = Table(title=f"Table II: {stats.reports} reports")
        for col in ("Ecosystem", "Label", "Sub_Label", "reports"):
            table.add_column(col, justify="right" if col == "reports" else "left")
        for eco, label, sub, n in stats.table2:
            table.add_row(eco, label, sub, str(n))
        console.print(table)
        console.print("by Simulation_Source: " + ", ".join(f"{k}: {v}" for k, v in stats.by_source.items()))
        events = Table(title="Records per report (all phases)")
        for col in ("kind", "mean raw", "median raw", "mean de-noised", "median de-noised"):
            events.add_column(col, justify="left" if col == "kind" else "right")
        for k in stats.kinds:
            events.add_row(
                k.kind,
                f"{k.mean_raw:.1f}",
                f"{k.median_raw:.0f}",
                f"{k.mean_denoised:.1f}",
                f"{k.median_denoised:.0f}",
            )
        console.print(events)
        per_report = stats.noise.get("per_report") or {}
        if per_report:
            noise = Table(title="Noise reduction (mean records per report)")
            for col in (
                "kind",
                "raw",
                "after baseline (exact paths)",
                "after baseline + templating",
                "removed",
            ):
                noise.add_column(col, justify="left" if col == "kind" else "right")
            for kind, row in per_report.items():
                exact = row["mean_after_exact_baseline"]
                noise.add_row(
                    kind,
                    f"{row['mean_raw']:.1f}",
                    "-" if exact is None else f"{exact:.1f}",
                    f"{row['mean_after_baseline_and_templating']:.1f}",
                    f"{100 * row['removed_share']:.1f}%",
                )
            console.print(noise)
            console.print(f"file paths rewritten by templating: {stats.noise.get('file_paths_templated', 0)}")
        else:
            console.print("no build_stats.json: noise-reduction figures unavailable")
    if plots is not None:
        for path in write_plots(stats, plots):
            console.print(f"wrote {path}", highlight=False)


@app.command("compare")
@params.argument("folder", "Folder written by `osptrack dataset build`", type=params.PATH)
@click.option("--by", default="label", help="label or ecosystem")
@params.optional_path("--plots", "Write box plots (PNG) to this folder")
@click.option("--top", type=int, default=15, help="Features to show")
@params.json_out("Print every feature as JSON")
def compare_command(folder: Path, by: str, plots: Path | None, top: int, json_out: bool) -> None:
    """Per-feature distributions by label or ecosystem: quartiles, Cliff's delta, the most separating features."""
    from rich.table import Table

    from osptrack.dataset.compare import compare, write_plots

    if top < 1:
        raise BadInput("--top must be at least 1")
    c = compare(folder, by)
    if json_out:
        console.print_json(orjson.dumps(c.to_json()).decode())
    else:
        table = Table(title=f"Features that separate {by} groups most (median \\[q1-q3], non-zero share)")
        table.add_column("feature")
        for g in c.groups:
            table.add_column(g, justify="right")
        table.add_column("Cliff's delta", justify="right")
        for row in c.features[:top]:
            cells = []
            for g in c.groups:
                s = row["groups"].get(g, {"n": 0})
                cells.append(
                    "-"
                    if not s["n"]
                    else f"{s['median']:g} [{s['q1']:g}-{s['q3']:g}] {100 * s['nonzero_share']:.0f}%"
                )
            deltas = " ".join(f"{v:+.2f}" for v in row["cliffs_delta"].values() if v is not None)
            table.add_row(row["feature"], *cells, deltas)
        console.print(table)
        sizes = ", ".join(f"{g}: {c.features[0]['groups'][g]['n']}" for g in c.groups) if c.features else ""
        console.print(f"runs per group: {sizes}", highlight=False)
    if plots is not None:
        for path in write_plots(c, plots):
            console.print(f"wrote {path}", highlight=False)


@app.command("baseline")
@params.argument("ecosystem", "pypi or npm")
@params.out("Baseline folder (pass it to `dataset build --baseline`)")
@params.timeout("Wall-clock limit per phase, seconds")
def baseline_command(ecosystem: str, out: Path, timeout: float) -> None:
    """Analyse an empty package of ECOSYSTEM; its events are the toolchain noise removed from features."""
    from osptrack.dataset.baseline import run_baseline

    for path in run_baseline(ecosystem, out, timeout_s=timeout):
        console.print(f"wrote baseline run {path}", highlight=False)
