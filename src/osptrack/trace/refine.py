"""What a run knows beyond the strace log, applied to one phase's parsed events.

- `without_sandbox_setup`: bwrap's own work and the sandbox's init before the command are dropped.
- `mark_lookup_probes`: UDP connects that sent nothing (getaddrinfo's address selection) get
  `lookup_probe`, told from the fake network's records.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Container, Iterable, Iterator
from typing import Any

from msgspec.structs import replace

from osptrack.trace.common import INIT as INIT  # imported from here
from osptrack.trace.common import INITS
from osptrack.trace.events import Event


def without_sandbox_setup(events: Iterable[Event]) -> list[Event]:
    """`iter_without_sandbox_setup` as a list."""
    return list(iter_without_sandbox_setup(events))


def iter_without_sandbox_setup(events: Iterable[Event]) -> Iterator[Event]:
    """Drop the sandbox's own work before the command runs (mounts, library loads, the init).

    Told by place, not by name: the trace's first process (strace's child, which execs bwrap) and
    what it clones are the launcher until one of them execs the command; that exec is kept, and
    so is a failed one (bwrap's PATH search). A package's own program named bwrap is untouched.
    The sandbox's init (pid 1, one of `INITS`) is part of the launcher: its exec and its own calls are
    dropped, and the command its child execs is kept as bwrap's exec of it, as it was before
    the init existed, so what reads the events (roles, baselines) sees one launcher.
    """
    setup: set[int] | None = None
    launcher: tuple[str | None, str | None] | None = None  # bwrap's (exe, comm)
    for e in events:
        if setup is None:
            setup = {e.pid}
        if e.pid not in setup:
            yield e
            continue
        if launcher is None and e.exe is not None and _is_bwrap(e.exe):
            launcher = (e.exe, e.comm)
        if e.kind == "process" and e.op == "clone":
            if e.ok and e.child_pid is not None:
                setup.add(e.child_pid)
            continue
        if e.kind == "process" and e.op == "exec" and not _is_bwrap(e.path):
            if e.ok and e.argv and any(i in e.argv[:4] for i in INITS):
                continue  # the init: still the launcher
            if launcher is not None and not _is_bwrap(e.exe):
                e = replace(e, exe=launcher[0], comm=launcher[1])
            yield e
            if e.ok:
                setup.discard(e.pid)


def mark_lookup_probes(events: list[Event], udp_sent: set[tuple[Any, Any]]) -> list[Event]:
    """Mark connects of UDP sockets that never sent a byte: getaddrinfo's address selection.

    glibc connects a UDP socket to each candidate address to pick a source address (RFC 6724)
    and closes it unsent. The fake network records every datagram that leaves the sandbox, so a
    UDP connect to an address and port it never received a datagram for, in this phase, sent
    nothing there. (A loopback destination is never marked: no datagram to it would be seen.)
    """
    return [mark_lookup_probe(e, udp_sent) for e in events]


def mark_lookup_probe(e: Event, udp_sent: Container[tuple[Any, Any]]) -> Event:
    """`mark_lookup_probes` for one event: the event, or a copy with `lookup_probe` set."""
    if (
        e.kind == "network"
        and e.op == "connect"
        and e.ok
        and e.address is not None
        and e.args
        and ("<UDP:" in e.args[0] or "<UDPv6:" in e.args[0])
        and not _loopback(e.address)
        and (e.address, e.port) not in udp_sent
    ):
        return replace(e, lookup_probe=True)
    return e


def lookup_probe_sockets(events: Iterable[Event]) -> list[dict[str, Any]]:
    """Sockets (Address, Port) every connect of which was a lookup probe, sorted."""
    found = LookupProbes()
    for e in events:
        found.add(e)
    return found.sockets()


class LookupProbes:
    """`lookup_probe_sockets` one event at a time."""

    def __init__(self) -> None:
        self.probes: set[tuple[str, int]] = set()
        self.real: set[tuple[str, int]] = set()

    def add(self, e: Event) -> None:
        if (
            e.kind == "network"
            and e.op in ("connect", "sendto", "bind", "listen")
            and e.address
            and e.port is not None
        ):
            (self.probes if e.lookup_probe else self.real).add((e.address, e.port))

    def sockets(self) -> list[dict[str, Any]]:
        return [{"Address": a, "Port": p} for a, p in sorted(self.probes - self.real)]


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _is_bwrap(path: str | None) -> bool:
    return path is not None and path.rsplit("/", 1)[-1] == "bwrap"
