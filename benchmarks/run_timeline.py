"""Where one `osptrack analyze` spends its wall time, end to end, through the real CLI: direct
(OSPTRACK_SERVER=0) and through the warm analyze server, beside the bare install + import of
the same archive (benchmarks/overhead.py's bare side, on tmpfs).

    .venv/bin/python benchmarks/run_timeline.py [--repeat 5 | --quick] [--names left-pad,six]
        [--src base=/path/to/other/checkout/src] [--paths direct,served] [--json PATH]

Instrument: every CLI process runs with PYTHONPATH=<a temp folder holding a sitecustomize.py>,
which wraps named functions of osptrack as their modules load (an import hook, so nothing is
imported earlier than it would be) and appends each call's CLOCK_MONOTONIC start and end (one
clock for every process of the machine) to the file OSPTRACK_TIMELINE names. The server and
its forked children inherit it, so a served run's marks come from three processes: the client,
the server and its child. osptrack's own code is unchanged; the wrappers cost ~20 us a call.

Each sample is one CLI run of a corpus package; the sides (bare, then each source tree's direct
and served path) rotate round by round; per package and side, the median of each step:

- start: exec -> the console script's code runs (interpreter, site);
- client: -> `serve()` or main() (osptrack.entry);
- hand-over (served): serve() -> the child's main(): connect, the server's checks and stamp walk,
  fork, the child's set-up, "accepted";
- cli: main() -> analyze() (click; in a direct run, importing the analyzer: the import closure);
- set-up: analyze() -> the first phase's run_phase (resolve, registry, workspace, staging, home,
  trust stores, waiting for the fake network's namespace);
- install / import: each run_phase (spawn -> the tracer's exit -> stdout/stderr drained);
- between: the install phase's end -> the import phase's run_phase (its digest's tail, records);
- after: the last phase's end -> analyze() returns (network records and exfiltration, closing,
  digest, verdict, writing the run folder, the workspace's removal);
- output: analyze() returns -> main() returns (the summary on stdout);
- exit: main() returns -> the benchmark's wait() returns (interpreter exit; served: the child's
  exit, the server's relay of its status, the client's exit).

The sum of the steps is the wall time; `fixed` = wall - install - import (what is not the
phases). Prints the load average before and after. Needs root and ../shared/corpus.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import overhead  # noqa: E402  (the bare side, the corpus, bytecode, the tmpfs)

SRC = HERE.parent / "src"
CONSOLE_SCRIPT = "import sys\nfrom osptrack.entry import run\nsys.exit(run())\n"
ENV = "OSPTRACK_TIMELINE"

# The wrapped functions, by module (Class.method for methods); a trailing "!" marks the call's
# start only (functions that never return: they end the process).
HOOKS = r"""
import os, sys, threading, time
ENV = "OSPTRACK_TIMELINE"
TARGETS = {
    "osptrack.entry": ["run", "call_main"],
    "osptrack.server.client": ["serve", "_follow"],
    "osptrack.server.daemon": ["Server.start"],
    "osptrack.server.child": ["setup", "_finish!"],
    "osptrack.run": ["analyze", "resolve", "run_phase", "_Followed.join", "_judge", "_write_run_folder",
                     "_registry_service", "_stage_input", "seed_home", "_Starting.wait"],
    "osptrack.sandbox.fakenet.core": ["FakeNetwork.start", "FakeNetwork.close", "FakeNetwork.exfiltration"],
    "osptrack.sandbox.runner": ["Workspace.__enter__", "Workspace.__exit__", "Workspace.wait_removed", "_wait"],
    "osptrack.sandbox.trust": ["build"],
    "osptrack.registry.service": ["RegistryService.__enter__", "RegistryService.__exit__"],
}
def mark(label, a, b):
    path = os.environ.get(ENV)
    if path:
        with open(path, "a") as f:
            f.write(f"{label}\t{a:.6f}\t{b:.6f}\t{os.getpid()}\n")
def _wrap(owner, attr, label, start_only):
    fn = getattr(owner, attr)
    def wrapper(*a, **k):
        t = time.monotonic()
        if start_only:
            mark(label, t, t)
            return fn(*a, **k)
        try:
            return fn(*a, **k)
        finally:
            mark(label, t, time.monotonic())
    setattr(owner, attr, wrapper)
def _patch(mod):
    for q in TARGETS.get(mod.__name__, ()):
        start_only = q.endswith("!")
        q = q.rstrip("!")
        owner = mod
        parts = q.split(".")
        try:
            for p in parts[:-1]:
                owner = getattr(owner, p)
            _wrap(owner, parts[-1], q, start_only)
        except AttributeError as exc:
            sys.stderr.write(f"run_timeline: {mod.__name__}.{q}: {exc}\n")
