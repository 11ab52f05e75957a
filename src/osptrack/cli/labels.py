"""`osptrack labels build | lookup | stats`: commands only; the logic is in osptrack.labels."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from osptrack.cli import params
from osptrack.cli.base import Group, LazyConsole

# The library (pyarrow, orjson, regex tables) is imported inside each command, so registering this
# group costs `osptrack --help` nothing.
if TYPE_CHECKING:
    from osptrack.labels.stats import EcosystemStats


@click.group("labels", cls=Group)
def app() -> None:
    """Known-malicious labels from OSV and other sources."""


console = LazyConsole()
err_console = LazyConsole(stderr=True)


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


@app.command("build")
@params.out("labels.parquet to write (IOCs go to <stem>.iocs.parquet)")
@click.option("--osv", type=params.PATH, multiple=True, help="OSV folder, GitHub .zip or tarball; repeatable")
@click.option("--datadog", multiple=True, help="DataDog manifest.json (or ECOSYSTEM=PATH); repeatable")
@click.option("--osptrack-metrics", type=params.PATH, multiple=True, help="OSPtrack stas/data_metrics.csv")
def build_command(
    out: Path, osv: tuple[Path, ...], datadog: tuple[str, ...], osptrack_metrics: tuple[Path, ...]
) -> None:
    """Build labels.parquet from OpenSSF malicious-packages and other known-malicious lists."""
    from osptrack.labels.build import build_labels
    from osptrack.labels.table import iocs_path_for

    _, iocs, report = build_labels(list(osv), list(datadog), list(osptrack_metrics), out=out)
    for message in report.messages:
        err_console.print(f"warning: {message}", highlight=False, markup=False)
    if report.unversioned:
        err_console.print(
            f"warning: {report.unversioned} rows name no version, range or all-versions; "
            "they match only version-less lookups",
            highlight=False,
        )
    if report.skipped > len(report.messages):
        err_console.print(
            f"warning: ... {report.skipped - len(report.messages)} more skipped", highlight=False
        )
    console.print(
        f"wrote {report.rows} label rows from {report.records} records ({report.withdrawn} withdrawn, "
        f"{report.skipped} skipped, {report.ignored_files} non-JSON files ignored) to {out}; "
        f"{len(iocs)} IOCs to {iocs_path_for(out)}",
        highlight=False,
    )


@app.command("lookup")
@params.argument("ecosystem", "pypi, npm, rubygems, packagist, crates.io, nuget, ...")
@params.argument("name", "Package name as written; it is normalised")
@params.argument("version", "Version; omit to ask about any version", required=False)
@params.labels_file("labels.parquet", default=Path("labels.parquet"))
def lookup_command(ecosystem: str, name: str, version: str | None, labels: Path) -> None:
    """Is this coordinate known-malicious? Exit 0 when it is, 1 when it is not."""
    from osptrack.labels.match import LabelIndex

    index = LabelIndex.load(labels)
    hits = index.match(ecosystem, name, version, include_withdrawn=True)
    live = [h for h in hits if not h.withdrawn]
    coordinate = f"{ecosystem} {name}" + (f" {version}" if version else "")
    if live:
        console.print(f"[bold red]known-malicious[/]: {coordinate}", highlight=False)
    else:
        console.print(f"not known-malicious: {coordinate}", highlight=False)
    # Plain lines rather than a table: narrow terminals and scripts (grep) both read them whole.
    for h in hits:
        state = " [withdrawn: not counted]" if h.withdrawn else ""
        console.print(
            f"  {h.id}  source={h.source}  matched={h.matched_by}  osptrack={h.osptrack_sub_label}{state}",
            highlight=False,
            markup=False,
        )
        for label, rule in zip(h.sub_labels, h.sub_label_rules, strict=False):
            console.print(f"    {label}  ({rule})", highlight=False, markup=False)
        if h.summary:
            console.print(f"    summary: {h.summary}", highlight=False, markup=False)
    if not live:
        raise SystemExit(1)


@app.command("stats")
@params.labels_file("labels.parquet", default=Path("labels.parquet"))
def stats_command(labels: Path) -> None:
    """Records per ecosystem, version coverage, sub-label counts and coverage."""
    from rich.table import Table

    from osptrack.labels.stats import compute_stats

    stats = compute_stats(labels)
    eco_table = Table(
        title="Label records per ecosystem (withdrawn excluded from shares)", title_justify="left"
    )
    for col in ("ecosystem", "rows", "withdrawn", "explicit versions", "all versions", "ranges", "behaviour"):
        eco_table.add_column(col, justify="left" if col == "ecosystem" else "right")

    def add(name: str, s: EcosystemStats, style: str = "") -> None:
        eco_table.add_row(
            name,
            str(s.rows),
            str(s.withdrawn),
            _pct(s.explicit_versions, s.active),
            _pct(s.all_versions, s.active),
            _pct(s.ranges, s.active),
            _pct(s.behaviour, s.active),
            style=style,
        )

    for eco, s in sorted(stats.ecosystems.items(), key=lambda kv: -kv[1].rows):
        add(eco, s)
    add("total", stats.total, style="bold")
    console.print(eco_table)
    console.print("behaviour = at least one sub-label beyond full_compromise", style="dim")

    active = stats.total.active
    sub_table = Table(title="Sub-labels", title_justify="left")
    for col in ("sub-label", "records", "share"):
        sub_table.add_column(col, justify="left" if col == "sub-label" else "right")
    for label, count in stats.sub_labels.most_common():
        sub_table.add_row(label, str(count), _pct(count, active))
    console.print(sub_table)

    osp_table = Table(title="OSPtrack Sub_Label", title_justify="left")
    osp_table.add_column("Sub_Label")
    osp_table.add_column("records", justify="right")
    for label, count in stats.osptrack.most_common():
        osp_table.add_row(label, str(count))
    console.print(osp_table)

    src = ", ".join(f"{k} {v}" for k, v in stats.sources.most_common())
    iocs = ", ".join(f"{k} {v}" for k, v in stats.ioc_kinds.most_common()) or "none"
    console.print(f"sources: {src}; IOCs: {iocs}", highlight=False)
