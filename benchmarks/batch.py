"""Benchmark `osptrack batch` on the shared corpus: --workers 1 and --workers 2, side by side.

    .venv/bin/python benchmarks/batch.py                 # real analyses, all 24 packages, 3 rounds
    .venv/bin/python benchmarks/batch.py --repeat 5      # 5 rounds
    .venv/bin/python benchmarks/batch.py --quick         # 3 rounds over the 8 QUICK packages
    .venv/bin/python benchmarks/batch.py --fake 1.5      # a fake analyzer that sleeps 1.5 s (labelled)
    .venv/bin/python benchmarks/batch.py --orders given,longest-first --timeline   # 2 workers twice
    .venv/bin/python benchmarks/batch.py --quick --loader main=/path/to/osptrack-ebpf  # another loader build too
    .venv/bin/python benchmarks/batch.py --latency held,off   # every side with and without the wake-latency request
    .venv/bin/python benchmarks/batch.py --bare          # also the bare installs as a batch: what the machine allows

Each round runs every side once (1 worker, and 2 workers per --orders entry; all of them again
per --loader NAME=PATH, another build of the eBPF loader with its own resident tracer), rotating
which goes first, so drift from other load and cache warmth hits all alike. The speed-up is the
median of the rounds' own throughput ratios (wall with 1 worker / wall with 2, paired within a
round), with the ratio of the median walls beside it, and the load average before and after.

The package set must allow 2x at all: a batch cannot end before its longest analysis, so with
2 workers the wall is at least max(longest, sum / 2). The script prints that bound from the
1-worker times. The whole corpus (24 packages, longest core-js at about a tenth of the sum)
allows 2x; so does QUICK (longest docopt at about a fifth). The corpus's first 6, the old
--quick, held core-js at over half of the batch: at most about 1.6x whatever the scheduler did.

--bare adds two sides without osptrack: the corpus's bare install + import (benchmarks/overhead.py's
bare side, on a tmpfs) run 1 and 2 at a time, in the batch's own order. Their ratio is what this
machine and these packages allow 2 workers at all: an npm install keeps more than one core busy
by itself, and two installs beside each other each take more CPU than one alone. osptrack's
ratio is printed against it. The bare batch holds osptrack's wake-latency request when
osptrack's sides do (by default; --latency runs both once per setting), so the floor is taken
under the same idle-CPU policy as the ratio read against it.

Prints, per side: batch wall time, packages per minute, the slowest package, the scheduler
overhead per package = (workers x batch wall - sum of the analyses' own times) / count, idle
slot-seconds (workers x wall - sum of attempt walls: the tail and start-up), and CPU seconds
(the batch, its zygote, workers and sandboxes, and the resident eBPF tracer), then each
package's analysis time per side: a package slower with 2 workers than with 1 is contention
(CPU, or something the two runs share), not scheduling.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from unittest import mock

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MANIFEST = REPO / ".." / "shared" / "corpus" / "manifest.json"
# --quick: 8 packages (the ones docs/performance.md's overhead figures use) whose longest
# analysis, docopt's sdist build, is about a fifth of the batch, so 2 workers can reach 2x; the
# corpus's first 6 held core-js, more than half of that batch by itself (docs/batch.md).
QUICK = ("six", "requests", "attrs", "docopt", "left-pad", "chalk", "lodash", "debug")


def sleeping_analyze(ref: Any, options: Any, out: Path) -> Any:
    """Fake analyzer for --fake: sleeps, then writes a minimal run folder (run.json last)."""
    import orjson

    time.sleep(float(os.environ["OSPTRACK_BENCH_FAKE_S"]))
    out.mkdir(parents=True)
    (out / "result.json").write_bytes(b"{}")
    phases = {p: {"status": "completed"} for p in options.phases}
    (out / "run.json").write_bytes(orjson.dumps({"phases": phases, "fake": True}))
    return None


def _tracer_cpu() -> dict[int, float]:
    """CPU seconds per pid of this checkout's resident eBPF tracer (`osptrack-ebpf`, shared by
    all runs: not a child of any worker, so no worker's rusage counts it). Other checkouts'
    tracers (other sessions' tests) are left out: their loader is another file."""
    from osptrack.trace.ebpf import loader_path

    loader = loader_path()
    found: dict[int, float] = {}
    if loader is None:
        return found
    tick = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if os.readlink(stat.parent / "exe") != str(loader.resolve()):
                continue
            text = stat.read_text()
        except OSError:
            continue
        rest = text[text.rindex(")") + 2 :].split()
        found[int(stat.parent.name)] = (int(rest[11]) + int(rest[12])) / tick
    return found


def _tracer_delta(before: dict[int, float], after: dict[int, float]) -> float:
    # A tracer that started during the round counts whole; one that exited is lost (it idles out
    # after 10 minutes without runs, so not during a benchmark).
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


def _cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    me = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime + me.ru_utime + me.ru_stime


def one_round(
    targets: list[Any],
    workers: int,
    analyzer: str,
    analyze_options: Any,
    order: str,
    loader: str | None = None,
    latency: str = "",
) -> dict[str, Any]:
    from osptrack.batch.runner import BatchOptions, run_batch
    from osptrack.sandbox.wakeup import OFF_ENV

    out = Path(tempfile.mkdtemp(prefix=f"osptrack-bench-w{workers}-"))
    env: dict[str, str] = {}  # the batch's zygote and workers inherit it
    if loader:  # _tracer_cpu follows it too
        env["OSPTRACK_EBPF_LOADER"] = loader
    if latency:  # "held" or "off": the wake-latency request (osptrack.sandbox.wakeup)
        env[OFF_ENV] = "1" if latency == "held" else "0"
    try:
        with mock.patch.dict(os.environ, env):
            options = BatchOptions(
                out=str(out),
                workers=workers,
                retries=0,
                analyzer=analyzer,
                analyze=analyze_options,
                **({"order": order} if order else {}),
            )
            tracer0, cpu0 = _tracer_cpu(), _cpu_children()
            started = time.monotonic()
            summary = run_batch(targets, options)
            wall = time.monotonic() - started
            tracer_cpu, cpu = _tracer_delta(tracer0, _tracer_cpu()), _cpu_children() - cpu0
    finally:
        shutil.rmtree(out, ignore_errors=True)
    attempts = summary.attempts
    analysis = sum(a.analysis_s for a in attempts)
    slowest = max(attempts, key=lambda a: a.wall_s)
    timeline = sorted(
        (
            getattr(a, "started_s", 0.0) - started,
            getattr(a, "started_s", 0.0) - started + a.wall_s,
            a.target.label,
            a.worker,
        )
        for a in attempts
    )
    return {
        "workers": workers,
        "order": order,
        "wall": wall,
        "finished": summary.finished,
        "failed": [f"{a.target.label}: {a.outcome} {a.error[:80]}" for a in summary.failed],
        "analysis_sum": analysis,
        "analysis": {a.target.label: a.analysis_s for a in attempts},
        "cpu_by_package": {
            a.target.label: [getattr(a, "cpu_host_s", 0.0), getattr(a, "cpu_sandbox_s", 0.0)]
            for a in attempts
        },
        "overhead": (workers * wall - analysis) / max(1, len(attempts)),
        "process_overhead": statistics.median(a.wall_s - a.analysis_s for a in attempts),
        # Slot-seconds with no attempt running: the tail, and the gaps between attempts.
        "idle_slot_s": workers * wall - sum(a.wall_s for a in attempts),
        "cpu_host": sum(getattr(a, "cpu_host_s", 0.0) for a in attempts),
        "cpu_sandbox": sum(getattr(a, "cpu_sandbox_s", 0.0) for a in attempts),
        "cpu_all": cpu,  # everything this process and its children used (batch, zygote, workers...)
        "cpu_tracer": tracer_cpu,
        "slowest": f"{slowest.target.label} {slowest.wall_s:.1f} s (analysis {slowest.analysis_s:.1f} s)",
        "timeline": timeline,
        "count": len(attempts),
    }


def bare_round(targets: list[Any], workers: int, order: str, latency: str = "") -> dict[str, Any]:
    """The bare workload of every target as a batch of `workers` slots, in the batch's order:
    the same keys as one_round's result, so the summary treats both alike. latency "held"
    holds osptrack's wake-latency request for the whole batch, "off" does not, "" as the
    environment says (the osptrack sides' default)."""
    from concurrent.futures import ThreadPoolExecutor

    from overhead import bare, tmpfs_root

    from osptrack.batch.order import schedule_order
    from osptrack.sandbox.wakeup import OFF_ENV, held

    queue = schedule_order(targets, order) if order else schedule_order(targets)
    attempts: dict[str, tuple[float, float]] = {}

    def attempt(target: Any, root: Path) -> None:
        scratch = Path(tempfile.mkdtemp(dir=root))
        entry = {"ecosystem": target.ecosystem, "name": target.name, "archive": target.archive}
        started = time.monotonic()
        try:
            bare(entry, scratch)  # an absolute archive path stays itself under overhead.CORPUS
        finally:
            attempts[target.label] = (started, time.monotonic() - started)
            shutil.rmtree(scratch, ignore_errors=True)

    # "" follows the environment, as the osptrack sides do: held unless OSPTRACK_LOW_LATENCY=0
    policy = {OFF_ENV: "1" if latency == "held" else "0"} if latency else {}
    with tmpfs_root() as root, mock.patch.dict(os.environ, policy), held() as state:
        if latency == "held" and state != "held":  # a floor without it would not be this side
            raise SystemExit(f"bare batch: wake-latency request {state}")
        cpu0 = _cpu_children()
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for future in [pool.submit(attempt, t, root) for t in queue]:
                future.result()
        wall = time.monotonic() - started
        cpu = _cpu_children() - cpu0
    analysis = {label: took for label, (_, took) in attempts.items()}
    slowest = max(analysis, key=lambda label: analysis[label])
    return {
        "workers": workers,
        "order": order,
        "wall": wall,
        "finished": len(analysis),
        "failed": [],  # bare() raises on a failed install: the benchmark stops
        "analysis_sum": sum(analysis.values()),
        "analysis": analysis,
        "cpu_by_package": {},
        "overhead": (workers * wall - sum(analysis.values())) / len(analysis),
        "process_overhead": 0.0,
        "idle_slot_s": workers * wall - sum(analysis.values()),
        "cpu_host": 0.0,
        "cpu_sandbox": cpu,
        "cpu_all": cpu,
        "cpu_tracer": 0.0,
        "slowest": f"{slowest} {analysis[slowest]:.1f} s",
        "timeline": sorted(
            (start - started, start - started + took, label, "bare")
            for label, (start, took) in attempts.items()
        ),
        "count": len(analysis),
    }


# workers, scheduling order, loader name ("" for this tree's; BARE: no osptrack), wake-latency
# request ("" as set)
Side = tuple[int, str, str, str]
BARE = "bare"


def _name(side: Side) -> str:
    workers, order, loader, latency = side
    if loader == BARE:
        return f"bare, {workers} at a time{f', latency {latency}' if latency else ''}"
    return (
        f"{workers} worker{'s' if workers > 1 else ''}{f', {order}' if order else ''}"
        f"{f', {loader}' if loader else ''}{f', latency {latency}' if latency else ''}"
    )


def _median_by_package(results: list[dict[str, Any]]) -> dict[str, float]:
    per: dict[str, list[float]] = {}
    for r in results:
        for label, seconds in r["analysis"].items():
            per.setdefault(label, []).append(seconds)
    return {label: statistics.median(v) for label, v in per.items()}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST)
    parser.add_argument(
        "--repeat", type=int, default=3, help="rounds (>= 3 by default); each runs both worker counts"
    )
    parser.add_argument("--quick", action="store_true", help=f"3 rounds over {len(QUICK)} packages (QUICK)")
    parser.add_argument("--names", help="only these corpus packages (comma-separated names)")
    parser.add_argument(
        "--orders",
        default="",
        help="comma-separated scheduling orders (BatchOptions.order) to run 2 workers with, each a"
        " side of its own, e.g. 'given,longest-first'; default: the batch's own",
    )
    parser.add_argument("--timeline", action="store_true", help="print each round's attempts, start/end")
    parser.add_argument(
        "--loader",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="also run every side traced by this build of osptrack-ebpf (e.g. main's), alternated",
    )
    parser.add_argument(
        "--latency",
        default="",
        help="comma-separated 'held'/'off': run every side with the wake-latency request held"
        " and/or off (OSPTRACK_LOW_LATENCY), alternated; default: as the environment says",
    )
    parser.add_argument(
        "--bare",
        action="store_true",
        help="also run the bare installs 1 and 2 at a time (no osptrack), alternated with the rest",
    )
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
    names = set(args.names.split(",")) if args.names else set(QUICK) if args.quick else None
    if names is not None:
        targets = [t for t in targets if t.name in names]
    if args.quick:
        args.repeat = 3
    if args.fake is not None:
        os.environ["OSPTRACK_BENCH_FAKE_S"] = str(args.fake)
        analyzer = f"{Path(__file__).stem}:sleeping_analyze"
        mode = f"FAKE analyzer sleeping {args.fake:g} s per package (not the sandbox)"
    else:
        analyzer = "osptrack.run:analyze"
        mode = "real analyze (bwrap sandbox + tracer + fake network), phases install,import"
    print(f"corpus: {len(targets)} packages from {args.manifest.resolve()}")
    print(f"mode:   {mode}; {os.cpu_count()} CPUs; {args.repeat} round(s) per worker count")
    orders = args.orders.split(",") if args.orders else [""]
    if args.orders:
        print(f"orders: {', '.join(orders)} (2 workers; 1 worker runs with {orders[0]})")
    load_before = [round(x, 2) for x in os.getloadavg()]
    print("load average at start: {:.2f} {:.2f} {:.2f}".format(*load_before))

    # Sides: 1 worker, and 2 workers once per --orders entry; their order rotates every round
    # (each side goes first in turn) so drift from other load and cache warmth hits all alike.
    loaders = {"": ""} | dict(spec.split("=", 1) for spec in args.loader)
    latencies = args.latency.split(",") if args.latency else [""]
    if any(value not in ("", "held", "off") for value in latencies):
        parser.error("--latency takes 'held', 'off' or both")
    sides: list[Side] = [
        side
        for latency in latencies
        for name in loaders
        for side in [(1, orders[0], name, latency)] + [(2, o, name, latency) for o in orders]
    ]
    if args.bare:
        if args.fake is not None:
            parser.error("--bare compares real analyses with bare installs; leave out --fake")
        sides += [(w, orders[0], BARE, latency) for latency in latencies for w in (1, 2)]
    rounds: dict[Side, list[dict[str, Any]]] = {side: [] for side in sides}
    for i in range(args.repeat):
        for workers, order, name, latency in sides[i % len(sides) :] + sides[: i % len(sides)]:
            if name == BARE:
                result = bare_round(targets, workers, order, latency)
            else:
                result = one_round(
                    targets, workers, analyzer, AnalyzeOptions(), order, loaders[name] or None, latency
                )
            rounds[(workers, order, name, latency)].append(result)
            print(
                f"  round {i + 1}: {'bare ' if name == BARE else ''}workers={workers}"
                f"{f' order={order}' if order else ''}{f' loader={name}' if name and name != BARE else ''}"
                f"{f' latency={latency}' if latency else ''}"
                f" wall={result['wall']:.1f} s finished={result['finished']}"
                f" idle slots={result['idle_slot_s']:.1f} s cpu={result['cpu_all'] + result['cpu_tracer']:.1f} s"
                f" (workers: host {result['cpu_host']:.1f}, sandbox {result['cpu_sandbox']:.1f};"
                f" eBPF tracer {result['cpu_tracer']:.1f}) load={os.getloadavg()[0]:.1f}",
                flush=True,
            )
            if args.timeline:
                for start, end, label, worker in result["timeline"]:
                    print(f"      {start:7.2f} {end:7.2f}  {worker:<24} {label}")

    print()
    header = (
        f"{'side':>20} {'wall s':>8} {'pkg/min':>8} {'overhead s/pkg':>15} {'proc s/pkg':>11}"
        f" {'idle slot s':>12} {'cpu s':>7} {'cpu/wall':>9}  slowest package"
    )
    print(header)
    medians: dict[Side, float] = {}
    valid: dict[Side, list[dict[str, Any]]] = {}
    for side, all_results in rounds.items():
        # A round with failed packages did less work; it would flatter its wall time.
        results = [r for r in all_results if not r["failed"]] or all_results
        valid[side] = results
        for r in all_results:
            for failure in r["failed"][:3]:
                print(f"        excluded round ({_name(side)}), failed: {failure}")
        wall = statistics.median(r["wall"] for r in results)
        medians[side] = wall
        finished = statistics.median(r["finished"] for r in results)
        overhead = statistics.median(r["overhead"] for r in results)
        proc = statistics.median(r["process_overhead"] for r in results)
        idle = statistics.median(r["idle_slot_s"] for r in results)
        cpu = statistics.median(r["cpu_all"] + r["cpu_tracer"] for r in results)
        util = statistics.median((r["cpu_all"] + r["cpu_tracer"]) / r["wall"] for r in results)
        slowest = max(results, key=lambda r: r["wall"])["slowest"]
        print(
            f"{_name(side):>20} {wall:>8.1f} {finished / wall * 60:>8.1f} {overhead:>15.3f} {proc:>11.3f}"
            f" {idle:>12.1f} {cpu:>7.1f} {util:>9.2f}  {slowest}"
        )
    print()
    base = sides[0]
    one = _median_by_package(valid[base])
    twos = {side: _median_by_package(valid[side]) for side in sides[1:]}
    print(f"analysis s per package, median ({' / '.join(_name(side) for side in sides)}):")
    for label in sorted(one, key=lambda k: -one[k]):
        cells = " ".join(f"{two.get(label, float('nan')):6.2f}" for two in twos.values())
        print(f"  {label:<36} {one[label]:6.2f} {cells}")
    sum1 = sum(one.values())
    for side, two in twos.items():
        sum2 = sum(two.get(k, 0.0) for k in one)
        print(f"  sum, {_name(side)}: {sum2:.2f} s against {sum1:.2f} s ({sum2 / sum1:.2f}x per analysis)")
    # The analyses' own CPU (worker + sandbox): the same work on each side, so a rise with 2
    # workers is what running beside another costs (the machine, or something the runs share),
    # and 2 x the 1-worker wall / this is the most 2 cores can give over 1 worker.
    for side in sides:
        analysis_cpu = statistics.median(r["cpu_host"] + r["cpu_sandbox"] for r in valid[side])
        print(f"  CPU of the analyses, {_name(side)}: {analysis_cpu:.2f} s per batch (median)")
    longest = max(one.values())
    bound = sum1 / max(longest, sum1 / 2)
    print(
        f"  longest package {longest:.2f} s of {sum1:.2f} s: with 2 slots and 1-worker analysis times,"
        f" no order beats {bound:.2f}x"
    )
    print()
    ratios: dict[str, Any] = {}
    for side in sides:
        if side[0] == 1:
            continue
        own = (1, orders[0], side[2], side[3])  # 1 worker, same loader and wake-latency setting
        paired = [
            one_r["wall"] / two_r["wall"]
            for one_r, two_r in zip(rounds[own], rounds[side], strict=True)
            if not one_r["failed"] and not two_r["failed"]
        ]
        ratio = statistics.median(paired) if paired else float("nan")
        ratios[_name(side)] = {
            "rounds": paired,
            "median": ratio,
            "of_median_walls": medians[own] / medians[side],
        }
        print(
            f"throughput ratio, {_name(side)} over {_name(own)}: median {ratio:.2f}x over {len(paired)} round(s)"
            f" (rounds: {', '.join(f'{r:.2f}' for r in paired)});"
            f" ratio of median walls {medians[own] / medians[side]:.2f}x"
            f"{'' if side[2] == BARE else ' (target >= 1.8x)'}"
        )
    for latency in latencies if args.bare else []:
        bare_rounds = ratios[_name((2, orders[0], BARE, latency))]["rounds"]
        ours = ratios[_name((2, orders[0], "", latency))]["rounds"]
        # Paired within a round: both batches ran minutes apart, under the same drift.
        relative = [r / b for r, b in zip(ours, bare_rounds, strict=True)]
        setting = f", latency {latency}" if latency else ""
        ratios[f"osptrack over bare{setting}"] = {"rounds": relative, "median": statistics.median(relative)}
        print(
            f"osptrack's speed-up as a share of the bare installs' own{setting}:"
            f" median {statistics.median(relative):.2f} (rounds: {', '.join(f'{r:.2f}' for r in relative)})"
        )
    load_after = [round(x, 2) for x in os.getloadavg()]
    print("load average at end: {:.2f} {:.2f} {:.2f}".format(*load_after))
    if args.json:
        result = {
            "mode": mode,
            "orders": orders,
            "packages": len(targets),
            "rounds": args.repeat,
            "walls_s": {_name(side): [r["wall"] for r in rs] for side, rs in rounds.items()},
            "ratios": ratios,
            "analysis_s": {_name(base): one} | {_name(side): two for side, two in twos.items()},
            "rounds_detail": {_name(side): rs for side, rs in rounds.items()},
            "load_before": load_before,
            "load_after": load_after,
        }
        args.json.write_text(json.dumps(result, indent=1))
    print("overhead s/pkg = (workers x wall - sum of analyze times) / packages;")
    print(
        "proc s/pkg     = median per attempt of (attempt wall - analyze time): worker start, staging, rename"
    )
    print("idle slot s    = workers x wall - sum of attempt walls: slots with nothing running (the tail)")
    print(
        "cpu s          = CPU of the batch, its zygote and workers and their sandboxes, plus the resident"
        " eBPF tracer; cpu/wall > 1 means more than one core busy"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
