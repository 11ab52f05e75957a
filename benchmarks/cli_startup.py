"""Start-up cost of the `osptrack` command: `--version`, `--help`, and exec-to-first-phase of `analyze`.

    .venv/bin/python benchmarks/cli_startup.py [--repeat 10 | --quick] [--json PATH] [--src old=PATH]
        [--direct-only]

Each round runs every command once, in a rotated order (drift from other load hits all alike);
medians (with min and max) of --repeat rounds, and the load average before and after.
`--src NAME=PATH` (repeatable) adds the osptrack commands of another checkout's src as a side
(PYTHONPATH=PATH), alternated with this one's in every round:
e.g. `git -C /work/main worktree add --detach ../base main` and `--src base=../base/src`. Every
side runs the console script's code (osptrack.entry.run, or main in a checkout without run) with
this venv's python.

- `python -c pass`: the interpreter's own floor (the venv's python, `-S` off, as the script runs).
- `osptrack --version`: answered by osptrack.entry before click and rich load (target <= 120 ms).
- `osptrack --help`: click's help over every command group (each group's module imported).
- `analyze -> first phase`: `osptrack analyze pypi six-1.16.0...whl` as a user runs it, a fresh
  process each time. Instrument: the benchmark sets OSPTRACK_SPAWN_MARK=FILE, and
  osptrack.sandbox.runner appends the CLOCK_MONOTONIC time (one clock for every process of the
  machine) at which each phase spawns its tracer; the figure is the first mark minus the
  benchmark's clock just before it spawned the CLI (target <= 150 ms). It includes the
  interpreter, imports, the CLI framework, resolving the archive, the registry service, the workspace tmpfs,
  the fake network's namespace and CA, staging and the persona's home: all a user waits for
  before the package's first process exists.
- `the same, CPU time (user+sys)`: the CPU the direct command (and the processes it reaped: ip,
  nft) spent until the first phase would spawn, read by a probe that replaces run_phase and
  unwinds the run. On a loaded machine the wall time is this plus waiting for a core, so this
  row separates two trees' start-up where the wall time cannot; it does not show what overlaps
  (the fake network's start beside the staging), which only the wall time does.
- `--direct-only` leaves out the two rows below (no server started).
- `analyze -> first phase (CLI, warm server)`: the same command handed to the warm resident
  analyze server (osptrack.server), what a user's second and later runs cost; the benchmark starts
  the server before the first round and checks that every sample was served. The direct rows run
  with OSPTRACK_SERVER=0.
- `analyze -> first phase (CLI, cold: starts a server)`: a first run, with no server for it yet
  (an empty OSPTRACK_SERVER_DIR each time): the client spawns a server, then runs direct while
  the server preloads beside it; the server is stopped after the sample. Its whole wall time
  is printed beside the direct run's.
- `in-process analyze() -> first phase`: the same from a call of osptrack.run.analyze in this
  (warm) process: the run's own set-up, without interpreter, imports and CLI. The difference
  between the two is what the CLI's start-up adds. A `--src` side's in-process row runs in a
  worker process of its own (PYTHONPATH=PATH), started once and kept warm like this one.
- `import closure (-X importtime total)`: `python -X importtime -c "import osptrack.cli.analyze,
  osptrack.run"`, the sum of the two top-level entries (the modules an analyze imports up front).

The analyze rows need root (the sandbox) and the shared corpus (../shared); without either they
are skipped with a message.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The console script's own code, with a fallback for checkouts from before osptrack.entry.run, so
# that every side (this checkout and any --src) is started the same way, by this venv's python.
CONSOLE_SCRIPT = """import sys
try:
    from osptrack.entry import run as entry
except ImportError:
    from osptrack.entry import main as entry
