"""Where an in-process `analyze()` spends its time against a bare install + import, phase by phase.

Per package, --repeat rounds; each round runs the bare install and import (timed apart, as
`benchmarks/overhead.py`'s bare side runs them: same archives, flags, tmpfs) and one in-process
`analyze()` per source tree, in an order rotated from round to round. Each source tree has one
persistent worker process (PYTHONPATH=its src), warmed up by one analyze of the package, so the
sides differ only by their code. Per side and phase it reports, from the phase's own trace
(timestamps of the kernel's or strace's records, against the moment the phase was spawned):

- launch: spawn -> the tracer's child runs (Python's fork/exec, the tracer's client);
- to-bwrap: -> bwrap's exec; bwrap: -> the init's exec (namespaces, mounts, seccomp);
- init: -> the command's exec; command: -> the init's exit; after: -> run_phase returns;

and the run's set-up (analyze() -> first spawn), between (phase end -> next spawn) and teardown
(last phase -> analyze() returns). Under `OSPTRACK_TRACER=strace`, also **set-up calls**: the
traced calls bwrap makes before it execs the sandbox's init (each one two ptrace stops; the
mount layout's binds are most of them). Medians; the load average before and after.

    .venv/bin/python benchmarks/phase_cost.py [--repeat 5 | --quick] [--names left-pad,six] \
        [--src base=/path/to/other/checkout/src] [--json PATH]
    .venv/bin/python benchmarks/phase_cost.py --spawn 20 [--names left-pad]

`--spawn N` instead times a no-op phase (`/bin/true`) N rounds, inside one warm analyze of the
first package (its install phase's sandbox, network and tracer), with the launcher built or not
(vfork+exec against a preexec_fn's fork) and the C or the Python init, the four alternated.
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
SRC = HERE.parent / "src"
CORPUS = HERE.parent / ".." / "shared" / "corpus"
DEFAULT_NAMES = "left-pad,debug,chalk,six,attrs,requests"
STEPS = ("launch", "to-bwrap", "bwrap", "init", "command", "after")


def _marks(events: list[Any], started: float, wall: float) -> dict[str, float]:
    """The phase's steps (seconds) from its raw trace; a step that cannot be told is absent."""
    t: dict[str, float] = {}
    init_pid = None
    for e in events:
        t.setdefault("launch", e.t - started)
        if e.op == "exec" and e.ok:
            argv = " ".join(e.argv or [])
            if "bwrap" not in t and (e.path or "").endswith("/bwrap"):
                t["bwrap"] = e.t - started
            elif "init" not in t and "_sandbox_init" in argv:
                t["init"], init_pid = e.t - started, e.pid
            elif init_pid is not None and "command" not in t and e.pid != init_pid:
                t["command"] = e.t - started
        if e.op == "exit" and init_pid is not None and e.pid == init_pid:
            t["init_exit"] = e.t - started
    if not {"launch", "bwrap", "init", "command", "init_exit"} <= set(t):
        return {}
    return {
        "launch": t["launch"],
        "to-bwrap": t["bwrap"] - t["launch"],
        "bwrap": t["init"] - t["bwrap"],
        "init": t["command"] - t["init"],
        "command": t["init_exit"] - t["command"],
        "after": wall - t["init_exit"],
    }


def setup_calls(log: Path) -> int | None:
    """Traced calls in a strace log between bwrap's execve and the init's (None: not told)."""
    calls = 0
    with open(log, encoding="latin-1") as fh:
        for i, line in enumerate(fh):
            if i == 0:
                if "bwrap" not in line:
                    return None
                continue
            if "execve(" in line and "_sandbox_init" in line:
                return calls
            if "resumed>" not in line and "+++" not in line and "---" not in line:
                calls += 1
    return None


