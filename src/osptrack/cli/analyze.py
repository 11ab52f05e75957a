"""`osptrack analyze` and `osptrack doctor`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from osptrack.cli import params
from osptrack.cli.base import Command
from osptrack.errors import BadInput
from osptrack.target import parse_target

# The sandbox stack is imported by the command that uses it, so `osptrack --help` stays quick.
if TYPE_CHECKING:
    from rich.console import Console

    from osptrack.run import RunOutcome
    from osptrack.verdict import Verdict

_console: Console | None = None


def console() -> Console:
    """rich's console, made (and rich imported) when the command first prints: not at start-up."""
    global _console
    if _console is None:
        from rich.console import Console

        _console = Console()
    return _console


def parse_phases(text: str) -> tuple[str, ...]:
    from osptrack.run import PHASES

    phases = tuple(p.strip() for p in text.split(",") if p.strip())
    bad = [p for p in phases if p not in PHASES]
    if bad or not phases:
        raise BadInput(f"unknown phase {', '.join(bad) or '(none)'}; expected some of {', '.join(PHASES)}")
    return phases


@click.command("analyze", cls=Command)
@params.argument("ecosystem", "pypi, npm, rubygems, packagist, crates.io or nuget")
@params.argument("target", "NAME==VERSION (pypi), NAME@VERSION, a purl, or a local archive")
@click.option("--version", default=None, help="Version, if TARGET has none")
@params.out(
    "Run folder to write: a new path, an empty folder, or an earlier run folder to replace "
    "[default: ./osptrack-runs/<ecosystem>-<name>-<version>]",
    required=False,
)
@params.phases("Which phases to run, comma-separated: install,import,execute")
@params.timeout("Wall-clock limit per phase, in seconds")
@params.deps_dir("Folder of dependency archives (and the package's); repeatable")
@params.online("Fetch what the deps folders and the cache lack from the real registry, on the host")
@click.option(
    "--fail-on", default=None, help="Exit 1 when the verdict is at least this: suspicious or malicious"
)
@params.format_("table (for people) or json (summary and verdict only, on stdout)", "table")
@click.option(
    "--capture-bytes",
    type=int,
    default=1 << 20,  # fakenet.MAX_CAPTURE (not imported here: `--help` stays quick)
    help="Bytes kept per network flow (request heads and bodies); beyond, marked truncated",
)
@params.tracer(
    "auto (eBPF where the kernel allows it, else strace), ebpf or strace (default: $OSPTRACK_TRACER, else auto); see `osptrack doctor`"
)
def analyze_command(
    ecosystem: str,
    target: str,
    version: str | None,
    out: Path | None,
    phases: str,
    timeout: float,
    deps_dir: tuple[Path, ...],
    online: bool,
    fail_on: str | None,
    format: str,
    capture_bytes: int,
    tracer: str | None,
) -> None:
    """Install, import and (with --phases) execute one package in the sandbox; record what it does.

    The install phase runs the package manager (so setup.py, lifecycle scripts and build.rs
    run), import loads every module, and execute calls what the package exports. Each phase's
    files, sockets, commands and DNS lookups go to a run folder.
    """
    from osptrack.run import AnalyzeOptions, analyze
    from osptrack.trace.tracers import default_name

    if fail_on is not None and fail_on not in FAIL_LEVELS:
        raise BadInput(f"--fail-on {fail_on!r}: expected one of {', '.join(FAIL_LEVELS)}")
    if format not in ("table", "json"):
        raise BadInput(f"--format {format!r}: expected table or json")
    if capture_bytes < 0:
        raise BadInput("--capture-bytes must not be negative")
    ref = parse_target(ecosystem, target, version)
    options = AnalyzeOptions(
        phases=parse_phases(phases),
        timeout_s=timeout,
        deps_dirs=tuple(deps_dir or ()),
        online=online,
        capture_bytes=capture_bytes,
        tracer=tracer or default_name(),
    )
    # what the command prints with, imported while the first phase runs instead of after the run
    after = ("rich.console", "rich.table") if format == "table" else ("osptrack.report.view",)
    outcome = analyze(ref, options, out, imports=after)
    verdict = _verdict(outcome)
    if format == "json":
        print_json(outcome, verdict)
    else:
        print_summary(outcome)
        print_verdict(verdict)
    if fail_on is not None and _at_least(verdict.level, fail_on):
        sys.exit(1)


FAIL_LEVELS = ("suspicious", "malicious")


def _at_least(level: str, threshold: str) -> bool:
    from osptrack.verdict.levels import at_least

    return at_least(level, threshold)


def _verdict(outcome: RunOutcome) -> Verdict:
    from osptrack.verdict import judge_run_dir, verdict_from_dict

    if outcome.verdict is not None:
        return verdict_from_dict(outcome.verdict)
    return judge_run_dir(outcome.out)  # judging failed inside analyze: again here, loudly


