"""`osptrack batch`: many packages, resumable, in parallel locally or on Dask."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn
from rich.text import Text

from osptrack.batch.model import DEFAULT_ANALYZER, FINISHED, INTERRUPTED, AttemptResult
from osptrack.cli import params
from osptrack.cli.base import Command
from osptrack.errors import BadInput
from osptrack.outputs import check_output_dir

# The runner, sources and store are imported by the command, so `osptrack --help` stays quick.
if TYPE_CHECKING:
    from osptrack.batch.runner import BatchSummary

console = Console()


class _RateColumn(ProgressColumn):
    """Packages per minute and ETA, from this invocation's work only (resumed ones are free)."""

    def __init__(self, listener: ProgressListener) -> None:
        super().__init__()
        self.listener = listener

    def render(self, task: Task) -> Text:
        done = self.listener.done_here
        elapsed = time.monotonic() - self.listener.t0
        if not done or elapsed <= 0:
            return Text("-- pkg/min  ETA --", style="progress.remaining")
        rate = done / elapsed * 60
        remaining = (task.total or 0) - task.completed
        eta = remaining / rate * 60 if rate else 0
        return Text(f"{rate:.1f} pkg/min  ETA {_clock(eta)}", style="progress.remaining")


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class ProgressListener:
    """Rich progress bar plus one line per package as it finishes (or gives up)."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task: Any = None
        self.failures = 0
        self.done_here = 0
        self.t0 = time.monotonic()

    def started(self, total: int, already_finished: int) -> None:
        self.t0 = time.monotonic()
        self.task = self.progress.add_task("batch", total=total, completed=already_finished, failures=0)
        if already_finished:
            self.progress.console.print(f"resuming: {already_finished} of {total} already finished")

    def attempt_done(self, result: AttemptResult, will_retry: bool) -> None:
        phases = " ".join(f"{p}={s}" for p, s in result.statuses.items())
        label = result.target.label
        if result.outcome == FINISHED and will_retry:
            line = f"[red]sandbox error[/] {label} (attempt {result.attempt}, retrying)  {phases}"
        elif result.outcome == FINISHED:
            line = f"[green]done[/] {label}  {phases}  {result.wall_s:.1f}s"
        elif result.outcome == INTERRUPTED:
            line = f"[yellow]stopped[/] {label}"
        else:
            then = "retrying" if will_retry else "giving up"
            line = (
                f"[red]{result.outcome}[/] {label} (attempt {result.attempt}, {then}): {result.error[:160]}"
            )
        self.progress.console.print(line, highlight=False)
        if result.outcome == FINISHED and not will_retry:
            for phase, found in result.findings.items():  # what the package did, one line a phase
                if found:
                    self.progress.console.print(f"    {phase}: {found}", markup=False, highlight=False)
        if result.outcome == INTERRUPTED or will_retry:
            return
        self.done_here += 1
        if result.outcome != FINISHED:
            self.failures += 1
        self.progress.update(self.task, advance=1, failures=self.failures)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@click.command("batch", cls=Command)
@params.argument(
    "targets", "CSV, corpus manifest.json, labels .parquet, or a collection folder", type=params.PATH
)
@params.out(
    "Results folder (new, empty, or an earlier batch's to resume), or an fsspec URL (s3://...)",
    type=click.STRING,
)
@params.workers("Parallel sandboxes on this machine")
@click.option(
    "--cluster", default=None, help="Dask: local:N starts a LocalCluster; tcp://host:8786 uses a scheduler"
)
@params.timeout("Wall-clock limit per phase, seconds (passed to analyze)")
@click.option(
    "--package-timeout",
    type=float,
    default=None,
    callback=params.check(params.positive),
    help="Wall-clock limit per package attempt (default: timeout x phases + 120 s)",
)
@click.option(
    "--retries",
    type=int,
    default=1,
    callback=params.check(params.not_negative),
    help="Extra attempts for a failed package, per invocation",
)
@params.phases("Comma-separated: install,import,execute")
@params.deps_dir("Folder of dependency archives")
@params.online("Let dependency downloads reach the real registry")
@click.option("--rerun/--no-rerun", default=False, help="Analyse again even the coordinates already finished")
@click.option(
    "--retry-errors/--no-retry-errors",
    default=False,
    help="Treat runs whose sandbox failed (status error_analysis) as unfinished",
)
@params.optional_path("--archives", "With a labels .parquet: the samples folder whose archives to replay")
@params.tracer(
    "auto (eBPF where the kernel allows it, else strace), ebpf or strace (default: $OSPTRACK_TRACER, else auto)"
)
@click.option(
    "--analyzer", hidden=True, default=DEFAULT_ANALYZER, help="module:function to call instead of analyze"
)
def batch_command(
    targets: Path,
    out: str,
    workers: int,
    cluster: str | None,
    timeout: float,
    package_timeout: float | None,
    retries: int,
    phases: str,
    deps_dir: tuple[Path, ...],
    online: bool,
    rerun: bool,
    retry_errors: bool,
    archives: Path | None,
    tracer: str | None,
    analyzer: str,
) -> None:
    """Analyse many packages: resumable (re-run to continue), parallel, and on Dask with --cluster."""
    from osptrack.batch.runner import BatchOptions, run_batch
    from osptrack.batch.sources import load_targets
    from osptrack.batch.store import is_url
    from osptrack.cli.analyze import parse_phases
    from osptrack.run import AnalyzeOptions
    from osptrack.trace.tracers import default_name

    if cluster and workers != 1:
        raise BadInput("give either --workers or --cluster, not both")
    if not is_url(out):
        check_output_dir(out, "batch")  # before the sandbox check and before reading targets
    for folder in deps_dir or ():
        if not folder.is_dir():
            raise BadInput(f"--deps-dir {folder} is not a folder")
    if archives is not None and not archives.is_dir():
        raise BadInput(f"--archives {archives} is not a folder")
    if analyzer == DEFAULT_ANALYZER and not cluster:
        # Fail once, before writing anything, rather than once per package (Dask workers check
        # their own machines when they run).
        from osptrack.sandbox.preflight import check_sandbox

        check_sandbox()
        from osptrack.trace.tracers import choose

        try:  # a tracer that cannot work here fails once, before any package
            choose(tracer or default_name())
        except ValueError as exc:
            raise BadInput(str(exc)) from None
    listed = load_targets(targets, archives)
    if listed.skipped:
        console.print(f"[yellow]skipped {len(listed.skipped)} entries[/] of {targets}:", highlight=False)
        for reason in listed.skipped[:5]:
            console.print(f"  {reason}", markup=False, highlight=False)
    if not listed.targets:
        raise BadInput(f"{targets}: no targets to analyse")
    options = BatchOptions(
        out=out,
        workers=workers,
        cluster=cluster,
        retries=retries,
        package_timeout_s=package_timeout,
        rerun=rerun,
        retry_errors=retry_errors,
        analyzer=analyzer,
        analyze=AnalyzeOptions(
            phases=parse_phases(phases),
            timeout_s=timeout,
            deps_dirs=tuple(p.resolve() for p in deps_dir or ()),
            online=online,
            tracer=tracer or default_name(),
        ),
    )
    console.print(f"{len(listed.targets)} targets from {listed.kind} {targets} -> {out}", highlight=False)
    # SIGTERM (e.g. from a job scheduler) stops as cleanly as Ctrl-C does.
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        with Progress(
            TextColumn("[bold]batch"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("failed {task.fields[failures]}"),
            console=console,
            transient=False,
        ) as progress:
            listener = ProgressListener(progress)
            progress.columns = (*progress.columns, _RateColumn(listener))
            summary = run_batch(listed.targets, options, listener)
    finally:
        signal.signal(signal.SIGTERM, previous)
    _print_summary(summary, out)
    _write_index(out)
    if summary.interrupted:
        sys.exit(130)
    if summary.failed:
        sys.exit(1)


def _print_summary(summary: BatchSummary, out: str) -> None:
    rate = summary.finished / summary.wall_s * 60 if summary.wall_s else 0.0
    console.print(
        f"{summary.finished} finished, {len(summary.failed)} failed, {summary.already_finished} already done"
        f" (of {summary.total}) in {summary.wall_s:.1f} s, {rate:.1f} pkg/min; manifest: {out}/manifest.csv",
        highlight=False,
    )
    if summary.recovered:
        console.print(f"recorded {summary.recovered} run(s) that finished before an earlier batch was killed")
    if summary.interrupted:
        console.print(
            "[yellow]interrupted[/]: workers stopped, temp folders removed; run the same command to continue"
        )


def _write_index(out: str) -> None:
    """DIR/index.html and one HTML report per run (local folders only)."""
    from osptrack.batch.store import is_url

    if is_url(out) or not Path(out).is_dir():
        return
    from osptrack.report.index import write_index

    index = write_index(Path(out))
    console.print(f"report index: {index}", highlight=False)