def spawn_worker(archive: Path, eco: str, rounds: int) -> None:
    """In a fresh process: one analyze whose install phase first runs the no-op variants."""
    import dataclasses

    import osptrack.run as run
    from osptrack.run import AnalyzeOptions, analyze
    from osptrack.sandbox import native
    from osptrack.target import parse_target
    from osptrack.trace.tracers import choose

    options = AnalyzeOptions(timeout_s=300, deps_dirs=(archive.parent,))
    tracer = choose(options.tracer).tracer
    base_phase = run.run_phase
    samples: dict[str, list[dict[str, float]]] = {}
    launcher = os.environ.get("OSPTRACK_LAUNCH_BINARY")

    def set_launcher(built: bool) -> None:  # native.launch_path() reads the variable at each phase
        if not built:
            os.environ["OSPTRACK_LAUNCH_BINARY"] = ""
        elif launcher is None:
            os.environ.pop("OSPTRACK_LAUNCH_BINARY", None)
        else:
            os.environ["OSPTRACK_LAUNCH_BINARY"] = launcher

    def run_phase(name: str, spec: Any, ws: Any, command: Any, trace: Any, *rest: Any) -> Any:
        if name == "install" and not samples:
            python_init = dataclasses.replace(spec, init=native.PYTHON_INIT)
            variants = {
                "launcher + C init": (True, spec),
                "launcher + Python init": (True, python_init),
                "preexec fork + C init": (False, spec),
                "preexec fork + Python init": (False, python_init),
            }
            limits, enter, run_id = rest[0], rest[1], rest[2]
            fd = rest[4] if len(rest) > 4 else None
            for i in range(rounds + 1):
                order = list(variants)[i % 4 :] + list(variants)[: i % 4]
                for label in order:
                    built, sp = variants[label]
                    set_launcher(built)
                    t0 = time.monotonic()
                    out = base_phase(
                        f"noop{i}", sp, ws, ["/bin/true"], trace, limits, enter, run_id, None, fd
                    )
                    wall = time.monotonic() - t0
                    if out.exit_code != 0:
                        raise SystemExit(f"{label}: {out.stderr[-300:]!r}")
                    if i == 0:
                        continue  # warm-up round
                    events = list(tracer.parse(out.trace_log, "noop", stats=tracer.new_stats()))
                    marks = _marks(events, out.started, out.wall_s)
                    samples.setdefault(label, []).append({"wall": wall, **marks})
            set_launcher(True)
        return base_phase(name, spec, ws, command, trace, *rest)

    run.run_phase = run_phase  # type: ignore[assignment]
    scratch = Path(tempfile.mkdtemp(prefix="osptrack-phase-cost-"))
    try:
        analyze(parse_target(eco, str(archive)), options, scratch / "run")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(json.dumps(samples))


def worker(archive: Path, eco: str) -> None:
    """A persistent side: warm up, then one timed analyze per line read on stdin."""
    import osptrack.run as run
    from osptrack.run import AnalyzeOptions, analyze
    from osptrack.target import parse_target
    from osptrack.trace.tracers import choose

    base_phase = run.run_phase
    state: dict[str, Any] = {}

    def run_phase(name: str, *a: Any, **k: Any) -> Any:
        state["spawns"].append(time.monotonic())
        outcome = base_phase(name, *a, **k)
        state["ends"].append(time.monotonic())
        kept = state["scratch"] / f"{name}.log"
        shutil.copyfile(outcome.trace_log, kept)  # parsed after analyze(), outside its time
        state["phases"].append((name, kept, outcome.started, outcome.wall_s))
        return outcome

    run.run_phase = run_phase  # type: ignore[assignment]
    ref = parse_target(eco, str(archive))
    options = AnalyzeOptions(timeout_s=300, deps_dirs=(archive.parent,))
    tracer = choose(options.tracer).tracer
    for line in sys.stdin:
        scratch = Path(tempfile.mkdtemp(prefix="osptrack-phase-cost-"))
        state.update(spawns=[], ends=[], phases=[], scratch=scratch)
        try:
            t0 = time.monotonic()
            outcome = analyze(ref, options, scratch / "run")
            end = time.monotonic()
            if set(outcome.statuses.values()) != {"completed"}:
                raise SystemExit(f"analysis did not complete: {outcome.statuses}")
            sample: dict[str, Any] = {
                "total": end - t0,
                "setup": state["spawns"][0] - t0,
                "between": sum(s - e for s, e in zip(state["spawns"][1:], state["ends"], strict=False)),
                "teardown": end - state["ends"][-1],
                "tracer": tracer.name,
            }
            for name, log, started, wall in state["phases"]:
                events = list(tracer.parse(log, name, stats=tracer.new_stats()))
                sample[f"{name}.wall"] = wall
                sample.update({f"{name}.{k}": v for k, v in _marks(events, started, wall).items()})
                if tracer.name == "strace" and (calls := setup_calls(log)) is not None:
                    sample[f"{name}.setup-calls"] = calls
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        if line.strip() == "warm":
            sample = {"warm": True}
        print(json.dumps(sample), flush=True)


