"""What holding the low-wake-latency request (osptrack.sandbox.wakeup) buys, side by side.

Per corpus package and round, sides rotated every round (overhead.rotated_samples):

- bare / bare-held: overhead.py's bare install + import on tmpfs, without and with the request
  held around it (whether the machine itself, not osptrack, is what gets faster);
- held / off: one in-process `analyze()` per tracer of --tracers, as shipped and with
  OSPTRACK_LOW_LATENCY=0.

Prints the medians, each side's ratio to bare, and the load average before and after.

    .venv/bin/python benchmarks/wakeup.py [--repeat 5] [--names six,left-pad] [--tracers strace,ebpf]

`--micro`: the mechanism alone: a Python loop of N opens, bare and under strace (seccomp-bpf,
one traced syscall), each with and without the request; prints the medians and the cost per
traced call.

    .venv/bin/python benchmarks/wakeup.py --micro [--repeat 9] [--opens 2000]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import overhead  # noqa: E402  (the bare side, the corpus, the tmpfs, timed_analyze)

from osptrack.sandbox import wakeup  # noqa: E402


@contextlib.contextmanager
def request(hold: bool) -> Iterator[None]:
    """The request held (or explicitly not) for the block, whatever the environment says."""
    with mock.patch.dict(os.environ, {wakeup.OFF_ENV: "1" if hold else "0"}):
        if not hold:
            yield
            return
        with wakeup.held() as state:
            if state != "held":
                raise SystemExit(f"the request cannot be held here: {state}")
            yield


def _timed(argv: list[str]) -> float:
    t0 = time.monotonic()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - t0


def micro(repeat: int, opens: int) -> None:
    loop = f"import os\nfor _ in range({opens}):\n    os.close(os.open('/etc/hostname', os.O_RDONLY))"
    workload = ["/usr/bin/python3", "-S", "-c", loop]
    with tempfile.TemporaryDirectory() as tmp:
        strace = ["strace", "-f", "--seccomp-bpf", "-ttt", "-e", "trace=openat", "-o", f"{tmp}/log", "--"]
        sides: dict[str, tuple[list[str], bool]] = {
            "bare": (workload, False),
            "bare-held": (workload, True),
            "strace": (strace + workload, False),
            "strace-held": (strace + workload, True),
        }
        samples: dict[str, list[float]] = {name: [] for name in sides}
        names = list(sides)
        for i in range(repeat):
            for name in names[i % len(names) :] + names[: i % len(names)]:
                argv, hold = sides[name]
                with request(hold):
                    samples[name].append(_timed(argv))
    med = {name: statistics.median(v) for name, v in samples.items()}
    for name, value in med.items():
        print(f"{name:12} {value * 1000:8.1f} ms")
    for hold in ("", "-held"):
        per_call = (med["strace" + hold] - med["bare" + hold]) / opens * 1e6
        print(f"strace{hold or ' (free)'}: {per_call:.0f} us per traced call over bare{hold}")


def packages(repeat: int, names: list[str] | None, tracers: list[str]) -> dict[str, Any]:
    entries = json.loads((overhead.CORPUS / "manifest.json").read_text())["packages"]
    if names:
        entries = [e for e in entries if e["name"] in names]

    def with_request(run: Callable[[dict[str, Any], Path], float], hold: bool) -> Callable[..., float]:
        def side(entry: dict[str, Any], scratch: Path) -> float:
            with request(hold):
                return run(entry, scratch)

        return side

    def analyzed(tracer: str) -> Callable[[dict[str, Any], Path], float]:
        return lambda entry, scratch: overhead.timed_analyze(entry, scratch, tracer=tracer)

    runs: dict[str, Callable[[dict[str, Any], Path], float]] = {
        "bare": overhead.bare,
        "bare-held": with_request(overhead.bare, True),
    }
    for tracer in tracers:
        runs[f"{tracer}-held"] = with_request(analyzed(tracer), True)
        runs[f"{tracer}-off"] = with_request(analyzed(tracer), False)
    report: dict[str, Any] = {"load_before": overhead.loadavg(), "packages": {}}
    with overhead.tmpfs_root() as fast:
        overhead.fresh_bytecode()
        first = entries[0]
        with tempfile.TemporaryDirectory() as warm:  # one-time costs (imports, caches) out of the figures
            overhead.timed_analyze(first, Path(warm), tracer=tracers[0])
        for entry in entries:
            samples = overhead.rotated_samples(entry, runs, repeat, fast)
            med = {side: statistics.median(v) for side, v in samples.items()}
            report["packages"][entry["name"]] = {"medians": med, "samples": samples}
            cells = "  ".join(f"{side} {value:.3f}" for side, value in med.items())
            ratios = "  ".join(f"{side} {med[side] / med['bare']:.2f}x" for side in med if side != "bare")
            print(f"{entry['ecosystem']} {entry['name']}: {cells}\n    {ratios}", flush=True)
    sides = [side for side in runs if side != "bare"]
    print("median ratio to bare over the packages:")
    for side in sides:
        ratio = statistics.median(
            p["medians"][side] / p["medians"]["bare"] for p in report["packages"].values()
        )
        print(f"  {side:12} {ratio:.2f}x")
    report["load_after"] = overhead.loadavg()
    print(f"load average before {report['load_before']}, after {report['load_after']}")
    return report


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--names", help="comma-separated corpus names (default: all)")
    parser.add_argument("--tracers", default="strace,ebpf")
    parser.add_argument("--micro", action="store_true")
    parser.add_argument("--opens", type=int, default=2000)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root (the sandbox, and the request's device)", file=sys.stderr)
        return 2
    if args.micro:
        print(f"load average before {overhead.loadavg()}")
        micro(args.repeat, args.opens)
        print(f"load average after {overhead.loadavg()}")
        return 0
    if not (overhead.CORPUS / "manifest.json").is_file():
        print("skipped: the shared corpus is absent (../shared holds it)")
        return 0
    packages(args.repeat, args.names.split(",") if args.names else None, args.tracers.split(","))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
