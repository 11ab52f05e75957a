"""Benchmark: `labels build` from the full shared OpenSSF zip. Targets: <= 10 s wall, <= 1 GiB peak RSS.

Each run is a fresh process (so peak RSS is that build's alone), timed end to end including
interpreter start and imports, and also inside the process around build_labels alone.
Prints the medians of N runs and the sub-label coverage table per ecosystem.

    .venv/bin/python benchmarks/labels_build.py [--runs 3] [--zip ../shared/data/malicious-packages-main.zip]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_ZIP = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "malicious-packages-main.zip"

CHILD = """
import json, resource, sys, time
from pathlib import Path
t0 = time.perf_counter()
from osptrack.labels.build import build_labels
t1 = time.perf_counter()
_, iocs, report = build_labels([Path(sys.argv[1])], out=Path(sys.argv[2]))
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "build_s": t2 - t1, "rows": report.rows, "iocs": len(iocs),
                  "skipped": report.skipped,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--zip", type=Path, default=DEFAULT_ZIP)
    args = parser.parse_args()

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "labels.parquet"
        for _ in range(args.runs):
            start = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-c", CHILD, str(args.zip.resolve()), str(out)],
                check=True,
                capture_output=True,
                text=True,
            )
            child = json.loads(proc.stdout)
            child["wall_s"] = time.perf_counter() - start
            results.append(child)

        from osptrack.labels.stats import compute_stats

        stats = compute_stats(out)

    def med(key: str) -> float:
        return statistics.median(r[key] for r in results)

    print(
        f"labels build, {args.zip.name}, {results[0]['rows']} rows, {results[0]['iocs']} IOCs, "
        f"{results[0]['skipped']} skipped; median of {args.runs} fresh processes"
    )
    print(
        f"  wall (process, incl. startup):  {med('wall_s'):.2f} s   runs: "
        + ", ".join(f"{r['wall_s']:.2f}" for r in results)
    )
    print(f"  build_labels alone:             {med('build_s'):.2f} s")
    print(
        f"  peak RSS:                       {med('peak_rss_mib'):.0f} MiB   runs: "
        + ", ".join(f"{r['peak_rss_mib']:.0f}" for r in results)
    )
    print(
        f"  targets: wall <= 10 s -> {'OK' if med('wall_s') <= 10 else 'MISSED'}; "
        f"peak RSS <= 1024 MiB -> {'OK' if med('peak_rss_mib') <= 1024 else 'MISSED'}"
    )
    print()
    print("coverage: share of (non-withdrawn) records with >= 1 behaviour sub-label beyond full_compromise")
    print(f"  {'ecosystem':<10} {'records':>8} {'behaviour':>10} {'share':>7}")
    rows = sorted(stats.ecosystems.items(), key=lambda kv: -kv[1].rows)
    for eco, s in [*rows, ("total", stats.total)]:
        share = f"{100 * s.behaviour / s.active:.1f}%" if s.active else "-"
        print(f"  {eco:<10} {s.active:>8} {s.behaviour:>10} {share:>7}")


if __name__ == "__main__":
    main()
