"""osptrack's eBPF tracer: tracer.bpf.c (kernel side), loader.c (osptrack-ebpf), log.py (reader).

build.sh compiles the loader into bin/ (scripts/setup.sh runs it); OSPTRACK_EBPF_LOADER points
elsewhere.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from osptrack.trace.common import ParseStats

HERE = Path(__file__).resolve().parent
# The log format's magic and version (record.h); here, not in log.py, so that the tracer's
# availability check and its stats need neither the reader nor msgspec before the first phase.
LOG_MAGIC = 0x4B525450534F0003


@dataclass
class EbpfStats(ParseStats):
    """ParseStats plus what only this backend knows: records the kernel could not deliver."""

    lost: int = 0  # ring buffer full, or the traced-task map full: the trace is incomplete
    records: int = 0


def loader_path() -> Path | None:
    env = os.environ.get("OSPTRACK_EBPF_LOADER")
    path = Path(env) if env else HERE / "bin" / "osptrack-ebpf"
    return path if os.access(path, os.X_OK) else None
