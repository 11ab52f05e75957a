"""Digesting a phase's trace while the phase runs (AnalyzeOptions.follow_trace) against reading it
after the phase, in-process, alternating the two sides round by round.

Per package and side, medians over --repeat rounds of:
- total: the in-process `analyze()` wall time;
- install_s: the install phase's own wall time (run.json `phases.install.wall_s`): the digest
  thread shares the GIL with the registry service and fake network, which serve the sandbox;
- tail_ms: per phase, from run_phase's return (the tracer has exited) to the phase's digest done:
  what is left after the phase. Summed over the phases.

A side may run another source tree (`--src NAME=PATH`, the tree's `src` folder, e.g. a worktree
of main before this change): it runs in a fresh interpreter with that tree first on sys.path.
Sides `follow` and `after-phase` are this tree with follow_trace on and off.

    .venv/bin/python benchmarks/follow.py [--names left-pad,six,lodash] [--repeat 5 | --quick]
        [--tracer ebpf|strace] [--src base=/work/wt/overlap-base/src] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

CORPUS = Path(__file__).resolve().parents[1] / ".." / "shared" / "corpus"

# Runs in a child interpreter (its own sys.path): one analyze(), timings on stdout as JSON.
CHILD = r"""
import json, sys, time
from pathlib import Path
import osptrack.run as run
from osptrack.digest import RunDigest
from osptrack.target import parse_target

archive, eco, out, tracer, follow = sys.argv[1:6]
returned, digested = {}, {}
orig_run_phase, orig_phase = run.run_phase, RunDigest.phase

def run_phase(name, *a, **k):
    try:
        return orig_run_phase(name, *a, **k)
    finally:
        returned[name] = time.monotonic()

def phase(self, name, *a, **k):
    try:
        return orig_phase(self, name, *a, **k)
    finally:
        digested[name] = time.monotonic()

run.run_phase, RunDigest.phase = run_phase, phase
options = {"tracer": tracer, "timeout_s": 300, "deps_dirs": (Path(archive).parent,)}
if follow != "-":
    options["follow_trace"] = follow == "1"
t0 = time.monotonic()
outcome = run.analyze(parse_target(eco, archive), run.AnalyzeOptions(**options), Path(out))
total = time.monotonic() - t0
if set(outcome.statuses.values()) != {"completed"}:
    raise SystemExit(f"did not complete: {outcome.statuses}")
info = json.loads((Path(out) / "run.json").read_text())
tail = {p: max(0.0, digested[p] - returned[p]) for p in returned}
print(json.dumps({"total": total, "install_s": info["phases"]["install"]["wall_s"],
                  "tail_ms": 1000 * sum(tail.values()), "tails": tail}))
"""


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def one(side: str, src: Path, entry: dict[str, Any], tracer: str) -> dict[str, Any]:
    follow = {"follow": "1", "after-phase": "0"}.get(side, "-")
    archive = CORPUS / entry["archive"]
    scratch = Path(tempfile.mkdtemp(prefix="osptrack-follow-"))
    try:
        env = {**os.environ, "PYTHONPATH": str(src)}
        argv = [
            sys.executable,
            "-c",
            CHILD,
            str(archive),
            entry["ecosystem"],
            str(scratch / "run"),
            tracer,
            follow,
        ]
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False, timeout=900)
        if proc.returncode != 0:
            raise SystemExit(f"{side} {entry['name']}: {proc.stderr[-600:]}")
        return json.loads(proc.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--names", default="left-pad,six,lodash")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="2 rounds")
    parser.add_argument("--tracer", default="ebpf", choices=["ebpf", "strace"])
    parser.add_argument(
        "--src", action="append", default=[], help="NAME=PATH: a side run from another src tree"
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    here = Path(__file__).resolve().parents[1] / "src"
    sides: dict[str, Path] = {"follow": here, "after-phase": here}
    for spec in args.src:
        name, _, path = spec.partition("=")
        sides[name] = Path(path)
    repeat = 2 if args.quick else args.repeat
    manifest = json.loads((CORPUS / "manifest.json").read_text())
    entries = {e["name"]: e for e in manifest["packages"]}
    report: dict[str, Any] = {
        "load_before": loadavg(),
        "tracer": args.tracer,
        "repeat": repeat,
        "packages": {},
    }
    names = list(sides)
    for name in args.names.split(","):
        samples: dict[str, list[dict[str, Any]]] = {s: [] for s in names}
        for i in range(repeat):
            k = i % len(names)
            for side in names[k:] + names[:k]:  # each side first in turn
                samples[side].append(one(side, sides[side], entries[name], args.tracer))
        med = {
            s: {m: statistics.median(x[m] for x in samples[s]) for m in ("total", "install_s", "tail_ms")}
            for s in names
        }
        report["packages"][name] = {"medians": med, "samples": samples}
        for s in names:
            m = med[s]
            print(f"{name:10} {s:12} total {m['total']:6.2f} s  install {m['install_s']:6.2f} s  "
                  f"tail {m['tail_ms']:7.1f} ms")  # fmt: skip
    report["load_after"] = loadavg()
    print(f"load average before {report['load_before']} after {report['load_after']} (2 cores, shared)")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
