"""Two small static binaries for each phase, built from this folder by scripts/setup.sh (build.sh):

- `osptrack-init` (sandbox_init.c), the sandbox's pid 1; where it is not built, the harness's
  _sandbox_init.py, which behaves the same and costs ~15-25 ms more CPU per phase (python3's
  start-up and ctypes);
- `osptrack-launch` (launch.c), which joins the run's network namespace and cgroups, sets the
  rlimits and the parent-death signal, then execs the tracer: so the phase is spawned by
  vfork+exec instead of a fork of the whole analysing process for a preexec_fn (a fork of a
  process this size, with its threads, took tens of milliseconds per phase). Where it is not
  built, sandbox/runner.py does the same in a preexec_fn.
"""

from __future__ import annotations

import os
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Where run.py stages the init in the sandbox (/input is read-only; trace/refine.py knows both).
PYTHON_INIT = "/input/harness/_sandbox_init.py"
BINARY_INIT = "/input/harness/_sandbox_init"


def _binary(env_name: str, name: str) -> Path | None:
    """A built binary ($env_name overrides; set empty: none, the Python fallback)."""
    env = os.environ.get(env_name)
    if env == "":
        return None
    path = Path(env) if env else HERE / "bin" / name
    return path if path.is_file() and os.access(path, os.X_OK) else None


def init_path() -> Path | None:
    return _binary("OSPTRACK_INIT_BINARY", "osptrack-init")


def launch_path() -> Path | None:
    return _binary("OSPTRACK_LAUNCH_BINARY", "osptrack-launch")