sys.exit(entry())
"""
SIX = REPO / ".." / "shared" / "corpus" / "pypi" / "six" / "six-1.16.0-py2.py3-none-any.whl"
MARK_ENV = "OSPTRACK_SPAWN_MARK"  # osptrack.sandbox.runner.SPAWN_MARK_ENV (not imported: see below)


def side_env(src: Path | None, server: bool = False) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(src)} if src is not None else dict(os.environ)
    env.pop("OSPTRACK_SERVER", None)
    if not server:
        env["OSPTRACK_SERVER"] = "0"  # the direct path (the server has rows of its own)
    return env


NOTE = Path(tempfile.gettempdir()) / f"osptrack-startup-note-{os.getpid()}"
TOTALS: dict[str, list[float]] = {}  # whole wall time of an analyze, by mode


def last_note() -> str:
    lines = NOTE.read_text().splitlines() if NOTE.exists() else []
    return lines[-1] if lines else ""


def warm_server(scratch: Path, timeout_s: float = 120.0) -> None:
    """Start this checkout's analyze server (the first run spawns it) and wait until it serves."""
    deadline = time.monotonic() + timeout_s
    env = {**side_env(None, server=True), "OSPTRACK_SERVER_NOTE": str(NOTE)}
    while last_note() != "served":
        if time.monotonic() > deadline:
            raise SystemExit(f"the analyze server did not start: {last_note()!r}")
        subprocess.run([*osptrack(scratch), "analyze", "cobol", "x==1"], env=env, capture_output=True)
        time.sleep(0.2)


def stop_server(folder: Path) -> None:
    """Stop the server a cold sample started (by the pid it recorded) before the next sample."""
    deadline = time.monotonic() + 10
    while not list(folder.glob("analyze-*.pid")) and time.monotonic() < deadline:
        time.sleep(0.01)
    for pid_file in folder.glob("analyze-*.pid"):
        with contextlib.suppress(ValueError, ProcessLookupError):
            os.kill(int(pid_file.read_text()), signal.SIGTERM)


def timed(argv: list[str], src: Path | None = None) -> Callable[[], float]:
    env = side_env(src)

    def run() -> float:
        started = time.perf_counter()
        proc = subprocess.run(argv, capture_output=True, check=False, env=env)
        took = time.perf_counter() - started
        if proc.returncode not in (0,):
            raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.decode()[-300:]}")
        return took

    return run


def first_mark(mark: Path) -> float:
    return float(mark.read_text().split()[0])


def osptrack(scratch: Path) -> list[str]:
    script = scratch / "osptrack"
    if not script.exists():
        script.write_text(CONSOLE_SCRIPT)
    return [sys.executable, str(script)]


def cli_to_first_phase(scratch: Path, src: Path | None = None, mode: str = "direct") -> float:
    """mode: direct (OSPTRACK_SERVER=0), server (the warm server), cold (no server yet)."""
    mark = scratch / "mark"
    mark.unlink(missing_ok=True)
    out = scratch / "cli-run"
    shutil.rmtree(out, ignore_errors=True)
    argv = [*osptrack(scratch), "analyze", "pypi", str(SIX), "--deps-dir", str(SIX.parent), "--out", str(out)]
    env = {**side_env(src, server=mode != "direct"), MARK_ENV: str(mark), "OSPTRACK_SERVER_NOTE": str(NOTE)}
    folder = None
    if mode == "cold":
        folder = Path(tempfile.mkdtemp(prefix="osps-bench-", dir="/tmp"))
        env.update(OSPTRACK_SERVER_DIR=str(folder / "run"), OSPTRACK_SERVER_IDLE_EXIT="30")
    started = time.monotonic()
    proc = subprocess.run(argv, env=env, capture_output=True, check=False)
    total = time.monotonic() - started
    if folder is not None:
        stop_server(folder / "run")
        shutil.rmtree(folder, ignore_errors=True)
    if proc.returncode != 0:
        raise SystemExit(f"osptrack analyze exited {proc.returncode}: {proc.stderr.decode()[-500:]}")
    expected = {"server": "served", "cold": "direct: started a server"}.get(mode)
    if expected is not None and last_note() != expected:
        raise SystemExit(f"analyze ({mode}) ran as {last_note()!r}, not {expected!r}")
    if src is None:
        TOTALS.setdefault(mode, []).append(total)
    return first_mark(mark) - started


# The same command with run_phase replaced (before osptrack.run binds it) by one that reports the
# process's CPU time so far (its own and its reaped children's: ip, nft) and unwinds the run.
CPU_PROBE = """
import os, sys
import osptrack.sandbox.runner as runner
class FirstPhase(BaseException):
    pass
def first_phase(*args, **kwargs):
    t = os.times()
    sys.stderr.write(f"first-phase-cpu {t.user + t.system + t.children_user + t.children_system}\\n")
    for arg in (*args, *kwargs.values()):  # run_phase's promise: the tracer is over
        if hasattr(arg, "set") and hasattr(arg, "is_set"):
            arg.set()
    raise FirstPhase
runner.run_phase = first_phase
sys.argv = ["osptrack", *sys.argv[1:]]
from osptrack.entry import main
try:
    main()
except (FirstPhase, SystemExit):
    pass
"""


