"""Parser throughput and memory on a >=100 MB strace log shaped like a real pip install.

    .venv/bin/python benchmarks/parser.py [--size-mb 100] [--runs 3] [--keep DIR]

1. Captures a real trace with our own `strace_command` of
   `/usr/bin/python3 -m pip install --no-index --find-links ../shared/corpus/pypi/requests
   --target TMP requests` (wheels only: nothing from a package's build runs on the host).
2. Repeats that log, shifting pids and timestamps per copy (the process tree, the
   unfinished/resumed pairs and clone return values stay consistent), until it reaches
   --size-mb. The line mix is therefore exactly the real one; it is printed.
3. Times, side by side and median of --runs: reading the lines alone, and parse_log over them
   (every event consumed). Peak RSS of one full parse is measured in a fresh subprocess.
Target: >= 30 MB/s.

    .venv/bin/python benchmarks/parser.py --logs A.strace B.strace ... [--runs 5]

times parse_log on real logs instead (e.g. a run's logs/*.strace, kept by copying them before
the run ends): median CPU per log and per line. For an A/B of two checkouts, run it with
PYTHONPATH=OTHER/src and with this one, alternating.
"""

from __future__ import annotations

import argparse
import collections
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from osptrack.trace.strace import ParseStats, parse_log, strace_command

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / ".." / "shared" / "corpus" / "pypi" / "requests"
_CLONE_RET = re.compile(r"^(\S+\s+\S+ (?:<\.\.\. )?(?:clone3?|v?fork)\b.*= )(\d+)$")
_NS_PID = re.compile(r"/\* (\d+) in strace's PID NS \*/")


def capture(tmp: Path) -> Path:
    log = tmp / "pip.log"
    target = tmp / "target"
    cmd = strace_command(log) + [
        "/usr/bin/python3", "-m", "pip", "install", "--no-index", "--find-links", str(CORPUS),
        "--target", str(target), "--no-cache-dir", "requests",
    ]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, timeout=600)
    return log


def line_mix(lines: list[str]) -> list[tuple[str, int]]:
    mix: collections.Counter[str] = collections.Counter()
    for line in lines:
        body = line.split(None, 2)[2] if line.count(" ") >= 2 else line
        if body.startswith("<... "):
            mix["<resumed>"] += 1
        elif body.startswith("+++"):
            mix["+++ exit"] += 1
        else:
            mix[body.split("(", 1)[0]] += 1
    return mix.most_common(12)


def shift(line: str, off: int, dt: float) -> str:
    pid_s, ts_s, body = line.split(None, 2)
    line = f"{int(pid_s) + off:<5d} {float(ts_s) + dt:.6f} {body}"
    if "PID NS" in line:
        line = _NS_PID.sub(lambda m: f"/* {int(m.group(1)) + off} in strace's PID NS */", line)
    else:
        m = _CLONE_RET.match(line.rstrip("\n"))
        if m:
            line = f"{m.group(1)}{int(m.group(2)) + off}\n"
    return line


def synthesise(src: Path, dst: Path, size_mb: float) -> int:
    lines = src.read_text(encoding="latin-1").splitlines(keepends=True)
    span = float(lines[-1].split()[1]) - float(lines[0].split()[1]) + 1.0
    want = int(size_mb * 1024 * 1024)
    written = copy = 0
    with dst.open("w", encoding="latin-1") as out:
        while written < want:
            chunk = "".join(shift(ln, copy * 100_000, copy * span) for ln in lines)
            out.write(chunk)
            written += len(chunk)
            copy += 1
    return copy


def read_only(path: Path) -> int:
    n = 0
    with open(path, encoding="latin-1", newline="\n") as fh:
        for _ in fh:
            n += 1
    return n


def parse_all(path: Path) -> ParseStats:
    stats = ParseStats()
    for _ in parse_log(path, "install", stats=stats):
        pass
    return stats


def peak_rss_mb(path: Path) -> float:
    code = (
        "import resource, sys\n"
        "from osptrack.trace.strace import parse_log\n"
        "for _ in parse_log(sys.argv[1], 'install'): pass\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(path)], check=True, capture_output=True, text=True)
    return int(out.stdout.strip()) / 1024


def time_logs(logs: list[Path], runs: int) -> None:
    import osptrack.trace.strace as module

    print(f"parser: {module.__file__}")
    for log in logs:
        cpu = []
        stats = ParseStats()
        for _ in range(runs):
            stats = ParseStats()
            t0 = time.process_time()
            parse_all_stats(log, stats)
            cpu.append(time.process_time() - t0)
        med = statistics.median(cpu)
        print(
            f"{log.name:28} lines {stats.lines:7} events {stats.events:7}  median CPU {1000 * med:7.1f} ms"
            f"  {1e6 * med / max(stats.lines, 1):5.2f} us/line  (runs: {', '.join(f'{1000 * x:.0f}' for x in cpu)})"
        )


def parse_all_stats(path: Path, stats: ParseStats) -> None:
    for _ in parse_log(path, "install", stats=stats):
        pass


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mb", type=float, default=100.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--source-log", type=Path, help="use this strace log instead of capturing one")
    ap.add_argument("--keep", type=Path, help="keep the logs in this folder")
    ap.add_argument("--logs", type=Path, nargs="+", help="time parse_log on these real logs only")
    args = ap.parse_args()
    if args.logs:
        time_logs(args.logs, args.runs)
        return

    with tempfile.TemporaryDirectory() as td:
        tmp = args.keep or Path(td)
        tmp.mkdir(parents=True, exist_ok=True)
        src = args.source_log or capture(tmp)
        src_lines = src.read_text(encoding="latin-1").splitlines()
        print(f"real trace: {src} {src.stat().st_size / 1e6:.2f} MB, {len(src_lines)} lines")
        print("line mix:", ", ".join(f"{k} {v / len(src_lines):.1%}" for k, v in line_mix(src_lines)))

        big = tmp / "big.log"
        copies = synthesise(src, big, args.size_mb)
        size = big.stat().st_size
        mb = size / (1024 * 1024)
        print(f"synthetic: {mb:.1f} MiB, {copies} copies of the real trace")

        # CPU time is the figure (this 2-core machine is shared); wall time is printed beside it.
        read_s, parse_s, parse_wall = [], [], []
        stats = ParseStats()
        n_lines = 0
        for _ in range(args.runs):
            t0 = time.process_time()
            n_lines = read_only(big)
            read_s.append(time.process_time() - t0)
            w0, t0 = time.perf_counter(), time.process_time()
            stats = parse_all(big)
            parse_s.append(time.process_time() - t0)
            parse_wall.append(time.perf_counter() - w0)
        print(f"lines {n_lines}, events {stats.events}, dropped {stats.dropped}, ignored {stats.ignored}")
        r, p, w = statistics.median(read_s), statistics.median(parse_s), statistics.median(parse_wall)

        def runs(xs: list[float]) -> str:
            return ", ".join(f"{x:.2f}" for x in xs)

        print(f"read lines only : median CPU {r:.2f} s = {mb / r:.0f} MiB/s  (runs: {runs(read_s)})")
        print(f"parse_log       : median CPU {p:.2f} s = {mb / p:.1f} MiB/s  (runs: {runs(parse_s)})")
        print(f"parse_log wall  : median {w:.2f} s = {mb / w:.1f} MiB/s  (runs: {runs(parse_wall)})")
        print(f"events/s (CPU) {stats.events / p:,.0f}; parse/read CPU ratio {p / r:.1f}x")
        print(f"peak RSS, one full parse in a fresh process: {peak_rss_mb(big):.0f} MiB")


if __name__ == "__main__":
    main()