def print_json(outcome: RunOutcome, verdict: Verdict) -> None:
    """Only this goes to stdout: {"summary": ..., "verdict": ...} for piping into jq."""
    from osptrack.jsonio import dumps
    from osptrack.report.view import summarise
    from osptrack.verdict import RunData

    # The summary reads run.json and result.json only: not events.jsonl (lazy), which report's
    # full view would parse, with the toolchain's verdict on each event, for nothing here.
    run = RunData.load(outcome.out, lazy=True)
    summary = summarise(run, verdict)
    data = {"summary": summary | {"run_dir": str(outcome.out)}, "verdict": verdict.to_dict()}
    sys.stdout.buffer.write(dumps(data, pretty=True) + b"\n")
    sys.stdout.flush()


def print_verdict(verdict: Verdict) -> None:
    style = {"malicious": "bold white on red", "suspicious": "bold black on yellow"}.get(
        verdict.level, "bold green"
    )
    console().print(f"verdict: [{style}] {verdict.level} [/] score {verdict.score}", highlight=False)
    for f in verdict.findings:
        if f.severity == "informational":
            continue
        first = f.evidence[0].summary if f.evidence else ""
        line = f"  {f.severity:<8} {f.rule} [{f.phase}] {first[:120]}"
        console().print(line, markup=False, highlight=False, soft_wrap=True)


def print_summary(outcome: RunOutcome) -> None:
    from rich.table import Table

    ref = outcome.ref
    table = Table(title=f"{ref.ecosystem} {ref.name} {ref.version}", title_justify="left")
    for col in ("phase", "status", "files", "sockets", "commands", "dns"):
        table.add_column(col)
    counts = outcome.counts
    for phase, status in outcome.statuses.items():
        c = counts.get(phase, {})
        style = "green" if status == "completed" else "red"
        table.add_row(
            phase,
            f"[{style}]{status}[/]",
            *(str(c.get(k, 0)) for k in ("Files", "Sockets", "Commands", "DNS")),
        )
    console().print(table)
    for phase, text in outcome.phase_notes.items():
        console().print(f"[bold yellow]{phase}:[/] ", end="")
        console().print(text, markup=False, highlight=False)
    labels = {
        "dns": "DNS lookups (beyond the registry service's)",
        "connections": "connections",
        "commands": "commands beyond the toolchain's own",
        "bait_reads": "reads of bait credentials",
        "exfiltration": "honeytokens seen in network payloads (exfiltration)",
        "listening": "listening sockets",
        "probes": "looks at sensitive paths (stat, access, failed open)",
        "alive_at_end": "processes still alive when the phase ended (killed by timeout or teardown)",
    }
    for key, label in labels.items():
        items = outcome.notable.get(key) or []
        if not items:
            continue
        style = "bold red" if key in ("exfiltration", "bait_reads") else "yellow"
        console().print(f"[{style}]{label}:[/] {len(items)}")
        for item in items[:10]:
            console().print(f"  {item}", markup=False, highlight=False)
        if len(items) > 10:
            console().print(f"  ... and {len(items) - 10} more")
    for phase, lines in outcome.stderr_tails.items():
        if not lines:
            continue
        console().print(
            f"[red]{phase} ended {outcome.statuses.get(phase, 'in error')}[/]; last lines of its stderr:"
        )
        for line in lines:
            console().print(f"  {line}", markup=False, highlight=False)
    console().print(f"run folder: {outcome.out}  ({outcome.wall_s:.1f} s)", highlight=False)


@click.command("doctor", cls=Command)
def doctor_command() -> None:
    """Check what the sandbox and each ecosystem need; each line says ready or missing, and the fix.

    Exit 1 when the sandbox itself cannot run (a missing ecosystem only disables that ecosystem).
    """
    from rich.table import Table

    from osptrack import ecosystems
    from osptrack.sandbox.doctor import sandbox_checks

    table = Table(title="osptrack doctor", title_justify="left")
    table.add_column("component")
    table.add_column("state")
    table.add_column("details, or the fix")
    broken = False
    for check in sandbox_checks():
        broken |= not check.ready and check.required
        state = (
            "[green]ready[/]"
            if check.ready
            else "[red]missing[/]"
            if check.required
            else "[yellow]degraded[/]"
        )
        table.add_row(check.name, state, check.detail if check.ready else check.fix)
    for name in ecosystems.supported():
        missing = ecosystems.get(name).missing_toolchain()
        table.add_row(name, "[green]ready[/]" if missing is None else "[red]missing[/]", missing or "")
    console().print(table)
    if broken:
        sys.exit(1)
