"""Wall time of `osptrack --version` and `osptrack --help`: median of N runs, with the load average.

    .venv/bin/python benchmarks/cli_startup.py [N]

`--version` is answered by osptrack.entry before typer and rich load; `--help` imports every
command module (their data libraries stay lazy) and renders with rich.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

OSPTRACK = Path(sys.executable).with_name("osptrack")


def median_ms(argv: list[str], runs: int) -> tuple[float, float, float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=False)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), min(times), max(times)


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    print(f"load average before: {os.getloadavg()[0]:.2f} (1 min), {os.cpu_count()} cores")
    for label, argv in (
        ("python -c pass", [sys.executable, "-c", "pass"]),
        ("osptrack --version", [str(OSPTRACK), "--version"]),
        ("osptrack --help", [str(OSPTRACK), "--help"]),
    ):
        med, lo, hi = median_ms(argv, runs)
        print(f"{label:20s} median {med:6.0f} ms  (min {lo:.0f}, max {hi:.0f}, n={runs})")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
