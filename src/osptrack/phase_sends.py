"""`PhaseSends`: where a phase's datagrams went, for the digest of its trace; in a module of its
own, which imports only threading, because the run makes one before its phase starts and
osptrack.digest loads only once the phase runs (osptrack.run.DEFERRED)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class PhaseSends:
    """Where a phase's datagrams went (mark_lookup_probe's `udp_sent`), asked while the phase may
    still run. A destination the fake network has already seen a datagram to is final (records
    are only ever added); any other answer waits for the phase's end (`finish`), so every mark is
    the one the finished phase gives. (No corpus package makes such a UDP connect: the wait is rare.)
    """

    def __init__(self, seen: Callable[[], set[tuple[Any, Any]]]) -> None:
        self._seen = seen
        self._final: set[tuple[Any, Any]] | None = None
        self._ready = threading.Event()

    def __contains__(self, key: object) -> bool:
        if self._final is None and key in self._seen():
            return True
        self._ready.wait()
        if self._final is None:
            raise RuntimeError("the phase failed before its datagrams were known")
        return key in self._final

    def finish(self, final: set[tuple[Any, Any]] | None) -> None:
        """The finished phase's destinations; None when the phase failed (a waiting digest raises)."""
        self._final = final
        self._ready.set()
