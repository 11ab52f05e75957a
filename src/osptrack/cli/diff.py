"""`osptrack diff RUN_A RUN_B`: commands only; the logic is in osptrack.diff."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import orjson

from osptrack.cli import params
from osptrack.cli.base import Command
from osptrack.errors import BadInput


@click.command("diff", cls=Command)
@params.argument("run_a", "The reference run folder (e.g. version 1.2)", type=params.PATH)
@params.argument("run_b", "The run folder compared with it (e.g. version 1.3)", type=params.PATH)
@params.format_("table or json", "table")
def diff_command(run_a: Path, run_b: Path, format: str) -> None:
    """What RUN_B does that RUN_A does not (added) and the reverse (removed): files, commands, DNS, sockets, flows, findings."""
    from osptrack.diff.behaviour import FIELDS, KINDS, diff_runs

    if format not in ("table", "json"):
        raise BadInput(f"--format must be table or json, not {format!r}")
    result = diff_runs(run_a, run_b)
    if format == "json":
        sys.stdout.write(orjson.dumps(result.to_json(), option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    from rich.console import Console
    from rich.table import Table

    def coords(c: dict[str, object]) -> str:
        return f"{c['ecosystem']}/{c['name']} {c['version']} (verdict {c['verdict'] or '-'})"

    console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
    table = Table(title=f"A = {coords(result.a)}\nB = {coords(result.b)}")
    for col in ("", "kind", "phase", "what"):
        table.add_column(col, overflow="fold")
    for sign, side, style in (("+", result.added, "green"), ("-", result.removed, "red")):
        for kind in KINDS:
            for row in side[kind]:
                what = " ".join(str(row[f]) for f in FIELDS[kind][1:] if row[f] not in (None, ""))
                table.add_row(f"[{style}]{sign}[/]", kind, row["phase"] or "", what)
    console.print(table)
    counts = ", ".join(f"{k} +{len(result.added[k])}/-{len(result.removed[k])}" for k in KINDS)
    console.print(f"+ in B only, - in A only: {counts}")
