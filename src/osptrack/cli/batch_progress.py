"""`osptrack batch`'s progress display (rich): imported by the command when it runs, so that
`osptrack --help`, which imports every command module, loads no rich."""

from __future__ import annotations

import time
from typing import Any

from rich.progress import Progress, ProgressColumn, Task
from rich.text import Text

from osptrack.batch.model import FINISHED, INTERRUPTED, AttemptResult


class RateColumn(ProgressColumn):
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
