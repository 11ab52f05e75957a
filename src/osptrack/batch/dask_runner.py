"""Run batch attempts on `dask.distributed`: an existing scheduler, or a LocalCluster we start.

Each Dask task is one `run_isolated` call, so the worker-process model (own process group,
per-package wall limit, kill by pid) is the same on every machine. Ctrl-C sets a named
`distributed.Event` that running tasks poll; they kill their worker process and return
"interrupted". Results go straight from the Dask worker to DIR (shared folder or fsspec URL);
only the small AttemptResult travels back to the client.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from osptrack.batch.model import AttemptResult
from osptrack.batch.worker import Job, run_isolated
from osptrack.errors import BadInput

_STOP_POLL_S = 1.0
_CONNECT_TIMEOUT_S = 30.0


def dask_attempt(job: Job, stop_event: str) -> AttemptResult:
    """The task body, run inside a Dask worker."""
    from distributed import Event

    event = Event(stop_event)
    last_check = [0.0]
    stopped = [False]

    def should_stop() -> bool:
        # One scheduler round-trip a second per running task, not one per poll.
        now = time.monotonic()
        if not stopped[0] and now - last_check[0] >= _STOP_POLL_S:
            last_check[0] = now
            stopped[0] = bool(event.is_set())
        return stopped[0]

    return run_isolated(job, should_stop)


class DaskExecutor:
    def __init__(self, address: str) -> None:
        from distributed import Client, LocalCluster

        self._cluster: Any = None
        if address.startswith("local:"):
            try:
                n = int(address.removeprefix("local:"))
            except ValueError:
                raise BadInput(f"--cluster local:N needs a number, got {address!r}") from None
            if n < 1:
                raise BadInput("--cluster local:N needs N >= 1")
            self._cluster = LocalCluster(
                n_workers=n,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                host="127.0.0.1",
            )
            self.client = Client(self._cluster)
        else:
            try:
                self.client = Client(address, timeout=_CONNECT_TIMEOUT_S)
            except (OSError, TimeoutError, ValueError) as exc:
                raise BadInput(f"cannot reach the Dask scheduler at {address}: {exc}") from None
            self.client.wait_for_workers(1, timeout=_CONNECT_TIMEOUT_S)
        self._stop_name = f"osptrack-batch-stop-{uuid.uuid4().hex}"
        self.capacity = max(1, sum(self.client.nthreads().values()))

    def submit(self, job: Job) -> Any:
        # pure=False: a retry of the same coordinate is new work, not a cached result.
        return self.client.submit(
            dask_attempt,
            job,
            self._stop_name,
            pure=False,
            key=f"osptrack-{job.target.label}-a{job.attempt}-{uuid.uuid4().hex[:8]}",
        )

    def result(self, handle: Any) -> AttemptResult:
        result = handle.result()
        if not isinstance(result, AttemptResult):
            raise TypeError(f"unexpected task result {type(result).__name__}")
        return result

    def on_done(self, handle: Any, callback: Any) -> None:
        handle.add_done_callback(callback)

    def stop(self) -> None:
        from distributed import Event

        Event(self._stop_name, client=self.client).set()

    def close(self) -> None:
        try:
            self.client.close()
        finally:
            if self._cluster is not None:
                self._cluster.close()
