"""Benchmark `osptrack batch` on the shared corpus: --workers 1 and --workers 2, side by side.

    .venv/bin/python benchmarks/batch.py                 # real analyses (sandbox + strace)
    .venv/bin/python benchmarks/batch.py --repeat 3      # median of 3 rounds per worker count
    .venv/bin/python benchmarks/batch.py --fake 1.5      # a fake analyzer that sleeps 1.5 s (labelled)

Prints, per worker count: batch wall time, packages per minute, the slowest package, and the
scheduler overhead per package = (workers x batch wall - sum of the analyses' own times) / count,
i.e. the literal "wall - sum / count" for one worker, and per worker slot for two (idle slots at
the tail of the batch count as overhead). Then the speed-up of 2 workers over 1.
"""

from __future__ import annotations

import argparse
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
    parser.add_argument("--repeat", type=int, default=1, help="rounds per worker count; medians are reported")
    parser.add_argument(
        "--fake", type=float, default=None, metavar="S", help="sleep S seconds instead of analyze"
    )
    args = parser.parse_args()

    from osptrack.batch.sources import load_targets
    from osptrack.run import AnalyzeOptions

    targets = load_targets(args.manifest.resolve()).targets
    if args.fake is not None:
        os.environ["OSPTRACK_BENCH_FAKE_S"] = str(args.fake)
        analyzer = f"{Path(__file__).stem}:sleeping_analyze"
        mode = f"FAKE analyzer sleeping {args.fake:g} s per package (not the sandbox)"
    else:
        analyzer = "osptrack.run:analyze"
        mode = "real analyze (bwrap sandbox + strace + fake network), phases install,import"
    print(f"corpus: {len(targets)} packages from {args.manifest.resolve()}")
    print(f"mode:   {mode}; {os.cpu_count()} CPUs; {args.repeat} round(s) per worker count")
    print("load average at start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))

    rounds: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
    for _ in range(args.repeat):
        for workers in (1, 2):  # alternate so drift (cache warmth, other load) hits both alike
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
    print(f"speed-up, 2 workers over 1: {medians[1] / medians[2]:.2f}x (target >= 1.6x)")
    print("load average at end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    print("overhead s/pkg = (workers x wall - sum of analyze times) / packages;")
    print(
        "proc s/pkg     = median per attempt of (attempt wall - analyze time): worker start, staging, rename"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
