"""The run's fixed cost outside the package's processes: set-up before the first phase, the
phases, and teardown after the last, with the subprocesses osptrack itself spawns around them.

Each sample is one in-process `osptrack.run.analyze()` in a fresh worker process, after one
warm-up analyze in that process (so imports, the CA and the seccomp filter are not counted, as
in a batch worker). The worker times, by wrapping them in memory:

- `setup`: analyze() start to the first phase's spawn; `teardown`: the last phase's return to
  analyze()'s return; each phase's wall time (run.json);
- `FakeNetwork.start`/`close` and `Workspace.__enter__`/`__exit__`;
- every subprocess osptrack spawns outside a phase (`spawns`, by program name).

Sides are source trees (`new` is this checkout; `--src base=/path/to/other/src` adds one, e.g. a
worktree of main), alternated round by round in rotating order; medians per side.

    .venv/bin/python benchmarks/setup_cost.py [--repeat 7 | --quick] [--names left-pad,six] \
        [--src base=/work/wt/x-base/src] [--json PATH]
    .venv/bin/python benchmarks/setup_cost.py --micro 9 [--repeat 7] [--src base=...]

`--micro N` times the fake network's start/close and the workspace's enter/exit alone (N of
each per worker, medians of the workers' medians), where the run's totals are too noisy.
"""

from __future__ import annotations

import argparse
import collections
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
SRC = HERE.parent / "src"
CORPUS = HERE.parent / ".." / "shared" / "corpus"
TIMED = (
    ("net_start", "osptrack.sandbox.fakenet.core", "FakeNetwork", "start"),
    ("net_close", "osptrack.sandbox.fakenet.core", "FakeNetwork", "close"),
    ("ws_enter", "osptrack.sandbox.runner", "Workspace", "__enter__"),
    ("ws_exit", "osptrack.sandbox.runner", "Workspace", "__exit__"),
)


def worker(archive: Path, eco: str, scratch: Path) -> None:
    """In a fresh process: warm up, then one timed analyze; print its timings as JSON."""
    import importlib

    import osptrack.run as run
    from osptrack.run import AnalyzeOptions, analyze
    from osptrack.target import parse_target

    times: dict[str, float] = collections.defaultdict(float)
    spawns: collections.Counter[str] = collections.Counter()
    state = {"in_phase": False, "first": 0.0, "last_end": 0.0}

    def timed(label: str, fn: Any) -> Any:
        def wrapper(*a: Any, **k: Any) -> Any:
            t = time.monotonic()
            try:
                return fn(*a, **k)
            finally:
                times[label] += time.monotonic() - t

        return wrapper

    for label, module, cls, name in TIMED:
        owner = getattr(importlib.import_module(module), cls)
        setattr(owner, name, timed(label, getattr(owner, name)))
    base_phase = run.run_phase

    def run_phase(*a: Any, **k: Any) -> Any:
        if not state["first"]:
            state["first"] = time.monotonic()
        state["in_phase"] = True
        try:
            return base_phase(*a, **k)
        finally:
            state["in_phase"] = False
            state["last_end"] = time.monotonic()

    run.run_phase = run_phase  # type: ignore[assignment]
    base_child = subprocess.Popen._execute_child  # type: ignore[attr-defined]

    def execute_child(self: Any, args: Any, *a: Any, **k: Any) -> Any:
        if not state["in_phase"]:
            argv = [args] if isinstance(args, (str, bytes)) else list(args)
            spawns[
                " ".join(str(x) for x in argv[:2]) if Path(str(argv[0])).name == "ip" else str(argv[0])
            ] += 1
        return base_child(self, args, *a, **k)

    subprocess.Popen._execute_child = execute_child  # type: ignore[attr-defined]
    ref = parse_target(eco, str(archive))
    options = AnalyzeOptions(timeout_s=300, deps_dirs=(archive.parent,))
    analyze(ref, options, scratch / "warm")
    times.clear()
    spawns.clear()
    state.update(first=0.0, last_end=0.0)
    t0 = time.monotonic()
    outcome = analyze(ref, options, scratch / "run")
    end = time.monotonic()
    if set(outcome.statuses.values()) != {"completed"}:
        raise SystemExit(f"analysis did not complete: {outcome.statuses}")
    info = json.loads((scratch / "run" / "run.json").read_text())
    print(
        json.dumps(
            {
                "total": end - t0,
                "setup": state["first"] - t0,
                "teardown": end - state["last_end"],
                **{f"phase_{p}": i["wall_s"] for p, i in info["phases"].items()},
                **{f"events_{p}": i["events"] for p, i in info["phases"].items()},
                "tracer": sorted({i["tracer"] for i in info["phases"].values()}),
                **times,
                "spawns": sum(spawns.values()),
                "spawned": dict(spawns),
            }
        )
    )


