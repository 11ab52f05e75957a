"""osptrack's eBPF tracer: tracer.bpf.c (kernel side), loader.c (osptrack-ebpf), log.py (reader).

build.sh compiles the loader into bin/ (scripts/setup.sh runs it); OSPTRACK_EBPF_LOADER points
elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

HERE = Path(__file__).resolve().parent


def loader_path() -> Path | None:
    env = os.environ.get("OSPTRACK_EBPF_LOADER")
    path = Path(env) if env else HERE / "bin" / "osptrack-ebpf"
    return path if os.access(path, os.X_OK) else None
