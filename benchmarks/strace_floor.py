"""The floor under benchmarks/overhead.py: strace alone, with osptrack's flags, on a bare pip install.

Alternately, N times: `pip install --target` of one shared-corpus wheel on the host as `nobody`
(a) bare and (b) under `strace_command` (same flags as a sandboxed phase, but no sandbox, no fake
network, no parsing). Prints the medians and their ratio. The analysis's own ratio cannot go
below this one; the gap between the two is what the sandbox, the fake network and the parsing
cost. The bare side runs the corpus's known-benign wheel on the host by design, as overhead.py
does; wheels only, so no package build code runs.

    .venv/bin/python benchmarks/strace_floor.py [--wheel PATH] [--repeat 7]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from osptrack.trace.strace import strace_command

CORPUS = Path(__file__).resolve().parents[1] / ".." / "shared" / "corpus"
NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


def pip_install(prefix: list[str], wheel: Path, scratch: Path) -> float:
    target = scratch / "target"
    shutil.rmtree(target, ignore_errors=True)
    cmd = [*prefix, *NOBODY, "/usr/bin/python3", "-m", "pip", "install", "--no-index", "--no-deps"]
    cmd += ["--disable-pip-version-check", "--target", str(target), str(wheel)]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(scratch)}
    t0 = time.monotonic()
    subprocess.run(
        cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, timeout=300
    )
    return time.monotonic() - t0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--wheel", type=Path, default=CORPUS / "pypi" / "six" / "six-1.16.0-py2.py3-none-any.whl"
    )
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="osptrack-floor-") as tmp:
        scratch = Path(tmp)
        scratch.chmod(0o777)  # nobody writes the target and pip's cache here
        traced_prefix = strace_command(scratch / "trace.log")
        bare, traced = [], []
        for _ in range(args.repeat):
            bare.append(pip_install([], args.wheel, scratch))
            traced.append(pip_install(traced_prefix, args.wheel, scratch))
    b, t = statistics.median(bare), statistics.median(traced)
    print(
        f"{args.wheel.name}: bare {b:.3f} s, strace only {t:.3f} s, ratio {t / b:.2f} (median of {args.repeat})"
    )


if __name__ == "__main__":
    main()