def micro_worker(rounds: int) -> None:
    """In a fresh process: FakeNetwork (with the persona's eth0) start/close and Workspace
    enter/exit, `rounds` times after one warm-up; medians in seconds as JSON."""
    import uuid

    from osptrack.sandbox.fakenet import FakeNetwork
    from osptrack.sandbox.limits import Limits
    from osptrack.sandbox.netns import Eth0
    from osptrack.sandbox.runner import Workspace

    nic = Eth0("3c:21:9c:12:34:56", "192.168.1.42/24", "192.168.1.1")
    times: dict[str, list[float]] = collections.defaultdict(list)
    for i in range(rounds + 1):
        t0 = time.monotonic()
        net = FakeNetwork(run_id=f"bench-{uuid.uuid4().hex[:10]}", eth0=nic)
        net.start()
        t1 = time.monotonic()
        net.close()
        t2 = time.monotonic()
        ws = Workspace(Limits())
        ws.__enter__()
        (ws.logs / "install.strace").write_bytes(b"x" * (1 << 20))  # a small trace log
        t3 = time.monotonic()
        ws.__exit__(None, None, None)
        t4 = time.monotonic()
        getattr(ws, "wait_removed", lambda: None)()
        if i:
            for key, took in (("net_start", t1 - t0), ("net_close", t2 - t1), ("ws_enter", t3 - t2)):
                times[key].append(took)
            times["ws_exit"].append(t4 - t3)
    print(json.dumps({k: statistics.median(v) for k, v in times.items()}))


def sample(side: str, src: Path, entry: dict[str, Any]) -> dict[str, Any]:
    scratch = Path(tempfile.mkdtemp(prefix="osptrack-setup-cost-"))
    try:
        proc = subprocess.run(
            [
                sys.executable,
                __file__,
                "--worker",
                str(CORPUS / entry["archive"]),
                entry["ecosystem"],
                str(scratch),
            ],
            env={**os.environ, "PYTHONPATH": str(src)},
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if proc.returncode != 0:
        raise SystemExit(f"{side}: worker failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def micro(sides: list[str], srcs: dict[str, Path], repeat: int, n: int) -> None:
    runs: dict[str, list[dict[str, float]]] = {s: [] for s in sides}
    for i in range(repeat):
        k = i % len(sides)
        for side in sides[k:] + sides[:k]:
            proc = subprocess.run(
                [sys.executable, __file__, "--micro-worker", str(n)],
                env={**os.environ, "PYTHONPATH": str(srcs[side])},
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            if proc.returncode != 0:
                raise SystemExit(f"{side}: micro worker failed:\n{proc.stderr[-2000:]}")
            runs[side].append(json.loads(proc.stdout.strip().splitlines()[-1]))
    for side, rs in runs.items():
        med = {k: statistics.median(r[k] for r in rs) for k in rs[0]}
        print(f"{side:6} ms: " + "  ".join(f"{k} {v * 1000:.1f}" for k, v in med.items()), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="3 rounds")
    parser.add_argument("--names", default="left-pad,six")
    parser.add_argument("--src", action="append", default=[], metavar="LABEL=PATH")
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--micro",
        type=int,
        metavar="N",
        help="instead: FakeNetwork start/close and Workspace enter/exit alone, N per worker, per round",
    )
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--micro-worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(Path(args.worker[0]), args.worker[1], Path(args.worker[2]))
        return
    if args.micro_worker:
        micro_worker(args.micro_worker)
        return
    manifest = CORPUS / "manifest.json"
    if not manifest.exists():
        print(f"skipped: the shared corpus is absent ({manifest.resolve()} not found)")
        return
    repeat = 3 if args.quick else args.repeat
    srcs = {"new": SRC, **{lbl: Path(p).resolve() for lbl, _, p in (s.partition("=") for s in args.src)}}
    missing = [str(p) for p in srcs.values() if not (p / "osptrack").is_dir()]
    if missing:
        raise SystemExit(
            f"setup_cost.py: error: not a source tree (no osptrack/ in it): {', '.join(missing)}"
        )
    sides = list(srcs)
    print(f"load average before: {os.getloadavg()} (2 cores, shared); times in ms", flush=True)
    if args.micro:
        micro(sides, srcs, repeat, args.micro)
        print(f"load average after: {os.getloadavg()}")
        return
    entries = [e for e in json.loads(manifest.read_text())["packages"] if e["name"] in args.names.split(",")]
    report: dict[str, Any] = {"load_before": os.getloadavg(), "packages": {}}
    for entry in entries:
        runs: dict[str, list[dict[str, Any]]] = {s: [] for s in sides}
        for i in range(repeat):
            k = i % len(sides)
            for side in sides[k:] + sides[:k]:
                runs[side].append(sample(side, srcs[side], entry))
        report["packages"][entry["name"]] = runs
        for side, rs in runs.items():
            keys = [k for k in rs[0] if k not in ("spawned", "tracer")]
            med = {k: statistics.median(r[k] for r in rs) for k in keys}
            cols = "  ".join(
                f"{k} {v:.0f}" if k == "spawns" or k.startswith("events") else f"{k} {v * 1000:.0f}"
                for k, v in med.items()
            )
            print(f"{entry['name']:9} {side:6} ms: {cols}", flush=True)
            tracers = sorted({t for r in rs for t in r["tracer"]})
            print(
                f"{'':9} {side:6} spawned outside phases: {rs[-1]['spawned']}; tracer {tracers}", flush=True
            )
    report["load_after"] = os.getloadavg()
    print(f"load average after: {os.getloadavg()}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
