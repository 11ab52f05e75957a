"""What `osptrack analyze` still spends after analyze() returns: the verdict, the summary table
or JSON, rich, and the interpreter's exit.

    .venv/bin/python benchmarks/cli_after_analyze.py [--repeat 7 | --quick] [--src old=PATH] [--profile]

Each sample is a real `osptrack analyze pypi six-1.16.0...whl --format table|json` in a fresh
process, run as the console script runs it (osptrack.entry.run, or main where a checkout has no
run), with osptrack.run.analyze wrapped to write the
CLOCK_MONOTONIC time at which it returned; the figure is the parent's clock when the process has
exited minus that mark, split at the return of main() into what the CLI does (verdict, summary,
rich) and the interpreter's exit (threads joined, atexit, module teardown). Also, per sample, exec
-> the call of analyze(): interpreter, imports (osptrack.run first, as the worker wraps it) and
the CLI framework's parsing; the difference between sides is the CLI's. Sides: this checkout (`new`) and any `--src NAME=PATH` (another
checkout's src on PYTHONPATH, e.g. a worktree of main), alternated in a rotating order every
round; medians, and the load average before and after. `--profile` prints, once per side and
format, the functions that took the most cumulative time after the return (cProfile).

Needs root (the sandbox) and the shared corpus (../shared).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SIX = REPO / ".." / "shared" / "corpus" / "pypi" / "six" / "six-1.16.0-py2.py3-none-any.whl"
FORMATS = ("table", "json")


def worker(fmt: str, out: str, mark: str, profile: bool) -> None:
    """In the fresh process: the CLI's main() on a real analyze, with the call and return of
    analyze() and the return of main() marked."""
    import osptrack.run as run

    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
    analyze = run.analyze

    def marked(*args, **kwargs):  # type: ignore[no-untyped-def]
        called = time.monotonic()
        outcome = analyze(*args, **kwargs)
        Path(mark).write_text(f"{called}\n{time.monotonic()}\n")
        if profiler is not None:
            profiler.enable()
        return outcome

    run.analyze = marked  # type: ignore[assignment]  # the command imports it from osptrack.run when it runs
    sys.argv = ["osptrack", "analyze", "pypi", str(SIX), "--deps-dir", str(SIX.parent), "--out", out]
    sys.argv += ["--format", fmt]
    import osptrack.cli
    import osptrack.entry as entry

    cli_main = osptrack.cli.main

    def main_marked() -> None:  # osptrack.entry.main calls osptrack.cli.main, looked up when it runs
        try:
            cli_main()
        finally:
            sys.stdout.flush()
            with open(mark, "a") as f:  # main() returned: the rest is the process's exit
                f.write(f"{time.monotonic()}\n")
            if profiler is not None:
                import pstats

                profiler.disable()
                stats = pstats.Stats(profiler, stream=sys.stderr)
                stats.sort_stats("cumulative").print_stats(25)

    osptrack.cli.main = main_marked  # type: ignore[assignment]
    # As the console script: entry.run where the checkout has it (main, then the exit), else main.
    run_script = getattr(entry, "run", None)
    if run_script is not None:
        run_script()
    sys.exit(entry.main())


def sample(
    src: Path | None, fmt: str, scratch: Path, profile: bool = False
) -> tuple[float, float, float, str]:
    """(analyze() return -> main() return, main() return -> process exit, exec -> analyze() called),
    seconds; the worker's stderr."""
    mark = scratch / "mark"
    mark.unlink(missing_ok=True)
    out = scratch / f"run-{fmt}"
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(src)
    argv = [sys.executable, __file__, "--worker", fmt, str(out), str(mark)]
    if profile:
        argv.append("--profile")
    started = time.monotonic()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    ended = time.monotonic()
    if proc.returncode != 0:
        raise SystemExit(f"analyze --format {fmt} exited {proc.returncode}: {proc.stderr[-800:]}")
    called, returned, main_done = (float(x) for x in mark.read_text().split())
    return main_done - returned, ended - main_done, called - started, proc.stderr


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="3 rounds")
    parser.add_argument("--src", action="append", default=[], metavar="NAME=PATH")
    parser.add_argument("--profile", action="store_true", help="also print a cProfile of each side, once")
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker, profile=args.profile)
        return
    if os.geteuid() != 0 or not SIX.is_file():
        raise SystemExit("needs root (the sandbox) and the shared corpus (../shared)")
    sides: dict[str, Path | None] = {"new": None}
    for spec in args.src:
        name, _, path = spec.partition("=")
        sides[name] = Path(path).resolve()
    for src in (REPO / "src", *(p for p in sides.values() if p is not None)):
        compile_sh = REPO / "scripts" / "compile-bytecode.sh"
        subprocess.run(["bash", str(compile_sh), sys.executable, str(src / "osptrack")], check=True)
    rounds = 3 if args.quick else args.repeat
    before = os.getloadavg()
    print(f"load average before: {before[0]:.2f} {before[1]:.2f} {before[2]:.2f}, {os.cpu_count()} cores")
    cases = [(side, fmt) for side in sides for fmt in FORMATS]
    samples: dict[tuple[str, str], list[tuple[float, float, float]]] = {c: [] for c in cases}
    with tempfile.TemporaryDirectory(prefix="osptrack-after-") as tmp:
        scratch = Path(tmp)
        if args.profile:
            for side, fmt in cases:
                *_, err = sample(sides[side], fmt, scratch, profile=True)
                print(f"--- {side}, --format {fmt}: cumulative after analyze() returned\n{err[-6000:]}")
        for i in range(rounds):
            k = i % len(cases)
            for case in cases[k:] + cases[:k]:
                samples[case].append(sample(sides[case[0]], case[1], scratch)[:3])
    after = os.getloadavg()
    for side, fmt in cases:
        parts = samples[(side, fmt)]
        cli, shutdown, start = ([p[i] * 1000 for p in parts] for i in range(3))
        total = [a + b for a, b in zip(cli, shutdown, strict=True)]
        print(
            f"{side:8s} --format {fmt:5s} after analyze(): total median {statistics.median(total):5.0f} ms"
            f" (min {min(total):.0f}, max {max(total):.0f}); CLI {statistics.median(cli):5.0f} ms,"
            f" interpreter exit {statistics.median(shutdown):5.0f} ms; exec -> analyze() called"
            f" {statistics.median(start):5.0f} ms  (n={rounds})"
        )
    print(f"load average after: {after[0]:.2f} {after[1]:.2f} {after[2]:.2f}")


if __name__ == "__main__":
    main()
