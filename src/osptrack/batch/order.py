"""The order in which the batch starts its attempts.

With several worker slots, a batch ends when its last attempt ends: if the longest package
starts last, the other slots sit idle while it runs. Starting the longest jobs first (LPT,
"longest processing time first") bounds that tail by the shortest jobs instead. The length of an
analysis is not known before it runs, so the estimate is the archive's size on disk, one `stat`
per target: no archive is opened on the host before its worker stages it (collection samples are
hostile input, see staging.py), and the trace, hence the analysis time, grows with what the
package unpacks. A PyPI source distribution also has a wheel built in the sandbox (pip fetches
setuptools and runs its build), which costs as much as a large archive whatever its own size:
on the corpus a 3.9 KB sdist (termcolor) took longer than the 319 KB lodash tarball. Its
filename says what it is, so it gets a fixed surcharge. Targets without a local archive
(fetched by coordinate) count as 0 and go last, in their given order.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from osptrack.batch.model import PLAIN, BatchTarget
from osptrack.errors import BadInput

LONGEST_FIRST = "longest-first"  # the default: largest archive first
GIVEN = "given"  # the order of TARGETS, as before
ORDERS = (LONGEST_FIRST, GIVEN)

# What building a wheel from an sdist weighs, in archive bytes: a few seconds of pip and
# setuptools, about what the corpus's largest wheels and tarballs take (docs/batch.md).
SDIST_BUILD_BYTES = 512 * 1024
_WHEEL = ".whl"


def estimated_cost(target: BatchTarget) -> int:
    """Bytes of the target's archive, plus SDIST_BUILD_BYTES for a PyPI sdist; 0 when there is
    no archive or it cannot be read."""
    if not target.archive:
        return 0
    try:
        size = os.stat(target.archive).st_size
    except OSError:
        return 0  # the worker reports the missing archive; the order must not fail on it
    if _is_sdist(target):
        size += SDIST_BUILD_BYTES
    return size


def _is_sdist(target: BatchTarget) -> bool:
    # A collection's encrypted zip (packing != PLAIN) may hold either; its name does not say.
    return (
        target.ecosystem == "pypi"
        and target.packing == PLAIN
        and not str(target.archive).lower().endswith(_WHEEL)
    )


def schedule_order(targets: Iterable[BatchTarget], order: str = LONGEST_FIRST) -> list[BatchTarget]:
    """The targets in the order to start them; ties keep the given order (sorted() is stable)."""
    if order == GIVEN:
        return list(targets)
    if order == LONGEST_FIRST:
        return sorted(targets, key=estimated_cost, reverse=True)
    raise BadInput(f"unknown batch order {order!r}; expected one of {', '.join(ORDERS)}")
