"""`osptrack dataset build | stats | baseline`: commands only; the logic is in osptrack.dataset."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.table import Table

from osptrack.cli.params import at_least_one, positive
from osptrack.errors import BadInput

app = typer.Typer(no_args_is_help=False)  # a bare group is a one-line usage error (cli.main)
console = Console()


@app.command("build")
def build_command(
    runs: Annotated[
        list[Path],
        typer.Argument(
            help="Run folders, parents of runs, package-analysis result JSON, OSPtrack label_data.csv"
        ),
    ],
    labels: Annotated[Path, typer.Option("--labels", help="labels.parquet from `osptrack labels build`")],
    out: Annotated[
        Path, typer.Option("--out", help="Output folder: new, empty, or an earlier dataset to replace")
    ],
    baseline: Annotated[
        Path | None, typer.Option("--baseline", help="Folder of baseline runs (`osptrack dataset baseline`)")
    ] = None,
    format: Annotated[str, typer.Option("--format", help="Comma list: parquet,csv")] = "parquet,csv",
    unlabelled_as: Annotated[
        str, typer.Option("--unlabelled-as", help="benign (Label=0) or unknown (Label null)")
    ] = "benign",
    workers: Annotated[int, typer.Option("--workers", help="Worker processes", callback=at_least_one)] = 2,
    chunk_size: Annotated[
        int, typer.Option("--chunk-size", help="Reports per chunk (row group)", callback=at_least_one)
    ] = 32,
    skip_bad: Annotated[
        bool, typer.Option("--skip-bad", help="Skip unreadable runs/records (counted) instead of stopping")
    ] = False,
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
    summary = build(runs, options)
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
        err = Console(stderr=True)
        err.print(f"warning: skipped {len(summary.rejected)} unreadable input(s), e.g.:", highlight=False)
        for message in summary.rejected[:5]:
            err.print(f"  {message}", highlight=False, markup=False)


@app.command("stats")
def stats_command(
    folder: Annotated[Path, typer.Argument(help="Folder written by `osptrack dataset build`")],
    plots: Annotated[
        Path | None,
        typer.Option("--plots", help="Write PNG charts to this folder (new, empty, or earlier plots)"),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the figures as JSON")] = False,
) -> None:
    """Table II (ecosystem x Label x Sub_Label), events per report, and noise-reduction figures."""
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
def compare_command(
    folder: Annotated[Path, typer.Argument(help="Folder written by `osptrack dataset build`")],
    by: Annotated[str, typer.Option("--by", help="label or ecosystem")] = "label",
    plots: Annotated[
        Path | None, typer.Option("--plots", help="Write box plots (PNG) to this folder")
    ] = None,
    top: Annotated[int, typer.Option("--top", help="Features to show")] = 15,
    json_out: Annotated[bool, typer.Option("--json", help="Print every feature as JSON")] = False,
) -> None:
    """Per-feature distributions by label or ecosystem: quartiles, Cliff's delta, the most separating features."""
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
def baseline_command(
    ecosystem: Annotated[str, typer.Argument(help="pypi or npm")],
    out: Annotated[
        Path, typer.Option("--out", help="Baseline folder (pass it to `dataset build --baseline`)")
    ],
    timeout: Annotated[
        float, typer.Option(help="Wall-clock limit per phase, seconds", callback=positive)
    ] = 300.0,
) -> None:
    """Analyse an empty package of ECOSYSTEM; its events are the toolchain noise removed from features."""
    from osptrack.dataset.baseline import run_baseline

    for path in run_baseline(ecosystem, out, timeout_s=timeout):
        console.print(f"wrote baseline run {path}", highlight=False)
