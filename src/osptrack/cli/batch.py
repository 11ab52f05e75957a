"""`osptrack batch`: many packages, resumable, in parallel locally or on Dask."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from osptrack.batch.model import DEFAULT_ANALYZER
from osptrack.cli import params
from osptrack.cli.base import Command, LazyConsole
from osptrack.errors import BadInput

# The runner, sources and store are imported by the command, so `osptrack --help` stays quick.
if TYPE_CHECKING:
    from osptrack.batch.runner import BatchSummary

console = LazyConsole()


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
    from osptrack.cli.batch_progress import ProgressListener, RateColumn
    from osptrack.outputs import check_output_dir
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
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        with Progress(
            TextColumn("[bold]batch"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("failed {task.fields[failures]}"),
            console=console.get(),
            transient=False,
        ) as progress:
            listener = ProgressListener(progress)
            progress.columns = (*progress.columns, RateColumn(listener))
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
