"""Decoding speed of the eBPF tracer's binary log (osptrack.trace.ebpf.log), one or more source trees side by side.

Each side is a source tree (`--src NAME=PATH/src`, default: this checkout's src as `this`); each
round runs every side once, in an order rotated from round to round, in a fresh interpreter
with that tree first on sys.path, which decodes every log `--inner` times (after one untimed
pass), handed over in 256 KiB chunks as the follower thread reads a growing log, and reports
its best time per log. Prints per log and side the median over the rounds: wall seconds,
records/s, MiB/s and events, the ratio against the first side, the same for the process's CPU
time (steadier than wall time on a loaded machine), the CPU of decoding and then digesting the
events (RunDigest.phase: events.jsonl, the aggregate, roles, tree and summary: the whole of the
follower thread's work, `+ digest`), and the load average; --json writes every sample. The
events, counters and digest (events.jsonl, the phase's record) of every side are compared: a
side that decodes or digests a log differently is reported (exit 1).

Logs come from real runs: `--record left-pad,six` analyses those corpus packages with the eBPF
tracer first and keeps each phase's log in `--logs DIR` (default /tmp/osptrack-ebpf-logs).

    .venv/bin/python benchmarks/ebpf_log.py [--repeat 5 | --quick] [--src old=/path/to/other/src]
        [--record left-pad,six,lodash] [--logs DIR] [LOG ...] [--json PATH]
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

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

# Runs in the side's interpreter: argv = inner, then log paths. Prints one JSON line.
WORKER = r"""
import gc, hashlib, json, sys, tempfile, time
from pathlib import Path
import msgspec
from osptrack import ecosystems
from osptrack.digest import EventSpool, RunDigest
from osptrack.trace.ebpf import log as L

inner, logs = int(sys.argv[1]), [a.split("=", 1) for a in sys.argv[2:]]  # ECOSYSTEM=PATH


def chunks(data, size=1 << 18):  # as osptrack.trace.follow hands a growing log over
    for i in range(0, len(data), size):
        yield data[i : i + size]


def digest_cpu(events, eco, tmp):
    # RunDigest.phase, the follower thread's work once the log is decoded (events.jsonl, the
    # aggregate, the roles, the tree, the summary); its output's hash, so sides are compared
    spool = EventSpool(Path(tmp) / "events.jsonl")
    run = RunDigest(ecosystems.get(eco), [], "/tmp/osptrack-marker", spool)
    c0 = time.process_time()
    ph = run.phase("install", iter(events), set())
    spool.close()
    cpu = time.process_time() - c0
    record = ph.aggregate.record(b"", b"", "completed", [])
    out = spool.path.read_bytes() + msgspec.json.encode([record, ph.events, run.summary.probes()])
    return cpu, hashlib.sha256(out).hexdigest()


out = {}
for eco, p in logs:
    path = Path(p)
    stats = L.EbpfStats()
    events = list(L.parse_log(path, "install", stats=stats))
    digest = hashlib.sha256(b"".join(msgspec.json.encode(e) + b"\n" for e in events)).hexdigest()
    data = path.read_bytes()
    best = cpu = both = float("inf")
    with tempfile.TemporaryDirectory() as tmp:
        _, after = digest_cpu(events, eco, tmp)
        del events
        for _ in range(inner):
            gc.collect()  # each pass starts from the same heap
            t0, c0 = time.perf_counter(), time.process_time()
            decoded = list(L.EbpfLogReader("install", L.EbpfStats()).read_chunks(chunks(data)))
            best, cpu = min(best, time.perf_counter() - t0), min(cpu, time.process_time() - c0)
            both = min(both, time.process_time() - c0 + digest_cpu(decoded, eco, tmp)[0])
            del decoded
    out[p] = {"s": best, "cpu_s": cpu, "follow_cpu_s": both, "records": stats.records, "events": stats.events,
              "digest": digest, "after": after,
              "stats": [stats.events, stats.ignored, stats.dropped, stats.unfinished, stats.truncated, stats.lost]}
print(json.dumps(out))
"""


def record(names: list[str], logs: Path) -> list[Path]:
    """Analyse corpus packages with the eBPF tracer, keeping a copy of each phase's log."""
    from overhead import CORPUS, timed_analyze

    from osptrack.trace.tracers import ebpf as backend

    manifest = CORPUS / "manifest.json"
    if not manifest.is_file():
        raise SystemExit(f"ebpf_log.py: error: the shared corpus is absent ({manifest} not found)")
    entries = {e["name"]: e for e in json.loads(manifest.read_text())["packages"]}
    unknown = sorted(set(names) - set(entries))
    if unknown:
        raise SystemExit(f"ebpf_log.py: error: not in the corpus: {', '.join(unknown)}")
    logs.mkdir(parents=True, exist_ok=True)
    kept: list[Path] = []
    current = [""]
    parse = backend.EbpfTracer.parse

    def keeping(self: Any, log: Path, phase: str, stats: Any) -> Any:
        dest = logs / f"{current[0]}-{phase}.ebpf"
        shutil.copyfile(log, dest)
        kept.append(dest)
        return parse(self, log, phase, stats)

    backend.EbpfTracer.parse = keeping  # type: ignore[method-assign]
    try:
        for name in names:
            current[0] = name
            with tempfile.TemporaryDirectory() as tmp:
                # read after the phase (follow_trace=False), so each log passes through parse()
                timed_analyze(entries[name], Path(tmp), tracer="ebpf", follow_trace=False)
    finally:
        backend.EbpfTracer.parse = parse  # type: ignore[method-assign]
    return kept


