"""The analysing process's own CPU per analysis (its main thread, its digest thread, all of it),
this checkout against other source trees, side by side.

A batch worker's host process is CPU the package does not use: on 2 cores every second of it
is throughput that 2 workers lose (docs/performance.md, "The analysing process's own CPU").
cpu_split.py splits one tree's CPU; this compares trees: each side is a worker process that
imports osptrack from its tree (`--src NAME=PATH`, e.g. a `git worktree add --detach` of main;
this checkout is `this`), pays its one-time costs on a first untimed analysis, then analyses
what it is told. Per corpus package and round, every side analyses it once, in an order
rotated round by round, and reports cpu_split.measure_analyze's columns plus its main thread's
exact CPU (time.thread_time around analyze()). Every side traces with this checkout's eBPF
loader (one resident tracer), so only the Python differs.

    .venv/bin/python benchmarks/host_cpu.py --src base=../base/src [--repeat 3] [--names core-js,six]

Prints per-package medians and their sums per side, and the load average before and after.
Needs root and the eBPF loader (bash scripts/setup.sh); the machine is shared: read CPU-seconds.
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
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SHOWN = ("wall", "total", "sandbox", "host", "main", "host digest (follower)")


def worker() -> int:
    """One side: read corpus names on stdin, answer each with a JSON line of CPU figures."""
    sys.path.insert(0, str(HERE))
    import cpu_split
    from overhead import CORPUS, timed_analyze

    from osptrack.trace.ebpf import loader_path

    loader = loader_path()
    if loader is None:
        raise SystemExit("host_cpu.py: no eBPF loader")
    entries = {e["name"]: e for e in json.loads((CORPUS / "manifest.json").read_text())["packages"]}
    cpu_split._patch_threads()
    warm = Path(tempfile.mkdtemp(prefix="osptrack-bench-"))
    try:
        timed_analyze(entries["left-pad"], warm)  # imports, caches, the tracer: not measured
    finally:
        shutil.rmtree(warm, ignore_errors=True)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        scratch = Path(tempfile.mkdtemp(prefix="osptrack-bench-"))
        try:
            t0 = time.thread_time()
            row = cpu_split.measure_analyze(entries[line.strip()], scratch, loader, 0.0)
            row["main"] = time.thread_time() - t0
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        print(json.dumps(row), flush=True)
    return 0


class Side:
    def __init__(self, name: str, src: Path) -> None:
        env = dict(os.environ, PYTHONPATH=str(src), OSPTRACK_EBPF_LOADER=str(_loader()))
        self.name = name
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=HERE.parent,
        )
        self._answer()

    def _answer(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"host_cpu.py: the {self.name} side's worker died (its stderr is above)")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def analyse(self, name: str) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(name + "\n")
        self.proc.stdin.flush()
        return self._answer()

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=60)


def _loader() -> Path:
    from osptrack.trace.ebpf import loader_path

    found = loader_path()
    if found is None:
        raise SystemExit("host_cpu.py: error: needs this tree's eBPF loader (bash scripts/setup.sh)")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--src", action="append", default=[], metavar="NAME=PATH", help="another tree's src")
    parser.add_argument("--repeat", type=int, default=3, help="rounds per package (default 3)")
    parser.add_argument("--names", default="core-js,lodash,simplejson,pycparser,left-pad,six")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker()
    if os.geteuid() != 0:
        print("host_cpu.py: error: needs root (the sandbox and the eBPF tracer)", file=sys.stderr)
        return 2
    sys.path.insert(0, str(HERE))
    from overhead import CORPUS, loadavg

    if not (CORPUS / "manifest.json").is_file():
        print(f"skipped: the shared corpus is absent ({CORPUS.resolve()} not found)")
        return 0
    trees = {"this": HERE.parent / "src"}
    for spec in args.src:
        name, sep, path = spec.partition("=")
        if not sep or not (Path(path) / "osptrack").is_dir():
            print(f"host_cpu.py: error: --src {spec!r} is not NAME=PATH of a src folder", file=sys.stderr)
            return 2
        trees[name] = Path(path).resolve()
    names = args.names.split(",")
    load_before = loadavg()
    print(f"load average before: {load_before}; sides {list(trees)}; {args.repeat} round(s)", flush=True)
    sides = [Side(name, src) for name, src in trees.items()]
    samples: dict[str, dict[str, list[dict[str, Any]]]] = {n: {s.name: [] for s in sides} for n in names}
    try:
        for i in range(args.repeat):
            for name in names:
                k = i % len(sides)
                for side in sides[k:] + sides[:k]:
                    samples[name][side.name].append(side.analyse(name))
                line = " | ".join(
                    f"{s}: main {rows[-1]['main']:.3f} host {rows[-1]['host']:.2f}"
                    for s, rows in samples[name].items()
                )
                print(f"round {i + 1} {name:12} {line} load {loadavg()[0]:.1f}", flush=True)
    finally:
        for side in sides:
            side.close()
    load_after = loadavg()
    print(f"\nmedians per package, CPU seconds ({', '.join(SHOWN)}); sums at the bottom")
    for side in trees:
        print(f"side {side}")
        sums = dict.fromkeys(SHOWN, 0.0)
        for name in names:
            med = {c: statistics.median(r.get(c, 0.0) for r in samples[name][side]) for c in SHOWN}
            for c in SHOWN:
                sums[c] += med[c]
            print(f"  {name:16}" + "".join(f" {med[c]:>9.3f}" for c in SHOWN))
        print(f"  {'sum':16}" + "".join(f" {sums[c]:>9.3f}" for c in SHOWN))
    print(f"load average before {load_before}, after {load_after}")
    if args.json:
        args.json.write_text(json.dumps({"load": [load_before, load_after], "samples": samples}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
