"""eBPF against strace: the same packages analysed with each tracer backend, beside a bare run.

For each package, --repeat rounds; each round runs three sides in an order rotated from round
to round (drift from other load hits every side alike):

- bare: the toolchain's own commands on the host on tmpfs, no sandbox, no tracing
  (benchmarks/overhead.py's bare side, reused as is);
- ebpf: `osptrack.run.analyze(..., tracer="ebpf")` in this process;
- strace: the same with `tracer="strace"`.

The resident eBPF tracer is started before the first round (as the first run of a machine would)
and its start-up is measured apart, as is a traced `true` per backend (what each adds per phase).
Prints medians per side, the ratios against bare and eBPF against strace, and the load average;
--json writes every sample.

    .venv/bin/python benchmarks/tracer.py [--repeat 5 | --quick] [--names six,requests,left-pad,chalk] [--json PATH]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from overhead import CORPUS, bare, filesystem, loadavg, rotated_samples, timed_analyze, tmpfs_root  # noqa: E402

SIDES = ("bare", "ebpf", "strace")
DEFAULT_NAMES = "six,requests,left-pad,chalk"


def traced(entry: dict[str, Any], scratch: Path, tracer: str) -> float:
    took = timed_analyze(entry, scratch, tracer=tracer)
    phases = json.loads((scratch / "run" / "run.json").read_text())["phases"]
    if any(p.get("tracer") != tracer or p.get("trace_lost_events") for p in phases.values()):
        raise SystemExit(f"{entry['name']}: not traced by {tracer}, or events lost: {phases}")
    return took


def startup(repeat: int) -> dict[str, Any]:
    """The resident tracer's start (load + verify + attach), and a traced `true` per backend."""
    from osptrack.trace.ebpf import loader_path
    from osptrack.trace.tracers import get

    loader = loader_path()
    assert loader is not None
    out: dict[str, Any] = {}
    checks = []
    for _ in range(repeat):
        t0 = time.monotonic()
        subprocess.run([str(loader), "--check"], capture_output=True, check=True)
        checks.append(time.monotonic() - t0)
    out["load_verify_attach_s"] = statistics.median(checks)
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("ebpf", "strace"):
            backend = get(name)
            times = []
            for i in range(repeat * 3):
                argv = [*backend.command(Path(tmp) / f"{name}{i}.log", user=None), "/bin/true"]
                t0 = time.monotonic()
                subprocess.run(argv, capture_output=True, check=True)
                times.append(time.monotonic() - t0)
            out[f"traced_true_{name}_s"] = statistics.median(times)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=5, help="rounds per package (default 5)")
    parser.add_argument("--quick", action="store_true", help="1 round per package")
    parser.add_argument(
        "--names", default=DEFAULT_NAMES, help=f"comma-separated corpus names (default {DEFAULT_NAMES})"
    )
    parser.add_argument("--json", type=Path, help="write medians, ratios, samples and load averages here")
    args = parser.parse_args()
    manifest = CORPUS / "manifest.json"
    if not manifest.is_file():
        print(f"skipped: the shared corpus is absent ({manifest.resolve()} not found; ../shared holds it)")
        return 0
    from osptrack.trace.tracers import get

    ok, why = get("ebpf").available()
    if not ok:
        print(f"skipped: the eBPF tracer is unavailable here: {why}")
        return 0
    repeat = 1 if args.quick else args.repeat
    entries = json.loads(manifest.read_text())["packages"]
    wanted = args.names.split(",")
    unknown = sorted(set(wanted) - {e["name"] for e in entries})
    if unknown:
        print(f"tracer.py: error: not in the corpus: {', '.join(unknown)}", file=sys.stderr)
        return 2
    entries = [e for e in entries if e["name"] in wanted]
    load_before = loadavg()
    print(f"load average before: {load_before}, {os.cpu_count()} cores; {repeat} round(s) per package")
    start = startup(max(repeat, 3))
    print(
        f"eBPF programs load+verify+attach {start['load_verify_attach_s'] * 1000:.0f} ms (paid once by the"
        f" resident tracer); a traced /bin/true: eBPF {start['traced_true_ebpf_s'] * 1000:.0f} ms,"
        f" strace {start['traced_true_strace_s'] * 1000:.0f} ms",
        flush=True,
    )
    rows: list[dict[str, Any]] = []
    with tmpfs_root() as fast:
        print(f"bare side on {fast} ({filesystem(fast)})")
        for entry in entries:
            runs: dict[str, Callable[[dict[str, Any], Path], float]] = {"bare": bare}
            runs.update({t: functools.partial(traced, tracer=t) for t in SIDES[1:]})
            samples = rotated_samples(entry, runs, repeat, fast)
            med = {s: statistics.median(v) for s, v in samples.items()}
            row = {
                "ecosystem": entry["ecosystem"],
                "name": entry["name"],
                "median_s": med,
                "ratio_ebpf": med["ebpf"] / med["bare"],
                "ratio_strace": med["strace"] / med["bare"],
                "ebpf_over_strace": med["ebpf"] / med["strace"],
                "samples_s": samples,
                "load_1min": loadavg()[0],
            }
            rows.append(row)
            print(
                f"{entry['ecosystem']:5} {entry['name']:12} bare {med['bare']:6.2f}s  ebpf {med['ebpf']:6.2f}s"
                f" ({row['ratio_ebpf']:4.2f}x)  strace {med['strace']:6.2f}s ({row['ratio_strace']:4.2f}x)"
                f"  ebpf/strace {row['ebpf_over_strace']:4.2f}  load {row['load_1min']:.1f}",
                flush=True,
            )
    load_after = loadavg()
    summary = {
        "median_ratio_ebpf": statistics.median(r["ratio_ebpf"] for r in rows),
        "median_ratio_strace": statistics.median(r["ratio_strace"] for r in rows),
        "median_ebpf_over_strace": statistics.median(r["ebpf_over_strace"] for r in rows),
    }
    print(
        f"\nmedian ratio against bare: ebpf {summary['median_ratio_ebpf']:.2f}x, strace"
        f" {summary['median_ratio_strace']:.2f}x; ebpf/strace {summary['median_ebpf_over_strace']:.2f}"
    )
    print(f"load average after: {load_after} (a shared machine: other work ran beside every side alike)")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "rows": rows,
                    "summary": summary,
                    "startup": start,
                    "load_before": load_before,
                    "load_after": load_after,
                    "repeat": repeat,
                    "cores": os.cpu_count(),
                },
                indent=2,
            )  # fmt: skip
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
