"""The batch loop: resume, schedule attempts on a local pool or Dask, retry, record, stop cleanly.

Resume works from what is on disk: a coordinate is finished when its run folder holds `run.json`
(see store.py), so a `kill -9` at any moment loses only the attempts in flight. `manifest.csv` is
the log of attempts; its attempt numbers continue across invocations. Every invocation gives each
unfinished coordinate up to `1 + retries` attempts; attempts stopped by Ctrl-C do not count.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import queue
import signal
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from osptrack.batch.manifest import Manifest, recovered_result, worker_name
from osptrack.batch.model import CRASHED, FINISHED, INTERRUPTED, AttemptResult, BatchTarget
from osptrack.batch.order import LONGEST_FIRST, ORDERS, schedule_order
from osptrack.batch.store import Destination, phase_statuses
from osptrack.batch.worker import DEFAULT_ANALYZER, Job, Launcher, SpawnLauncher, run_isolated
from osptrack.batch.zygote import PreloadedLauncher
from osptrack.errors import BadInput
from osptrack.outputs import claim_output_dir

SANDBOX_ERROR = "error_analysis"  # package-analysis's Status for "the analysis itself broke"
KILL_WAIT_S = 30.0  # how long Ctrl-C waits for in-flight workers to be killed and reaped


@dataclass(frozen=True)
class BatchOptions:
    out: str
    workers: int = 1
    cluster: str | None = None  # "local:N" or a scheduler address such as tcp://host:8786
    retries: int = 1
    package_timeout_s: float | None = None  # default: per-phase timeout x phases + 120 s
    rerun: bool = False
    retry_errors: bool = False  # a run whose sandbox failed (a phase "error_analysis") is unfinished
    analyzer: str = DEFAULT_ANALYZER
    order: str = LONGEST_FIRST  # order.py: largest archive first, so no slot idles at the tail
    # osptrack.run.AnalyzeOptions (or any frozen dataclass with phases, timeout_s and deps_dirs);
    # passed through to analyze untouched except for per-target deps_dirs.
    analyze: Any = field(default_factory=lambda: _default_analyze_options())

    def package_limit(self) -> float:
        if self.package_timeout_s is not None:
            return self.package_timeout_s
        return self.analyze.timeout_s * max(1, len(self.analyze.phases)) + 120.0


def _default_analyze_options() -> Any:
    from osptrack.run import AnalyzeOptions  # imported late: it pulls in the whole sandbox stack

    return AnalyzeOptions()


@dataclass
class BatchSummary:
    total: int = 0
    already_finished: int = 0
    finished: int = 0
    failed: list[AttemptResult] = field(default_factory=list)  # last attempt of each coordinate given up on
    attempts: list[AttemptResult] = field(default_factory=list)
    recovered: int = 0
    interrupted: bool = False
    wall_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed and not self.interrupted


class Listener(Protocol):
    def started(self, total: int, already_finished: int) -> None: ...

    def attempt_done(self, result: AttemptResult, will_retry: bool) -> None: ...


class _Silent:
    def started(self, total: int, already_finished: int) -> None:
        pass

    def attempt_done(self, result: AttemptResult, will_retry: bool) -> None:
        pass


class Executor(Protocol):
    capacity: int

    def submit(self, job: Job) -> Any: ...

    def result(self, handle: Any) -> AttemptResult: ...

    def on_done(self, handle: Any, callback: Any) -> None: ...

    def stop(self) -> None: ...

    def close(self) -> None: ...


class LocalExecutor:
    """N scheduler threads; each one babysits one worker process at a time."""

    def __init__(self, workers: int, analyzer: str = DEFAULT_ANALYZER, preload: bool = True) -> None:
        self.capacity = workers
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="osptrack-batch")
        self._stop = threading.Event()
        # Fork workers from a preloaded zygote: same isolation, no interpreter start per package.
        self._launcher: Launcher = PreloadedLauncher(analyzer) if preload else SpawnLauncher()

    def submit(self, job: Job) -> Future[AttemptResult]:
        return self._pool.submit(run_isolated, job, self._stop.is_set, 0.05, self._launcher)

    def result(self, handle: Future[AttemptResult]) -> AttemptResult:
        return handle.result()

    def on_done(self, handle: Future[AttemptResult], callback: Any) -> None:
        handle.add_done_callback(callback)

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        close = getattr(self._launcher, "close", None)
        if close is not None:
            close()


@contextlib.contextmanager
def _exclusive(dest: Destination) -> Iterator[None]:
    """One batch per local DIR: two would clean each other's temp folders and race on runs."""
    if not dest.is_local:
        yield
        return
    dest.local_root.mkdir(parents=True, exist_ok=True)
    fd = os.open(dest.local_root / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BadInput(f"another osptrack batch is already writing to {dest.root}") from None
        yield
    finally:
        os.close(fd)


def _validate(options: BatchOptions) -> None:
    if options.retries < 0:
        raise BadInput("--retries must be 0 or more")
    if options.workers < 1:
        raise BadInput("--workers must be at least 1")
    if options.package_timeout_s is not None and options.package_timeout_s <= 0:
        raise BadInput("--package-timeout must be positive")
    if options.order not in ORDERS:
        raise BadInput(f"unknown batch order {options.order!r}; expected one of {', '.join(ORDERS)}")
    cluster = options.cluster
    if cluster is not None and not (cluster.startswith("local:") or "://" in cluster):
        raise BadInput(
            f"--cluster must be local:N or a scheduler address like tcp://host:8786, got {cluster!r}"
        )
    if cluster is not None and cluster.startswith("local:"):
        count = cluster.removeprefix("local:")
        if not count.isdigit() or int(count) < 1:
            raise BadInput(f"--cluster local:N needs a number N >= 1, got {cluster!r}")


def make_executor(options: BatchOptions) -> Executor:
    if options.cluster:
        from osptrack.batch.dask_runner import DaskExecutor

        return DaskExecutor(options.cluster)
    return LocalExecutor(options.workers, options.analyzer)


def run_batch(
    targets: list[BatchTarget],
    options: BatchOptions,
    listener: Listener | None = None,
    executor: Executor | None = None,
) -> BatchSummary:
    _validate(options)  # before anything is written to DIR
    listener = listener or _Silent()
    dest = Destination(options.out)
    dest.check()
    summary = BatchSummary(total=len(targets))
    started = time.monotonic()
    with _exclusive(dest):
        if dest.is_local:
            claim_output_dir(dest.local_root, "batch")
        dest.clean_stale_attempts()
        with Manifest(dest) as manifest:
            done_on_disk = dest.finished(targets)
            recorded = manifest.finished_keys()
            attempts_so_far = manifest.attempts()
            for target in targets:
                if target.rel_dir in done_on_disk and target.key not in recorded:
                    # Finished on disk but the batch died before logging it: log it once now.
                    attempts_so_far[target.key] += 1
                    manifest.append(
                        recovered_result(target, dest.read_run_json(target), attempts_so_far[target.key])
                    )
                    summary.recovered += 1
            replace: set[str] = set()  # runs to overwrite although finished: their sandbox failed
            if options.retry_errors:
                replace = {
                    t.rel_dir for t in targets if t.rel_dir in done_on_disk and _sandbox_failed(dest, t)
                }
            todo = schedule_order(
                (
                    t
                    for t in targets
                    if options.rerun or t.rel_dir not in done_on_disk or t.rel_dir in replace
                ),
                options.order,
            )
            summary.already_finished = len(targets) - len(todo)
            listener.started(len(targets), summary.already_finished)
            if todo:
                executor = executor or make_executor(options)
                try:
                    _schedule(
                        todo, options, dest, manifest, attempts_so_far, listener, executor, summary, replace
                    )
                finally:
                    executor.close()
        dest.clean_stale_attempts()
    summary.wall_s = time.monotonic() - started
    return summary


def _schedule(
    todo: list[BatchTarget],
    options: BatchOptions,
    dest: Destination,
    manifest: Manifest,
    attempts_so_far: Any,
    listener: Listener,
    executor: Executor,
    summary: BatchSummary,
    replace: set[str],
) -> None:
    pending: deque[BatchTarget] = deque(todo)
    tries: dict[tuple[str, str, str], int] = {}
    inflight: dict[Any, Job] = {}
    completed: queue.Queue[Any] = queue.Queue()
    budget = 1 + options.retries

    def submit(target: BatchTarget) -> None:
        attempts_so_far[target.key] += 1
        tries[target.key] = tries.get(target.key, 0) + 1
        job = Job(
            target=target,
            options=options.analyze,
            dest_root=dest.root,
            attempt=attempts_so_far[target.key],
            package_timeout_s=options.package_limit(),
            replace=options.rerun or target.rel_dir in replace,
            analyzer=options.analyzer,
        )
        handle = executor.submit(job)
        inflight[handle] = job
        executor.on_done(handle, completed.put)

    def collect(handle: Any) -> None:
        job = inflight.pop(handle)
        try:
            result = executor.result(handle)
        except Exception as exc:  # the scheduler lost the task (Dask worker died, ...)
            result = AttemptResult(job.target, CRASHED, job.attempt, worker=worker_name(), error=repr(exc))
        manifest.append(result)
        summary.attempts.append(result)
        sandbox_failed = (
            options.retry_errors and result.outcome == FINISHED and SANDBOX_ERROR in result.statuses.values()
        )
        if sandbox_failed:
            replace.add(job.target.rel_dir)  # the retry overwrites the folder just written
        retry = (
            (result.outcome not in (FINISHED, INTERRUPTED) or sandbox_failed)
            and tries[job.target.key] < budget
            and not summary.interrupted
        )
        if result.outcome == FINISHED and not retry:
            summary.finished += 1
        elif result.outcome != INTERRUPTED and not retry:
            summary.failed.append(result)
        if retry:
            pending.append(job.target)
        listener.attempt_done(result, retry)

    try:
        while pending or inflight:
            while pending and len(inflight) < executor.capacity:
                submit(pending.popleft())
            try:
                collect(completed.get(timeout=0.5))
            except queue.Empty:
                continue
    except KeyboardInterrupt:
        summary.interrupted = True
        _drain(executor, inflight, completed, collect)


def _sandbox_failed(dest: Destination, target: BatchTarget) -> bool:
    return SANDBOX_ERROR in phase_statuses(dest.read_run_json(target)).values()


def _drain(executor: Executor, inflight: dict[Any, Job], completed: queue.Queue[Any], collect: Any) -> None:
    """Ctrl-C: stop submitting, have every in-flight worker group killed, and wait for them."""
    previous = None
    if threading.current_thread() is threading.main_thread():
        # A second Ctrl-C must not abandon workers half-killed; they are already being stopped.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        executor.stop()
        deadline = time.monotonic() + KILL_WAIT_S
        while inflight and time.monotonic() < deadline:
            try:
                collect(completed.get(timeout=0.5))
            except queue.Empty:
                continue
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
