"""`osptrack report`: one run folder as SARIF, Markdown, HTML or JSON."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from osptrack.cli import params
from osptrack.cli.base import Command
from osptrack.errors import BadInput


@click.command("report", cls=Command)
@params.argument("run_dir", "A run folder (analyze --out, or one of a batch's)", type=params.PATH)
@params.format_("sarif, markdown, html or json", "html")
@params.out("File to write [stdout]", required=False)
def report_command(run_dir: Path, format: str, out: Path | None) -> None:
    """Write the verdict, findings and evidence of one run in a format people or CI read."""
    from osptrack.report import FORMATS, render
    from osptrack.report.output import check_target, write_report

    if format not in FORMATS:
        raise BadInput(f"unknown --format {format!r}; expected one of {', '.join(FORMATS)}")
    if not run_dir.is_dir():
        raise BadInput(f"{run_dir} is not a folder")
    if out is not None:
        check_target(out)  # before the work, so a refusal costs nothing
    data = render(run_dir, format)
    if out is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        write_report(out, data)