class Side:
    def __init__(self, label: str, src: Path, entry: dict[str, Any]) -> None:
        self.label = label
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--worker", str(CORPUS / entry["archive"]), entry["ecosystem"]],
            env={**os.environ, "PYTHONPATH": str(src)},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.ask("warm")

    def ask(self, what: str = "run") -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(what + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"{self.label}: worker failed (exit {self.proc.wait()})")
        return dict(json.loads(line))

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def bare_steps(entry: dict[str, Any], fast: Path) -> dict[str, float]:
    """overhead.py's bare side, with the install and the import timed apart."""
    import overhead

    times: list[float] = []
    base = overhead._run

    def timed(cmd: list[str], env: dict[str, str], cwd: Path) -> None:
        t = time.monotonic()
        base(cmd, env, cwd)
        times.append(time.monotonic() - t)

    overhead._run = timed  # type: ignore[assignment]
    scratch = Path(tempfile.mkdtemp(prefix="osptrack-bench-", dir=fast))
    try:
        total = overhead.bare(entry, scratch)
    finally:
        overhead._run = base  # type: ignore[assignment]
        shutil.rmtree(scratch, ignore_errors=True)
    return {"total": total, "install": times[0], "import": times[1]}


def spawn(entry: dict[str, Any], rounds: int, json_out: Path | None) -> None:
    load_before = os.getloadavg()
    print(f"load average before: {load_before} ({os.cpu_count()} cores, shared); a no-op phase, "
          f"{rounds} rounds in {entry['name']}'s install sandbox; ms, medians", flush=True)  # fmt: skip
    proc = subprocess.run(
        [
            sys.executable,
            __file__,
            "--spawn-worker",
            str(CORPUS / entry["archive"]),
            entry["ecosystem"],
            str(rounds),
        ],
        env={**os.environ, "PYTHONPATH": str(SRC)},
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"spawn worker failed:\n{proc.stderr[-2000:]}")
    samples = json.loads(proc.stdout.strip().splitlines()[-1])
    for label, rs in samples.items():
        steps = "  ".join(f"{k} {v * 1000:.1f}" for k in STEPS if (v := _med(rs, k)) is not None)
        print(f"{label:28} wall {(_med(rs, 'wall') or 0) * 1000:6.1f}: {steps}")
    load_after = os.getloadavg()
    print(f"load average after: {load_after}")
    if json_out:
        json_out.write_text(
            json.dumps({"load_before": load_before, "load_after": load_after, "samples": samples})
        )