def cli_cpu_to_first_phase(scratch: Path, src: Path | None = None) -> float:
    """CPU seconds a direct `osptrack analyze` spends before its first phase would spawn: steadier
    than wall time on a loaded machine (the wall time is this CPU plus waiting, for the CPU and
    for the processes and the kernel)."""
    out = scratch / "cpu-run"
    shutil.rmtree(out, ignore_errors=True)
    argv = [sys.executable, "-c", CPU_PROBE, "analyze", "pypi", str(SIX), "--deps-dir", str(SIX.parent)]
    proc = subprocess.run(
        [*argv, "--out", str(out)], env=side_env(src), capture_output=True, text=True, check=False
    )
    lines = [line for line in proc.stderr.splitlines() if line.startswith("first-phase-cpu ")]
    if not lines:
        raise SystemExit(f"the CPU probe did not reach the first phase: {proc.stderr[-500:]}")
    return float(lines[-1].split()[1])


def in_process_to_first_phase(scratch: Path) -> float:
    from osptrack.run import AnalyzeOptions, analyze
    from osptrack.target import parse_target

    mark = scratch / "mark-inproc"
    mark.unlink(missing_ok=True)
    out = scratch / "inproc-run"
    shutil.rmtree(out, ignore_errors=True)
    os.environ[MARK_ENV] = str(mark)
    try:
        started = time.monotonic()
        analyze(parse_target("pypi", str(SIX)), AnalyzeOptions(deps_dirs=(SIX.parent,)), out)
    finally:
        del os.environ[MARK_ENV]
    return first_mark(mark) - started


def import_total(src: Path | None) -> Callable[[], float]:
    code = "import osptrack.cli.analyze, osptrack.run"
    argv, env = [sys.executable, "-X", "importtime", "-c", code], side_env(src)

    def run() -> float:
        proc = subprocess.run(argv, capture_output=True, text=True, check=True, env=env)
        tops = [line.split("|") for line in proc.stderr.splitlines() if line.startswith("import time:")]
        return (
            sum(int(t[1]) for t in tops if t[2].rstrip() in (" osptrack.cli.analyze", " osptrack.run")) / 1e6
        )

    return run


class Worker:
    """A warm process of another checkout (PYTHONPATH=src) that times in-process analyze() calls."""

    def __init__(self, src: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--worker"], env=side_env(src), stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True, bufsize=1,
        )  # fmt: skip

    def __call__(self, scratch: Path) -> float:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{scratch}\n")
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit("the in-process worker of a --src side died (see its stderr above)")
        return float(line)

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(60)


def worker() -> None:
    for line in sys.stdin:
        scratch = Path(line.strip()) / f"worker-{os.getpid()}"
        scratch.mkdir(exist_ok=True)
        print(in_process_to_first_phase(scratch), flush=True)


