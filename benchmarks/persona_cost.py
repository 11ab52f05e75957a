"""What the workstation persona (and what came with it) costs an analysis, piece by piece.

Each side is one `osptrack.run.analyze` of a shared-corpus PyPI package, run in a fresh worker
process that times analyze() itself (interpreter start-up is not counted). The sides alternate,
round by round, in rotating order; medians per side, and each side's ratio to `bare` (the same
bare install + import as benchmarks/overhead.py):

- `bare`: benchmarks/overhead.py's bare side (host, `nobody`, scratch on /dev/shm's tmpfs);
- `new`: this checkout as it is;
- any other checkout's src, named on the command line (`--src old=../old-c88/src`, e.g. a
  worktree of c88bc41, before the persona);
- toggles of `new` (patched in the worker, so each removes one suspect):
  `no-mount` (no persona dist-packages bind), `no-probes` (probe syscalls not traced),
  `no-persona` (no home seeding / overlay files), `no-conflicts` (pip's post-install conflict
  check, which parses the metadata of every installed distribution, skipped).

    git worktree add ../old-c88 c88bc41   # the checkout before the persona, run read-only
    .venv/bin/python benchmarks/persona_cost.py [--repeat 5] [--names six,click] \
        [--src old=../old-c88/src] [--sides bare,new,old,no-mount,no-probes]
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

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
TOGGLES = ("no-mount", "no-probes", "no-persona", "no-conflicts")


def worker(side: str, archive: Path, out: Path) -> None:
    """In a fresh process: patch the toggle in, analyze once, print the timings as JSON."""
    import osptrack.run as run
    from osptrack.run import AnalyzeOptions, analyze
    from osptrack.target import parse_target

    if side == "no-mount":
        run.persona_binds = lambda: ()  # type: ignore[attr-defined]
    elif side == "no-probes":
        import osptrack.trace.strace as strace

        strace.TRACED_SYSCALLS = tuple(n for n in strace.TRACED_SYSCALLS if n not in strace.PROBE_SYSCALLS)
    elif side == "no-persona":
        run.seed_home = lambda *a, **k: None  # type: ignore[attr-defined]
        run.overlay_files = lambda p: {}  # type: ignore[attr-defined]
    elif side == "no-conflicts":
        from osptrack.ecosystems.pypi import PyPI

        base_command = PyPI.command

        def command(self, phase, layout, online):  # type: ignore[no-untyped-def]
            argv = base_command(self, phase, layout, online)
            return [*argv[:4], "--no-warn-conflicts", *argv[4:]] if phase == "install" and argv else argv

        PyPI.command = command  # type: ignore[method-assign]
    t0 = time.monotonic()
    outcome = analyze(
        parse_target("pypi", str(archive)),
        AnalyzeOptions(timeout_s=300, deps_dirs=(archive.parent,)),
        out,
    )
    took = time.monotonic() - t0
    if set(outcome.statuses.values()) != {"completed"}:
        raise SystemExit(f"{side}: analysis did not complete: {outcome.statuses}")
    info = json.loads((out / "run.json").read_text())
    print(
        json.dumps(
            {
                "total": took,
                **{p: i["wall_s"] for p, i in info["phases"].items()},
                "events": info["trace"]["events"],
            }
        )
    )


def measure(side: str, archive: Path, srcs: dict[str, Path], scratch: Path) -> dict[str, float]:
    if side == "bare":
        sys.path.insert(0, str(HERE))
        from overhead import bare

        entry = {"ecosystem": "pypi", "archive": str(archive), "name": _name(archive)}
        return {"total": bare(entry, scratch)}
    src = srcs.get(side, SRC)
    env = {**os.environ, "PYTHONPATH": str(src)}
    proc = subprocess.run(
        [
            sys.executable,
            __file__,
            "--worker",
            side if side in TOGGLES else "new",
            str(archive),
            str(scratch / "run"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if proc.returncode != 0:
        raise SystemExit(f"{side}: worker failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _name(archive: Path) -> str:
    return archive.parent.name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--names", default="six,click,idna,requests")
    parser.add_argument(
        "--src", action="append", default=[], metavar="LABEL=PATH", help="a side: src/ of another checkout"
    )
    parser.add_argument("--sides", default="bare,new")
    parser.add_argument("--worker", nargs=3, metavar=("SIDE", "ARCHIVE", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], Path(args.worker[1]), Path(args.worker[2]))
        return
    from overhead import CORPUS

    sides = args.sides.split(",")
    srcs = {label: Path(path).resolve() for label, _, path in (s.partition("=") for s in args.src)}
    unknown = set(sides) - {"bare", "new", *TOGGLES, *srcs}
    if unknown:
        raise SystemExit(f"unknown sides: {', '.join(sorted(unknown))}")
    entries = json.loads((CORPUS / "manifest.json").read_text())["packages"]
    names = args.names.split(",")
    chosen = [e for e in entries if e["ecosystem"] == "pypi" and e["name"] in names]
    print(f"load average before: {os.getloadavg()}", flush=True)
    ratios: dict[str, list[float]] = {s: [] for s in sides if s != "bare"}
    for entry in chosen:
        archive = (CORPUS / entry["archive"]).resolve()
        runs: dict[str, list[dict[str, float]]] = {s: [] for s in sides}
        for i in range(args.repeat):
            order = sides[i % len(sides) :] + sides[: i % len(sides)]  # rotate: drift hits every side
            for side in order:
                # bare on tmpfs, as osptrack's sandbox writes to tmpfs (benchmarks/overhead.py)
                shm = "/dev/shm" if side == "bare" and Path("/dev/shm").is_dir() else None
                scratch = Path(tempfile.mkdtemp(prefix="osptrack-persona-cost-", dir=shm))
                try:
                    runs[side].append(measure(side, archive, srcs, scratch))
                finally:
                    shutil.rmtree(scratch, ignore_errors=True)
        base = statistics.median(r["total"] for r in runs["bare"]) if "bare" in runs else None
        for side, rs in runs.items():
            med = {k: statistics.median(r[k] for r in rs) for k in rs[0]}
            ratio = f"  ratio {med['total'] / base:5.2f}" if base else ""
            if base and side != "bare":
                ratios[side].append(med["total"] / base)
            phases = "  ".join(f"{k} {v:.3f}" for k, v in med.items() if k not in ("total", "events"))
            events = f"  events {med['events']:.0f}" if "events" in med else ""
            print(
                f"{entry['name']:10} {side:10} total {med['total']:6.3f}s{ratio}  {phases}{events}",
                flush=True,
            )
    if "bare" in sides:
        print()
        for side, rs in ratios.items():
            print(f"median ratio {side:10}: {statistics.median(rs):.2f}  (n={len(rs)}, repeat={args.repeat})")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