def _med(samples: list[dict[str, Any]], key: str) -> float | None:
    values = [s[key] for s in samples if key in s]
    return statistics.median(values) if values else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="2 rounds")
    parser.add_argument("--names", default=DEFAULT_NAMES)
    parser.add_argument("--src", action="append", default=[], metavar="LABEL=PATH")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--spawn", type=int, metavar="N", help="instead: a no-op phase's variants, N rounds")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--spawn-worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(Path(args.worker[0]), args.worker[1])
        return
    if args.spawn_worker:
        spawn_worker(Path(args.spawn_worker[0]), args.spawn_worker[1], int(args.spawn_worker[2]))
        return
    manifest = CORPUS / "manifest.json"
    if not manifest.exists():
        print(f"skipped: the shared corpus is absent ({manifest.resolve()} not found)")
        return
    sys.path.insert(0, str(HERE))
    sys.path.insert(0, str(SRC))
    import overhead

    repeat = 2 if args.quick else args.repeat
    srcs = {"new": SRC, **{lbl: Path(p).resolve() for lbl, _, p in (s.partition("=") for s in args.src)}}
    missing = [str(p) for p in srcs.values() if not (p / "osptrack").is_dir()]
    if missing:
        print(
            f"phase_cost.py: error: not a source tree (no osptrack/ in it): {', '.join(missing)}",
            file=sys.stderr,
        )
        raise SystemExit(2)
    wanted = args.names.split(",")
    entries = [e for e in json.loads(manifest.read_text())["packages"] if e["name"] in wanted]
    unknown = sorted(set(wanted) - {e["name"] for e in entries})
    if unknown:
        print(f"phase_cost.py: error: not in the corpus: {', '.join(unknown)}", file=sys.stderr)
        raise SystemExit(2)
    overhead.fresh_bytecode()
    if args.spawn:
        spawn(entries[0], args.spawn, args.json)
        return
    report: dict[str, Any] = {"load_before": os.getloadavg(), "packages": {}}
    print(
        f"load average before: {report['load_before']} ({os.cpu_count()} cores, shared); ms, medians of {repeat}"
    )
    ratios: dict[str, list[float]] = {s: [] for s in srcs}
    with overhead.tmpfs_root() as fast:
        for entry in entries:
            sides = {label: Side(label, src, entry) for label, src in srcs.items()}
            order = ["bare", *sides]
            runs: dict[str, list[dict[str, Any]]] = {s: [] for s in order}
            try:
                for i in range(repeat):
                    k = i % len(order)
                    for side in order[k:] + order[:k]:
                        runs[side].append(bare_steps(entry, fast) if side == "bare" else sides[side].ask())
            finally:
                for s in sides.values():
                    s.close()
            report["packages"][entry["name"]] = runs
            bare = {k: _med(runs["bare"], k) or 0.0 for k in ("total", "install", "import")}
            print(f"{entry['ecosystem']} {entry['name']}: bare {bare['total'] * 1000:.0f} "
                  f"(install {bare['install'] * 1000:.0f}, import {bare['import'] * 1000:.0f})", flush=True)  # fmt: skip
            for label in sides:
                rs = runs[label]
                total = _med(rs, "total") or 0.0
                ratios[label].append(total / bare["total"])
                head = "  ".join(
                    f"{k} {(_med(rs, k) or 0) * 1000:.0f}" for k in ("total", "setup", "between", "teardown")
                )
                print(f"  {label:6} {head}  ratio {total / bare['total']:.2f}x  ({rs[0]['tracer']})")
                for phase in ("install", "import"):
                    steps = "  ".join(
                        f"{k} {v * 1000:.0f}" for k in STEPS if (v := _med(rs, f"{phase}.{k}")) is not None
                    )
                    wall = (_med(rs, f"{phase}.wall") or 0) * 1000
                    calls = _med(rs, f"{phase}.setup-calls")
                    steps += "" if calls is None else f"  set-up calls {calls:.0f}"
                    print(
                        f"  {label:6} {phase:7} {wall:.0f} (bare {bare[phase] * 1000:.0f}): {steps}",
                        flush=True,
                    )
    for label, rs in ratios.items():
        print(f"median ratio, {label}: {statistics.median(rs):.2f}x over {len(rs)} package(s)")
    report["load_after"] = os.getloadavg()
    print(f"load average after: {report['load_after']}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
