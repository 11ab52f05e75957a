"""Low CPU wake-up latency while a run is analysed: a PM QoS request on /dev/cpu_dma_latency.

Tracing is a ping-pong between processes: under strace every traced call stops the tracee and
wakes strace, twice; under eBPF the tracer's daemon, the log's follower, the fake network and
the output drains wake one another. On a virtual machine whose idle vCPUs halt (cpuidle's
haltpoll, then an exit to the hypervisor), waking an idle CPU costs ~200 us: 2,000 traced
opens took ~450 ms more under strace than bare, and ~60 ms more with this request held
(benchmarks/wakeup.py). A bare install gains less: the corpus's bare installs one at a time
took 10% less wall with it on an AMD host with haltpoll, osptrack's analyses 16% less; two
at a time, where no CPU idles for long, neither gains (benchmarks/batch.py --bare --latency
held,off).

Writing 0 asks every CPU to poll rather than enter an idle state, for as long as the file stays
open: the kernel drops the request when it is closed, and when its process dies, so nothing
outlives the run. While a run holds it, idle CPUs spin instead of sleeping (power, not time,
of other work: a poll ends as soon as a task is runnable). The sandbox never sees it (its /dev
is bwrap's own). `OSPTRACK_LOW_LATENCY=0` turns it off.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DEVICE = Path("/dev/cpu_dma_latency")
OFF_ENV = "OSPTRACK_LOW_LATENCY"  # "0": let idle CPUs sleep during runs


def wanted() -> bool:
    return os.environ.get(OFF_ENV, "1") != "0"


def request() -> tuple[int | None, str]:
    """Open the request: (its fd, or None; why not). The caller closes the fd to drop it."""
    if not wanted():
        return None, f"off ({OFF_ENV}=0)"
    try:
        fd = os.open(DEVICE, os.O_WRONLY | os.O_CLOEXEC)
    except OSError as exc:
        return None, f"unavailable ({DEVICE}: {exc.strerror})"
    try:
        os.write(fd, struct.pack("=i", 0))  # the device reads a native s32: microseconds
    except OSError as exc:
        os.close(fd)
        return None, f"unavailable ({DEVICE}: {exc.strerror})"
    return fd, "held"


@contextmanager
def held() -> Iterator[str]:
    """Hold the request for the block; yields what was done ("held", "off (...)", "unavailable (...)")."""
    fd, state = request()
    try:
        yield state
    finally:
        if fd is not None:
            os.close(fd)
