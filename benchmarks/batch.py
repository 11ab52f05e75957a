"""Benchmark `osptrack batch` on the shared corpus: --workers 1 and --workers 2, side by side.

    .venv/bin/python benchmarks/batch.py                 # real analyses, 3 rounds (sandbox + strace)
    .venv/bin/python benchmarks/batch.py --repeat 5      # 5 rounds
    .venv/bin/python benchmarks/batch.py --quick         # 3 rounds over the first 6 packages
    .venv/bin/python benchmarks/batch.py --fake 1.5      # a fake analyzer that sleeps 1.5 s (labelled)

Each round runs --workers 1 and --workers 2 once, alternating which goes first (1,2 then 2,1 ...),
so drift from other load and cache warmth hits both alike. The speed-up is reported as the
median of the rounds' own throughput ratios (wall with 1 worker / wall with 2, paired within a
round), with the ratio of the median walls beside it, and the load average before and after.

Prints, per worker count: batch wall time, packages per minute, the slowest package, and the
scheduler overhead per package = (workers x batch wall - sum of the analyses' own times) / count,
i.e. the literal "wall - sum / count" for one worker, and per worker slot for two (idle slots at
the tail of the batch count as overhead). Then the speed-up of 2 workers over 1.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MANIFEST = REPO / ".." / "shared" / "corpus" / "manifest.json"


def sleeping_analyze(ref: Any, options: Any, out: Path) -> Any:
    """Fake analyzer for --fake: sleeps, then writes a minimal run folder (run.json last)."""
    import orjson

    time.sleep(float(os.environ["OSPTRACK_BENCH_FAKE_S"]))
    out.mkdir(parents=True)
    (out / "result.json").write_bytes(b"{}")
    phases = {p: {"status": "completed"} for p in options.phases}
    (out / "run.json").write_bytes(orjson.dumps({"phases": phases, "fake": True}))
    return None


def one_round(targets: list[Any], workers: int, analyzer: str, analyze_options: Any) -> dict[str, Any]:
    from osptrack.batch.runner import BatchOptions, run_batch

    out = Path(tempfile.mkdtemp(prefix=f"osptrack-bench-w{workers}-"))
    try:
        options = BatchOptions(
            out=str(out), workers=workers, retries=0, analyzer=analyzer, analyze=analyze_options
        )
        started = time.monotonic()
        summary = run_batch(targets, options)
        wall = time.monotonic() - started
    finally:
        shutil.rmtree(out, ignore_errors=True)
    attempts = summary.attempts
    analysis = sum(a.analysis_s for a in attempts)
    slowest = max(attempts, key=lambda a: a.wall_s)
    return {
        "workers": workers,
        "wall": wall,
        "finished": summary.finished,
        "failed": [f"{a.target.label}: {a.outcome} {a.error[:80]}" for a in summary.failed],
        "analysis_sum": analysis,
        "overhead": (workers * wall - analysis) / max(1, len(attempts)),
        "process_overhead": statistics.median(a.wall_s - a.analysis_s for a in attempts),
        "slowest": f"{slowest.target.label} {slowest.wall_s:.1f} s (analysis {slowest.analysis_s:.1f} s)",
        "count": len(attempts),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST)
    parser.add_argument(
        "--repeat", type=int, default=3, help="rounds (>= 3 by default); each runs both worker counts"
    )
    parser.add_argument("--quick", action="store_true", help="3 rounds over the manifest's first 6 packages")
    parser.add_argument("--json", type=Path, help="write walls, ratios and load averages here")
    parser.add_argument(
        "--fake", type=float, default=None, metavar="S", help="sleep S seconds instead of analyze"
    )
    args = parser.parse_args()

    from osptrack.batch.sources import load_targets
    from osptrack.run import AnalyzeOptions

    if not args.manifest.is_file():
        print(f"skipped: {args.manifest.resolve()} not found (the shared corpus, ../shared, is absent)")
        return 0
    targets = load_targets(args.manifest.resolve()).targets
    if args.quick:
        targets, args.repeat = targets[:6], 3
    if args.fake is not None:
        os.environ["OSPTRACK_BENCH_FAKE_S"] = str(args.fake)
        analyzer = f"{Path(__file__).stem}:sleeping_analyze"
        mode = f"FAKE analyzer sleeping {args.fake:g} s per package (not the sandbox)"
    else:
        analyzer = "osptrack.run:analyze"
        mode = "real analyze (bwrap sandbox + strace + fake network), phases install,import"
    print(f"corpus: {len(targets)} packages from {args.manifest.resolve()}")
    print(f"mode:   {mode}; {os.cpu_count()} CPUs; {args.repeat} round(s) per worker count")
    load_before = [round(x, 2) for x in os.getloadavg()]
    print("load average at start: {:.2f} {:.2f} {:.2f}".format(*load_before))

    rounds: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
    for i in range(args.repeat):
        for workers in (1, 2) if i % 2 == 0 else (2, 1):  # alternate who goes first: drift hits both
            result = one_round(targets, workers, analyzer, AnalyzeOptions())
            rounds[workers].append(result)
            print(
                f"  round: workers={workers} wall={result['wall']:.1f} s finished={result['finished']}"
                f" load={os.getloadavg()[0]:.1f}",
                flush=True,
            )

    print()
    header = f"{'workers':>7} {'wall s':>8} {'pkg/min':>8} {'overhead s/pkg':>15} {'proc s/pkg':>11}  slowest package"
    print(header)
    medians: dict[int, float] = {}
    for workers, all_results in rounds.items():
        # A round with failed packages did less work; it would flatter its wall time.
        results = [r for r in all_results if not r["failed"]] or all_results
        for r in all_results:
            for failure in r["failed"][:3]:
                print(f"        excluded round (workers={workers}), failed: {failure}")
        wall = statistics.median(r["wall"] for r in results)
        medians[workers] = wall
        finished = statistics.median(r["finished"] for r in results)
        overhead = statistics.median(r["overhead"] for r in results)
        proc = statistics.median(r["process_overhead"] for r in results)
        slowest = max(results, key=lambda r: r["wall"])["slowest"]
        print(
            f"{workers:>7} {wall:>8.1f} {finished / wall * 60:>8.1f} {overhead:>15.3f} {proc:>11.3f}  {slowest}"
        )
    print()
    paired = [
        one["wall"] / two["wall"]
        for one, two in zip(rounds[1], rounds[2], strict=True)
        if not one["failed"] and not two["failed"]
    ]
    ratio = statistics.median(paired) if paired else float("nan")
    print(
        f"throughput ratio, 2 workers over 1: median {ratio:.2f}x over {len(paired)} round(s)"
        f" (rounds: {', '.join(f'{r:.2f}' for r in paired)}); ratio of median walls {medians[1] / medians[2]:.2f}x"
        " (target >= 1.8x)"
    )
    load_after = [round(x, 2) for x in os.getloadavg()]
    print("load average at end: {:.2f} {:.2f} {:.2f}".format(*load_after))
    if args.json:
        result = {
            "mode": mode,
            "packages": len(targets),
            "rounds": args.repeat,
            "walls_s": {str(w): [r["wall"] for r in rs] for w, rs in rounds.items()},
            "round_ratios": paired,
            "median_ratio": ratio,
            "ratio_of_median_walls": medians[1] / medians[2],
            "load_before": load_before,
            "load_after": load_after,
        }
        args.json.write_text(json.dumps(result, indent=1))
    print("overhead s/pkg = (workers x wall - sum of analyze times) / packages;")
    print(
        "proc s/pkg     = median per attempt of (attempt wall - analyze time): worker start, staging, rename"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
