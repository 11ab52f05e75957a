"""`osptrack hunt` over 10,000 synthetic runs: cold (empty cache) and warm, medians.

    python benchmarks/hunt.py [--runs 10000] [--reps 3] [--workers 1] [--root /tmp/hunt-bench]

Each synthetic run folder has the layout of docs/formats.md (tests/synthetic_runs.py): 40 file
records and 2 DNS names per phase (install, import), 3 commands, 30 events, 2 network flows and a
verdict. Real runs are bigger (a pip install records ~1,000-4,000 files and ~1,700 events), so
the cold figure scales with the events and files the runs hold; the warm one hardly does.

The query is the issue's "which of my runs contacted this host": a join of `dns` and `runs` by
hostname. Each measurement is a fresh `osptrack hunt` process, as a user would run it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from synthetic_runs import SITE, dns_flow, make_run, tcp_flow  # noqa: E402

OSPTRACK = [sys.executable, "-m", "osptrack.cli"]
SQL = (
    "SELECT r.ecosystem, r.name, r.version, d.phase FROM dns d JOIN runs r USING (run_id) "
    "WHERE d.hostname = 'c2.bench.example' ORDER BY r.name"
)


def generate(root: Path, n: int) -> None:
    for i in range(n):
        name = f"bench-{i:05d}"
        host = "c2.bench.example" if i % 500 == 0 else f"cdn{i % 37}.example"
        own = [(f"{SITE}/{name}/mod{j}.py", "rw") for j in range(36)]
        system = [
            ("/etc/ld.so.cache", "r"),
            ("/usr/lib/python3.11/os.py", "r"),
            ("/tmp/build.log", "w"),
            ("/root/.cache/pip/x", "w"),
        ]
        files = {p: own + system for p in ("install", "import")}
        events = [
            {
                "t": 1764169200.0 + k,
                "phase": "install" if k < 20 else "import",
                "pid": 100 + k % 5,
                "ppid": 99,
                "exe": "/usr/bin/python3",
                "comm": "python3",
                "syscall": "openat",
                "kind": "file",
                "op": "read",
                "ret": 3,
                "errno": None,
                "args": ["AT_FDCWD", f'"{SITE}/{name}/mod{k}.py"'],
                "path": f"{SITE}/{name}/mod{k}.py",
            }
            for k in range(30)
        ]
        make_run(
            root / "pypi" / name / "1.0.0",
            name,
            dns={"install": ["pypi.org", host], "import": [f"api{i % 11}.example", "files.pythonhosted.org"]},
            files=files,
            commands={
                "install": [["python3", "-m", "pip", "install", "."], ["sh", "-c", "uname -m"]],
                "import": [["python3", "-c", f"import {name}"]],
            },
            flows=[dns_flow(host), tcp_flow(host)],
            events=events,
            verdict={"level": "benign", "score": 0, "findings": []},
        )
    (root / "manifest.csv").write_text("timestamp,ecosystem,name,version\n")


def hunt(root: Path, cache: Path, workers: int) -> tuple[float, int]:
    started = time.perf_counter()
    out = subprocess.run(
        [
            *OSPTRACK,
            "hunt",
            str(root),
            "--sql",
            SQL,
            "--format",
            "csv",
            "--cache",
            str(cache),
            "--workers",
            str(workers),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return time.perf_counter() - started, len(out.stdout.strip().splitlines()) - 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--root", type=Path, default=Path("/tmp/osptrack-hunt-bench"))
    args = ap.parse_args()
    runs = args.root / "runs"
    if not (runs / "manifest.csv").is_file() or sum(1 for _ in (runs / "pypi").iterdir()) != args.runs:
        shutil.rmtree(runs, ignore_errors=True)
        t = time.perf_counter()
        generate(runs, args.runs)
        print(f"generated {args.runs} runs in {time.perf_counter() - t:.1f}s")
    cold, warm = [], []
    for _ in range(args.reps):
        cache = args.root / "cache"
        shutil.rmtree(cache, ignore_errors=True)
        s, rows = hunt(runs, cache, args.workers)
        cold.append(s)
        for _ in range(1):
            w, rows_warm = hunt(runs, cache, args.workers)
            warm.append(w)
            assert rows_warm == rows == args.runs // 500, (rows, rows_warm)
    print(f"{args.runs} runs, {rows} matching; workers {args.workers}; load average {os.getloadavg()[0]:.2f}")
    print(
        f"cold (parse + write cache + query): median {statistics.median(cold):.2f}s  {[f'{c:.2f}' for c in cold]}"
    )
    print(
        f"warm (cached Parquet + query):      median {statistics.median(warm):.2f}s  {[f'{w:.2f}' for w in warm]}"
    )


if __name__ == "__main__":
    main()
