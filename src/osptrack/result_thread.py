"""A daemon thread whose function's result, or exception, the thread that joins it gets.

Light on purpose (threading only): run.py uses it before the digest's imports are loaded.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar, cast

T = TypeVar("T")


class ResultThread(Generic[T]):
    def __init__(self, work: Callable[[], T], name: str) -> None:
        self._work = work
        self._result: T | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._result = self._work()
        except BaseException as exc:  # handed to the thread that joins
            self._error = exc

    def finish(self) -> None:
        """Wait for the thread and leave its exception, if any, unraised (clean-up paths)."""
        self._thread.join()

    def join(self) -> T:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return cast(T, self._result)
