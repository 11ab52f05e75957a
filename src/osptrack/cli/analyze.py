"""`osptrack analyze` and `osptrack doctor`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from osptrack.errors import BadInput
from osptrack.run import PHASES, AnalyzeOptions, RunOutcome, analyze
from osptrack.target import parse_target

console = Console()


def parse_phases(text: str) -> tuple[str, ...]:
    phases = tuple(p.strip() for p in text.split(",") if p.strip())
    bad = [p for p in phases if p not in PHASES]
    if bad or not phases:
        raise BadInput(f"unknown phase {', '.join(bad) or '(none)'}; expected some of {', '.join(PHASES)}")
    return phases


def analyze_command(
    ecosystem: Annotated[str, typer.Argument(help="pypi, npm, rubygems, packagist, crates.io or nuget")],
    target: Annotated[str, typer.Argument(help="NAME, NAME==V, NAME@V, a purl, or a local archive")],
    version: Annotated[str | None, typer.Option("--version", help="Version, if TARGET has none")] = None,
    out: Annotated[Path | None, typer.Option(help="Run folder [./osptrack-runs/<eco>-<name>-<version>]")] = None,
    phases: Annotated[str, typer.Option(help="Comma-separated: install,import,execute")] = "install,import",
    timeout: Annotated[float, typer.Option(help="Wall-clock limit per phase, seconds")] = 300.0,
    deps_dir: Annotated[list[Path] | None, typer.Option("--deps-dir", help="Folder of dependency archives")] = None,
    online: Annotated[bool, typer.Option(help="Let dependency downloads reach the real registry")] = False,
) -> None:
    """Install and import one package in the sandbox and record what it does."""
    if timeout <= 0:
        raise BadInput("--timeout must be positive")
    ref = parse_target(ecosystem, target, version)
    options = AnalyzeOptions(
        phases=parse_phases(phases), timeout_s=timeout, deps_dirs=tuple(deps_dir or ()), online=online
    )
    outcome = analyze(ref, options, out)
    print_summary(outcome)


def print_summary(outcome: RunOutcome) -> None:
    ref = outcome.ref
    table = Table(title=f"{ref.ecosystem} {ref.name} {ref.version}", title_justify="left")
    for col in ("phase", "status", "files", "sockets", "commands", "dns"):
        table.add_column(col)
    counts = outcome.counts
    for phase, status in outcome.statuses.items():
        c = counts.get(phase, {})
        style = "green" if status == "completed" else "red"
        table.add_row(phase, f"[{style}]{status}[/]", *(str(c.get(k, 0)) for k in ("Files", "Sockets", "Commands", "DNS")))
    console.print(table)
    labels = {
        "dns": "DNS lookups of non-registry names",
        "connections": "connections",
        "commands": "commands beyond the toolchain's own",
        "bait_reads": "reads of bait credentials",
        "exfiltration": "honeytokens seen in network payloads (exfiltration)",
    }
    for key, label in labels.items():
        items = outcome.notable.get(key) or []
        if not items:
            continue
        style = "bold red" if key in ("exfiltration", "bait_reads") else "yellow"
        console.print(f"[{style}]{label}:[/] {len(items)}")
        for item in items[:10]:
            console.print(f"  {item}", markup=False, highlight=False)
        if len(items) > 10:
            console.print(f"  ... and {len(items) - 10} more")
    console.print(f"run folder: {outcome.out}  ({outcome.wall_s:.1f} s)", highlight=False)


def doctor_command() -> None:
    """List each ecosystem as ready or missing, with the command that installs what is missing."""
    from osptrack import ecosystems
    from osptrack.sandbox.preflight import sandbox_problems

    table = Table(title="osptrack doctor", title_justify="left")
    table.add_column("component")
    table.add_column("state")
    table.add_column("to fix")
    for problem_name, fix in sandbox_problems():
        table.add_row(problem_name, "[red]missing[/]", fix)
    for name in ecosystems.supported():
        missing = ecosystems.get(name).missing_toolchain()
        table.add_row(name, "[green]ready[/]" if missing is None else "[red]missing[/]", missing or "")
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("analyze")(analyze_command)
    app.command("doctor")(doctor_command)
