"""`osptrack hunt`: SQL over runs, batch outputs and datasets; the logic is in osptrack.hunt."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from osptrack.cli import params
from osptrack.cli.base import Command
from osptrack.errors import BadInput


@click.command("hunt", cls=Command)
@params.argument(
    "paths",
    "Run folders, batch outputs (folders of runs) and datasets, any mix",
    type=params.PATH,
    nargs=-1,
    required=True,
)
@click.option("--sql", default=None, help="A DuckDB query over the views (docs/hunting.md)")
@click.option("--ioc", default=None, help="Runs that touched this host name, IP address or SHA-256")
@click.option("--reads", default=None, help="Runs that read a file matching this glob (e.g. '*/.ssh/*')")
@click.option("--runs-command", default=None, help="Runs that ran a command line matching this regex")
@params.format_("table, csv or json", "table")
@params.optional_path("--cache", "Parquet cache of parsed runs (default ~/.cache/osptrack/hunt)")
@click.option("--no-cache", is_flag=True, help="Parse runs in memory, write no cache")
@params.workers("Processes parsing uncached runs")
def hunt_command(
    paths: tuple[Path, ...],
    sql: str | None,
    ioc: str | None,
    reads: str | None,
    runs_command: str | None,
    format: str,
    cache: Path | None,
    no_cache: bool,
    workers: int,
) -> None:
    """Hunt across runs with SQL: views runs, files, sockets, commands, dns, events, flows, findings, honeytokens."""
    from osptrack.hunt.cache import default_cache_dir
    from osptrack.hunt.engine import CANNED, HuntOptions, connect, query
    from osptrack.hunt.output import FORMATS, render

    if format not in FORMATS:
        raise BadInput(f"--format must be one of {', '.join(FORMATS)}, not {format!r}")
    chosen = {
        k: v for k, v in {"sql": sql, "ioc": ioc, "reads": reads, "runs_command": runs_command}.items() if v
    }
    if len(chosen) != 1:
        raise BadInput("give exactly one of --sql, --ioc, --reads, --runs-command")
    ((kind, value),) = chosen.items()
    cache_dir = None if no_cache else (cache or default_cache_dir())
    if cache_dir is not None:
        # Segments are only ever added there, but never among the user's own files (outputs.py).
        from osptrack.outputs import check_output_dir, claim_output_dir

        check_output_dir(cache_dir, "hunt_cache", option="--cache")
    options = HuntOptions(cache_dir=cache_dir, workers=workers)
    con = connect(list(paths), options)
    if cache_dir is not None and cache_dir.is_dir():
        claim_output_dir(cache_dir, "hunt_cache")
    result = query(con, value) if kind == "sql" else query(con, CANNED[kind], [value])
    sys.stdout.write(render(result.columns, result.rows, format))
