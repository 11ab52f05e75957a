"""Benchmark judging and reporting one run folder: the verdict (facts + rules) and each report format.

    .venv/bin/python benchmarks/verdict.py RUN_DIR [--repeat 5]

Prints the event count, then the median (and min/max) seconds of `judge` and of rendering
html, sarif, markdown and json. Use a big run (an npm package with an install script has tens of
thousands of events) to see the worst case analyze pays after the sandbox.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path


def timed(fn: object, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()  # type: ignore[operator]
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    from osptrack.report import FORMATS, render
    from osptrack.verdict import RunData, judge

    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    run = RunData.load(args.run_dir)
    print(f"{args.run_dir}: {len(run.events)} events, {len(run.records)} network records")
    rows = [("judge", timed(lambda: judge(run), args.repeat))]
    rows += [(f"report {fmt}", timed(lambda fmt=fmt: render(args.run_dir, fmt), args.repeat)) for fmt in FORMATS]
    for name, ts in rows:
        print(f"{name:<16} median {statistics.median(ts):.3f} s  (min {min(ts):.3f}, max {max(ts):.3f}, n={len(ts)})")


if __name__ == "__main__":
    main()