def main() -> None:
    if sys.argv[1:] == ["--worker"]:
        worker()
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=10, help="rounds (default 10)")
    parser.add_argument("--quick", action="store_true", help="3 rounds")
    parser.add_argument("--json", type=Path, help="write the medians and every sample here")
    parser.add_argument(
        "--direct-only",
        action="store_true",
        help="no warm-server or cold-start rows: what a process with no server costs (per --src side)",
    )
    parser.add_argument(
        "--src", action="append", default=[], metavar="NAME=PATH", help="another checkout's src, as a side"
    )
    args = parser.parse_args()
    sides: dict[str, Path | None] = {"": None}
    for spec in args.src:
        name, _, path = spec.partition("=")
        if not name or not (Path(path) / "osptrack" / "__init__.py").is_file():
            raise SystemExit(f"--src {spec}: expected NAME=PATH of a src folder holding osptrack/")
        sides[f" [{name}]"] = Path(path).resolve()
    rounds = 3 if args.quick else args.repeat
    # As setup.sh leaves it: osptrack's .pyc up to date (PYTHONDONTWRITEBYTECODE or a pull since
    # setup would make every start compile the sources, which is not what an install costs).
    for src in (REPO / "src", *(p for p in sides.values() if p is not None)):
        compile_sh = REPO / "scripts" / "compile-bytecode.sh"
        subprocess.run(["bash", str(compile_sh), sys.executable, str(src / "osptrack")], check=True)
    load_before = os.getloadavg()
    print(
        f"load average before: {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}, {os.cpu_count()} cores"
    )
    workers: list[Worker] = []
    with tempfile.TemporaryDirectory(prefix="osptrack-startup-") as tmp:
        scratch = Path(tmp)
        cases: dict[str, Callable[[], float]] = {"python -c pass": timed([sys.executable, "-c", "pass"])}
        for tag, src in sides.items():
            cases[f"osptrack --version{tag}"] = timed([*osptrack(scratch), "--version"], src)
            cases[f"osptrack --help{tag}"] = timed([*osptrack(scratch), "--help"], src)
            cases[f"import closure (-X importtime total){tag}"] = import_total(src)
        if os.geteuid() != 0:
            print("skipped analyze rows: the sandbox needs root")
        elif not SIX.is_file():
            print(f"skipped analyze rows: {SIX} is missing (the shared corpus, ../shared, is absent)")
        else:
            for tag, src in sides.items():
                cases[f"analyze -> first phase (CLI){tag}"] = lambda src=src: cli_to_first_phase(scratch, src)
                cases[f"  the same, CPU time (user+sys){tag}"] = lambda src=src: cli_cpu_to_first_phase(
                    scratch, src
                )
            if not args.direct_only:
                warm_server(scratch)
                cases["analyze -> first phase (CLI, warm server)"] = lambda: cli_to_first_phase(
                    scratch, None, "server"
                )
                cold = "analyze -> first phase (CLI, cold: starts a server)"
                cases[cold] = lambda: cli_to_first_phase(scratch, None, "cold")
            cases["analyze() -> first phase (in-process)"] = lambda: in_process_to_first_phase(scratch)
            for tag, src in sides.items():
                if src is not None:
                    workers.append(Worker(src))
                    cases[f"analyze() -> first phase (in-process){tag}"] = lambda w=workers[-1]: w(scratch)
        names = list(cases)
        samples: dict[str, list[float]] = {n: [] for n in names}
        try:
            for i in range(rounds):
                k = i % len(names)
                for name in names[k:] + names[:k]:  # rotate the order each round
                    samples[name].append(cases[name]())
        finally:
            for w in workers:
                w.close()
    load_after = os.getloadavg()
    result: dict[str, object] = {"rounds": rounds, "load_before": load_before, "load_after": load_after}
    for name in names:
        ms = [s * 1000 for s in samples[name]]
        med = statistics.median(ms)
        result[name] = {"median_ms": med, "min_ms": min(ms), "max_ms": max(ms), "samples_ms": ms}
        print(f"{name:40s} median {med:6.0f} ms  (min {min(ms):.0f}, max {max(ms):.0f}, n={rounds})")
    if "analyze -> first phase (CLI)" in samples:
        cli = statistics.median(samples["analyze -> first phase (CLI)"])
        inproc = statistics.median(samples["analyze() -> first phase (in-process)"])
        print(f"{'CLI start-up added (difference)':40s} median {(cli - inproc) * 1000:6.0f} ms")
        for tag in list(sides)[1:]:
            other = statistics.median(samples[f"analyze -> first phase (CLI){tag}"])
            print(f"{'this checkout minus' + tag:40s} median {(cli - other) * 1000:+6.0f} ms")
            other_in = statistics.median(samples[f"analyze() -> first phase (in-process){tag}"])
            print(f"{'  in-process, minus' + tag:40s} median {(inproc - other_in) * 1000:+6.0f} ms")
    for mode, totals in TOTALS.items():
        ms = [t * 1000 for t in totals]
        result[f"analyze total ({mode})"] = {"median_ms": statistics.median(ms), "samples_ms": ms}
        print(
            f"{'analyze whole run (CLI, ' + mode + ')':40s} median {statistics.median(ms):6.0f} ms  (n={len(ms)})"
        )
    print(f"load average after: {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
