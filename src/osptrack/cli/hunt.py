"""`osptrack hunt`: SQL over runs, batch outputs and datasets; the logic is in osptrack.hunt."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from osptrack.cli.params import at_least_one
from osptrack.errors import BadInput


def hunt_command(
    paths: Annotated[
        list[Path], typer.Argument(help="Run folders, batch outputs (folders of runs) and datasets, any mix")
    ],
    sql: Annotated[
        str | None, typer.Option("--sql", help="A DuckDB query over the views (docs/hunting.md)")
    ] = None,
    ioc: Annotated[
        str | None, typer.Option("--ioc", help="Runs that touched this host name, IP address or SHA-256")
    ] = None,
    reads: Annotated[
        str | None, typer.Option("--reads", help="Runs that read a file matching this glob (e.g. '*/.ssh/*')")
    ] = None,
    runs_command: Annotated[
        str | None, typer.Option("--runs-command", help="Runs that ran a command line matching this regex")
    ] = None,
    format: Annotated[str, typer.Option("--format", help="table, csv or json")] = "table",
    cache: Annotated[
        Path | None,
        typer.Option("--cache", help="Parquet cache of parsed runs (default ~/.cache/osptrack/hunt)"),
    ] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Parse runs in memory, write no cache")
    ] = False,
    workers: Annotated[
        int, typer.Option("--workers", help="Processes parsing uncached runs", callback=at_least_one)
    ] = 1,
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
    con = connect(paths, options)
    if cache_dir is not None and cache_dir.is_dir():
        claim_output_dir(cache_dir, "hunt_cache")
    result = query(con, value) if kind == "sql" else query(con, CANNED[kind], [value])
    sys.stdout.write(render(result.columns, result.rows, format))


def register(app: typer.Typer) -> None:
    app.command("hunt")(hunt_command)