class _Finder:
    def find_spec(self, name, path=None, target=None):
        if name not in TARGETS:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        run = spec.loader.exec_module
        def exec_module(module, run=run):
            run(module)
            _patch(module)
        spec.loader.exec_module = exec_module
        return spec
if os.environ.get(ENV):
    now = time.monotonic()
    mark("site", now, now)
    sys.meta_path.insert(0, _Finder())
"""

STEPS = (
    "start",
    "client",
    "hand-over",
    "cli",
    "set-up",
    "install",
    "between",
    "import",
    "after",
    "output",
    "exit",
)
DETAIL = (
    "FakeNetwork.start", "_Starting.wait", "RegistryService.__enter__", "Workspace.__enter__", "_stage_input",
    "seed_home", "build", "_Followed.join", "FakeNetwork.exfiltration", "FakeNetwork.close",
    "Workspace.__exit__", "_judge", "_write_run_folder", "Workspace.wait_removed", "Server.start", "setup",
)  # fmt: skip


def steps(t0: float, t1: float, marks: list[tuple[str, float, float, int]], served: bool) -> dict[str, float]:
    """The steps of one run (ms) from its marks (see the module's docstring)."""
    first: dict[str, tuple[float, float]] = {}
    phases: list[tuple[float, float]] = []
    detail: dict[str, float] = {}
    for label, a, b, _ in sorted(marks, key=lambda m: m[1]):
        first.setdefault(label, (a, b))
        if label == "run_phase":
            phases.append((a, b))
        if label in DETAIL:
            detail[label] = detail.get(label, 0.0) + (b - a)
    site = first["site"][0]
    client_end = first["serve"][0] if "serve" in first else first["call_main"][0]
    mains = sorted(a for label, a, _, _ in marks if label == "call_main")
    main_start = mains[-1]  # served: the child's (the client calls none)
    main_end = max(b for label, _, b, _ in marks if label == "call_main")
    analyze_start, analyze_end = first["analyze"]
    (i0, i1), (m0, m1) = phases[0], phases[-1]
    out = {
        "start": site - t0,
        "client": client_end - site,
        "hand-over": (main_start - client_end) if served else 0.0,
        "cli": analyze_start - (main_start if served else client_end),
        "set-up": i0 - analyze_start,
        "install": i1 - i0,
        "between": m0 - i1,
        "import": m1 - m0,
        "after": analyze_end - m1,
        "output": main_end - analyze_end,
        "exit": t1 - main_end,
    }
    out = {k: 1000 * v for k, v in out.items()}
    out["wall"] = 1000 * (t1 - t0)
    out["fixed"] = out["wall"] - out["install"] - out["import"]
    out.update({f"  {k}": 1000 * v for k, v in detail.items()})
    return out


class Side:
    def __init__(
        self, name: str, src: Path, served: bool, hooks: Path, timeline: Path, scratch: Path
    ) -> None:
        self.name, self.src, self.served, self.timeline = name, src, served, timeline
        self.note = scratch / f"note-{name.replace('/', '-')}"
        self.server_dir = scratch / "servers"
        self.server_dir.mkdir(mode=0o700, exist_ok=True)
        self.env = {k: v for k, v in os.environ.items() if k != "OSPTRACK_SERVER"}
        self.env.update(
            PYTHONPATH=f"{hooks}:{src}", OSPTRACK_TIMELINE=str(timeline),
            OSPTRACK_SERVER_DIR=str(self.server_dir), OSPTRACK_SERVER_NOTE=str(self.note),
        )  # fmt: skip
        if not served:
            self.env["OSPTRACK_SERVER"] = "0"

    def last_note(self) -> str:
        lines = self.note.read_text().splitlines() if self.note.exists() else []
        return lines[-1] if lines else ""

    def warm(self, timeout_s: float = 180.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self.served and self.last_note() != "served":
            if time.monotonic() > deadline:
                raise SystemExit(f"{self.name}: the analyze server did not start: {self.last_note()!r}")
            subprocess.run(self.argv("analyze", "cobol", "x==1"), env=self.env, capture_output=True)
            time.sleep(0.2)

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-c", CONSOLE_SCRIPT, *args]

    def sample(self, entry: dict[str, Any], scratch: Path) -> dict[str, float]:
        archive = overhead.CORPUS / entry["archive"]
        argv = self.argv("analyze", entry["ecosystem"], str(archive), "--deps-dir", str(archive.parent))
        argv += ["--timeout", "300", "--out", str(scratch / "run"), "--format", "json"]
        offset = self.timeline.stat().st_size if self.timeline.exists() else 0
        t0 = time.monotonic()
        proc = subprocess.run(argv, env=self.env, capture_output=True, timeout=900, check=False)
        t1 = time.monotonic()
        if proc.returncode != 0:
            raise SystemExit(f"{self.name} {entry['name']}: exit {proc.returncode}: {proc.stderr[-400:]!r}")
        if self.served and self.last_note() != "served":
            raise SystemExit(f"{self.name} {entry['name']}: not served ({self.last_note()!r})")
        with open(self.timeline) as fh:
            fh.seek(offset)
            rows = [line.split("\t") for line in fh.read().splitlines()]
        marks = [(r[0], float(r[1]), float(r[2]), int(r[3])) for r in rows if len(r) == 4]
        return steps(t0, t1, [m for m in marks if m[1] >= t0 - 0.001], self.served)

    def stop(self) -> None:
        for pid_file in self.server_dir.glob("analyze-*.pid"):
            try:
                os.kill(int(pid_file.read_text()), signal.SIGTERM)
            except (ValueError, OSError):
                continue


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=5, help="rounds per package (default 5)")
    parser.add_argument("--quick", action="store_true", help="2 rounds")
    parser.add_argument("--names", default="left-pad,six", help="corpus names (default left-pad,six)")
    parser.add_argument("--src", action="append", default=[], help="NAME=PATH of another checkout's src")
    parser.add_argument("--paths", default="direct,served", help="direct, served or both (default)")
    parser.add_argument("--json", type=Path, help="write every sample and the medians here")
    args = parser.parse_args()
    repeat = 2 if args.quick else args.repeat
    if os.geteuid() != 0 or not overhead.CORPUS.is_dir():
        print("needs root and ../shared/corpus", file=sys.stderr)
        return 2
    overhead.fresh_bytecode()
    manifest = json.loads((overhead.CORPUS / "manifest.json").read_text())
    wanted = args.names.split(",")
    entries = [e for e in manifest["packages"] if e["name"] in wanted]
    trees = {"new": SRC, **{s.split("=", 1)[0]: Path(s.split("=", 1)[1]).resolve() for s in args.src}}
    paths = [p for p in args.paths.split(",") if p in ("direct", "served")]
    for src in trees.values():  # each tree's .pyc files, as setup.sh leaves an install
        script = HERE.parent / "scripts" / "compile-bytecode.sh"
        subprocess.run(["bash", str(script), sys.executable, str(src / "osptrack")], check=True)
    load_before = overhead.loadavg()
    print(f"load average before: {load_before}, 2 cores; {repeat} round(s); trees {trees}")
    scratch = Path(tempfile.mkdtemp(prefix="osptrack-timeline-"))
    scratch.chmod(0o700)
    hooks = scratch / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(HOOKS)
    sides = [
        Side(f"{tree}/{path}", src, path == "served", hooks, scratch / "timeline.tsv", scratch)
        for tree, src in trees.items()
        for path in paths
    ]
    results: dict[str, dict[str, list[dict[str, float]] | list[float]]] = {}
    try:
        for side in sides:
            side.warm()
        with overhead.tmpfs_root() as fast:
            for entry in entries:
                per: dict[str, Any] = {"bare": [], **{s.name: [] for s in sides}}
                order = ["bare", *[s.name for s in sides]]
                by_name = {s.name: s for s in sides}
                for i in range(repeat + 1):  # the first round warms each side up; not counted
                    k = i % len(order)
                    for name in order[k:] + order[:k]:
                        run_scratch = Path(tempfile.mkdtemp(dir=fast if name == "bare" else None))
                        try:
                            if name == "bare":
                                value: Any = 1000 * overhead.bare(entry, run_scratch)
                            else:
                                value = by_name[name].sample(entry, run_scratch)
                        finally:
                            shutil.rmtree(run_scratch, ignore_errors=True)
                        if i:
                            per[name].append(value)
                results[entry["name"]] = per
                report(entry, per, [s.name for s in sides])
    finally:
        for side in sides:
            side.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    load_after = overhead.loadavg()
    print(f"load average before {load_before}, after {load_after}")
    if args.json:
        args.json.write_text(json.dumps({"load": [load_before, load_after], "results": results}, indent=1))
    return 0


def report(entry: dict[str, Any], per: dict[str, Any], names: list[str]) -> None:
    bare = statistics.median(per["bare"])
    print(
        f"\n{entry['ecosystem']} {entry['name']}: bare {bare:.0f} ms (median of {len(per['bare'])}); ms, medians"
    )
    keys: list[str] = []
    for name in names:
        for sample in per[name]:
            keys += [k for k in sample if k not in keys]
    print(f"{'step':28}" + "".join(f"{n:>16}" for n in names))
    for key in keys:
        cells = []
        for name in names:
            values = [s.get(key, 0.0) for s in per[name]]
            cells.append(f"{statistics.median(values):16.1f}")
        print(f"{key:28}" + "".join(cells))
    print(
        f"{'ratio to bare':28}"
        + "".join(f"{statistics.median(s['wall'] for s in per[n]) / bare:15.2f}x" for n in names)
    )


if __name__ == "__main__":
    sys.exit(main())