def ecosystem_of(log: Path) -> str:
    """The corpus ecosystem of a log --record kept (NAME-PHASE.ebpf); npm for any other log
    (only the digest's toolchain rules depend on it)."""
    from overhead import CORPUS

    manifest = CORPUS / "manifest.json"
    name = log.name.rsplit("-", 1)[0]
    if manifest.is_file():
        for entry in json.loads(manifest.read_text())["packages"]:
            if entry["name"] == name:
                return str(entry["ecosystem"])
    return "npm"


def run_side(src: Path, inner: int, logs: list[Path]) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    done = subprocess.run(
        [sys.executable, "-c", WORKER, str(inner), *(f"{ecosystem_of(p)}={p}" for p in logs)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"ebpf_log.py: the side at {src} failed:\n{done.stderr.strip()}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def loadavg() -> tuple[float, float, float]:
    return os.getloadavg()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("logs", nargs="*", type=Path, help="eBPF logs to decode")
    parser.add_argument("--repeat", type=int, default=5, help="rounds (default 5)")
    parser.add_argument("--quick", action="store_true", help="1 round, 1 inner pass")
    parser.add_argument("--inner", type=int, default=3, help="timed passes per log and round (best kept)")
    parser.add_argument(
        "--src", action="append", default=[], metavar="NAME=PATH", help="a side: a source tree"
    )
    parser.add_argument(
        "--record", help="corpus names to analyse with the eBPF tracer first, keeping the logs"
    )
    parser.add_argument(
        "--logs",
        dest="keep",
        type=Path,
        default=Path("/tmp/osptrack-ebpf-logs"),
        help="where --record keeps logs",
    )
    parser.add_argument("--json", type=Path, help="write every sample and the load averages here")
    args = parser.parse_args()
    sides: dict[str, Path] = {}
    for spec in args.src or [f"this={HERE.parent / 'src'}"]:
        name, sep, path = spec.partition("=")
        if not sep or not (Path(path) / "osptrack" / "trace" / "ebpf" / "log.py").is_file():
            print(f"ebpf_log.py: error: --src {spec}: not NAME=PATH to a tree with osptrack/trace/ebpf/log.py", file=sys.stderr)  # fmt: skip
            return 2
        sides[name] = Path(path).resolve()
    logs = list(args.logs)
    if args.record:
        logs += record(args.record.split(","), args.keep)
    missing = [str(p) for p in logs if not p.is_file()]
    if not logs or missing:
        print(f"ebpf_log.py: error: no log given, or not found: {', '.join(missing)}", file=sys.stderr)
        return 2
    repeat, inner = (1, 1) if args.quick else (args.repeat, args.inner)
    load_before = loadavg()
    print(
        f"load average before: {load_before}, {os.cpu_count()} cores; {repeat} round(s), best of {inner} per round"
    )
    names = list(sides)
    samples: dict[str, list[dict[str, Any]]] = {s: [] for s in names}
    for i in range(repeat):
        k = i % len(names)
        for side in names[k:] + names[:k]:
            samples[side].append(run_side(sides[side], inner, logs))
    load_after = loadavg()
    rows = []
    differs = False
    for log in logs:
        key = str(log)
        size = log.stat().st_size
        first = samples[names[0]][0][key]
        base_s = base_cpu = base_follow = None
        for side in names:
            got = samples[side]
            med = statistics.median(r[key]["s"] for r in got)
            cpu = statistics.median(r[key]["cpu_s"] for r in got)
            follow = statistics.median(r[key]["follow_cpu_s"] for r in got)
            meta = got[0][key]
            same = all(meta[k] == first[k] for k in ("digest", "after", "stats"))
            differs |= not same
            base_s, base_cpu, base_follow = (
                (med, cpu, follow) if base_s is None else (base_s, base_cpu, base_follow)
            )
            row = {
                "log": key, "side": side, "bytes": size, "records": meta["records"], "events": meta["events"],
                "median_s": med, "records_per_s": meta["records"] / med, "mib_per_s": size / med / (1 << 20),
                "vs_first": med / base_s, "cpu_s": cpu, "cpu_records_per_s": meta["records"] / cpu,
                "cpu_vs_first": cpu / base_cpu, "follow_cpu_s": follow, "follow_vs_first": follow / base_follow,
                "same_events_as_first": same, "samples_s": [r[key]["s"] for r in got],
                "samples_cpu_s": [r[key]["cpu_s"] for r in got], "samples_follow_cpu_s": [r[key]["follow_cpu_s"] for r in got],
            }  # fmt: skip
            rows.append(row)
            print(
                f"{log.name:28} {side:8} {size / (1 << 20):6.2f} MiB {meta['records']:7} rec -> {meta['events']:6} ev"
                f"  {med * 1000:8.1f} ms  {row['records_per_s'] / 1000:7.0f} krec/s  {row['mib_per_s']:6.1f} MiB/s"
                f"  {row['vs_first']:5.2f}x of {names[0]};  CPU {cpu * 1000:8.1f} ms  {row['cpu_records_per_s'] / 1000:7.0f} krec/s"
                f"  {row['cpu_vs_first']:5.2f}x;  + digest {follow * 1000:8.1f} ms  {row['follow_vs_first']:5.2f}x"
                f"{'' if same else '  EVENTS OR DIGEST DIFFER'}",
                flush=True,
            )
    print(f"load average after: {load_after} (a shared machine: other work ran beside every side alike)")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "rows": rows,
                    "sides": {k: str(v) for k, v in sides.items()},
                    "repeat": repeat,
                    "inner": inner,
                    "load_before": load_before,
                    "load_after": load_after,
                    "cores": os.cpu_count(),
                },
                indent=2,
            )  # fmt: skip
        )
    return 1 if differs else 0


if __name__ == "__main__":
    raise SystemExit(main())
