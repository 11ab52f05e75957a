"""Where one analysis's CPU goes: the package, the kernel's eBPF programs, the resident tracer,
and each thread of the analysing process; beside the bare workload's own CPU.

What a batch worker spends beside the package bounds what 2 workers can gain over 1 on 2 cores
(docs/performance.md, "Batch: where the CPU goes"): CPU-seconds are what this counts, since
other load on the machine inflates them far less than wall times. For each corpus package,
--repeat rounds; each round runs the bare workload once and `analyze()` in this process once
per --loader side (order rotated round by round), and measures around each:

- bare: the toolchain's own install + import (benchmarks/overhead.py's bare side), its CPU
  (RUSAGE_CHILDREN) and cpu/wall: more than 1.0 means the package alone keeps more than one
  core busy, a bound of its own on what 2 workers gain;
- sandbox: RUSAGE_CHILDREN of this process over the analysis: the phases' bwrap, the package's
  processes, the tracer's client, and the few set-up commands (nft, ip); of it, the kernel-side
  eBPF programs (`bpf`: run_time_ns of the resident tracer's programs, statistics enabled with
  BPF_ENABLE_STATS for the benchmark's lifetime; they run in the traced tasks' syscalls and are
  charged to them). They also run, briefly, for every other syscall on the machine: `bpf idle`
  is their rate measured with no run going, times the run's wall, shown apart;
- tracer: the resident `osptrack-ebpf --serve` daemon's utime+stime (/proc/PID/stat) and its
  wake-ups (voluntary context switches);
- host: this process's own CPU (RUSAGE_SELF), split by thread (the digest/follower thread, the
  fake network's dispatcher and connection threads, the registry's, the pipe drains), the main
  thread being what is left.

    .venv/bin/python benchmarks/cpu_split.py [--repeat 3 | --quick] [--names left-pad,six] \
        [--loader base=/path/to/other/osptrack-ebpf] [--json PATH]

--loader NAME=PATH adds a side traced by another build of the loader (its own resident
tracer), e.g. main's, for a before/after of a loader change; its log format must be this
tree's. Needs root and the eBPF tracer; the machine is shared, so read CPU-seconds, not walls.
"""

from __future__ import annotations

import argparse
import collections
import ctypes
import json
import os
import re
import resource
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from overhead import CORPUS, bare, loadavg, timed_analyze, tmpfs_root  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
BPF_ENABLE_STATS = 32
SYS_BPF = 321  # x86_64

# Per-thread CPU of threads that ended during a run: (native id, kind, thread_time at its end).
_ended: list[tuple[int, str, float]] = []
_ended_lock = threading.Lock()


def thread_kind(name: str) -> str:
    """A thread's role from its name (see the threading.Thread(...) calls in src/osptrack)."""
    if name.startswith("osptrack-digest"):
        return "digest (follower)"
    if name.startswith("fakenet-tcp"):
        return "fakenet connections"
    if name.startswith("fakenet-"):
        return "fakenet dispatcher"
    if name.startswith("registry"):
        return "registry"
    if "(_drain)" in name:
        return "output drains"
    return "other threads"


def _patch_threads() -> None:
    run = threading.Thread.run

    def measured(self: threading.Thread) -> None:
        try:
            run(self)
        finally:
            with _ended_lock:
                _ended.append((threading.get_native_id(), thread_kind(self.name), time.thread_time()))

    threading.Thread.run = measured  # type: ignore[method-assign]


def _task_cpu() -> dict[int, float]:
    """CPU seconds of every live thread of this process, by native id."""
    out = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            text = (task / "stat").read_text()
        except OSError:
            continue
        rest = text[text.rindex(")") + 2 :].split()
        out[int(task.name)] = (int(rest[11]) + int(rest[12])) / TICK
    return out


def _proc_cpu(pid: int) -> tuple[float, int]:
    """(utime+stime seconds, voluntary context switches) of a process; (0, 0) if gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0, 0
    rest = text[text.rindex(")") + 2 :].split()
    m = re.search(r"^voluntary_ctxt_switches:\s+(\d+)", status, re.M)
    return (int(rest[11]) + int(rest[12])) / TICK, int(m.group(1)) if m else 0


def _daemon_pid(loader: Path) -> int | None:
    target = str(loader.resolve())
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if os.readlink(stat.parent / "exe") == target and b"--serve" in (
                stat.parent / "cmdline"
            ).read_bytes().split(b"\0"):
                return int(stat.parent.name)
        except OSError:
            continue
    return None


def _bpf_run_ns(pid: int | None) -> tuple[int, int]:
    """(run_time_ns, run_cnt) summed over the BPF programs process `pid` holds."""
    ns = cnt = 0
    if pid is None:
        return 0, 0
    fd_dir = Path(f"/proc/{pid}/fd")
    try:
        fds = list(fd_dir.iterdir())
    except OSError:
        return 0, 0
    for fd in fds:
        try:
            if os.readlink(fd) != "anon_inode:bpf-prog":
                continue
            info = Path(f"/proc/{pid}/fdinfo/{fd.name}").read_text()
        except OSError:
            continue
        m1 = re.search(r"^run_time_ns:\s+(\d+)", info, re.M)
        m2 = re.search(r"^run_cnt:\s+(\d+)", info, re.M)
        ns += int(m1.group(1)) if m1 else 0
        cnt += int(m2.group(1)) if m2 else 0
    return ns, cnt


def enable_bpf_stats() -> int | None:
    """BPF_ENABLE_STATS(BPF_STATS_RUN_TIME): on while the returned fd is open (this process)."""
    libc = ctypes.CDLL(None, use_errno=True)
    attr = ctypes.create_string_buffer(16)  # union bpf_attr { .enable_stats.type = 0 }, rest zero
    fd = libc.syscall(SYS_BPF, BPF_ENABLE_STATS, attr, 16)
    return fd if fd >= 0 else None


def _rusage() -> tuple[float, float]:
    me = resource.getrusage(resource.RUSAGE_SELF)
    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, ch.ru_utime + ch.ru_stime


def measure_bare(entry: dict[str, Any], scratch: Path) -> dict[str, float]:
    c0 = _rusage()[1]
    wall = bare(entry, scratch)
    cpu = _rusage()[1] - c0
    return {"wall": wall, "cpu": cpu, "cpu_per_wall": cpu / wall}


def measure_analyze(
    entry: dict[str, Any], scratch: Path, loader: Path, idle_bpf_ns_s: float
) -> dict[str, float]:
    os.environ["OSPTRACK_EBPF_LOADER"] = str(loader)
    from osptrack.trace.tracers.ebpf import ensure_server

    ensure_server(loader)  # started (once) outside the measured span, as a batch's first run does
    daemon = _daemon_pid(loader)
    with _ended_lock:
        _ended.clear()
    tasks0 = _task_cpu()
    self0, child0 = _rusage()
    d0, w0 = _proc_cpu(daemon) if daemon else (0.0, 0)
    b0, n0 = _bpf_run_ns(daemon)
    wall = timed_analyze(entry, scratch)
    b1, n1 = _bpf_run_ns(daemon)
    d1, w1 = _proc_cpu(daemon) if daemon else (0.0, 0)
    self1, child1 = _rusage()
    tasks1 = _task_cpu()
    by_kind: collections.defaultdict[str, float] = collections.defaultdict(float)
    names = {t.native_id: t.name for t in threading.enumerate()}
    main_id = threading.main_thread().native_id
    with _ended_lock:
        ended = list(_ended)
    for tid, kind, cpu in ended:
        by_kind[kind] += cpu - tasks0.get(tid, 0.0)
    for tid, cpu in tasks1.items():
        if tid != main_id and tid in names:  # alive at the end (e.g. the registry's workers)
            by_kind[thread_kind(names[tid])] += cpu - tasks0.get(tid, 0.0)
    host = self1 - self0
    row = {
        "wall": wall,
        "sandbox": child1 - child0,
        "bpf": (b1 - b0) / 1e9,
        "bpf_calls": n1 - n0,
        "bpf_idle": idle_bpf_ns_s * wall / 1e9,
        "tracer": d1 - d0,
        "tracer_wakeups": w1 - w0,
        "host": host,
        "host main thread": host - sum(by_kind.values()),
    }
    for kind, cpu in by_kind.items():
        row[f"host {kind}"] = cpu
    row["total"] = row["sandbox"] + row["tracer"] + row["host"]
    row["cpu_per_wall"] = row["total"] / wall
    return row


def idle_bpf_rate(loader: Path, seconds: float = 2.0) -> float:
    """ns/s the tracer's programs spend with no run of ours going (every other syscall here)."""
    from osptrack.trace.tracers.ebpf import ensure_server

    ensure_server(loader)
    pid = _daemon_pid(loader)
    b0, _ = _bpf_run_ns(pid)
    time.sleep(seconds)
    b1, _ = _bpf_run_ns(pid)
    return (b1 - b0) / seconds


COLUMNS = (
    "wall", "total", "cpu_per_wall", "sandbox", "bpf", "bpf_idle", "tracer", "tracer_wakeups", "host",
    "host main thread", "host digest (follower)", "host fakenet dispatcher", "host fakenet connections",
    "host registry", "host output drains", "host other threads",
)  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=3, help="rounds per package (default 3)")
    parser.add_argument("--quick", action="store_true", help="1 round, left-pad, six, lodash, requests")
    parser.add_argument("--names", help="comma-separated corpus names (default: all)")
    parser.add_argument(
        "--loader", action="append", default=[], metavar="NAME=PATH", help="another loader build as a side"
    )
    parser.add_argument("--no-bare", action="store_true", help="skip the bare side")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    manifest = CORPUS / "manifest.json"
    if not manifest.is_file():
        print(f"skipped: the shared corpus is absent ({manifest.resolve()} not found)")
        return 0
    from osptrack.trace.ebpf import loader_path

    here = loader_path()
    if here is None or os.geteuid() != 0:
        print(
            "cpu_split.py: error: needs root and this tree's eBPF loader (bash scripts/setup.sh)",
            file=sys.stderr,
        )
        return 2
    loaders = {"this": here} | {k: Path(v) for k, v in (s.split("=", 1) for s in args.loader)}
    entries = json.loads(manifest.read_text())["packages"]
    names = (
        args.names.split(",")
        if args.names
        else ["left-pad", "six", "lodash", "requests"]
        if args.quick
        else None
    )
    if names:
        entries = [e for e in entries if e["name"] in names]
    repeat = 1 if args.quick else args.repeat
    stats_fd = enable_bpf_stats()
    if stats_fd is None:
        print("note: BPF_ENABLE_STATS refused: the bpf columns are 0")
    _patch_threads()
    idle = {name: idle_bpf_rate(path) for name, path in loaders.items()}
    load_before = loadavg()
    sides = (["bare"] if not args.no_bare else []) + list(loaders)
    print(f"load average before: {load_before}; {os.cpu_count()} cores; sides {sides}; {repeat} round(s)")
    print(
        "idle eBPF program time (other processes' syscalls): "
        + ", ".join(f"{k} {v / 1e6:.2f} ms/s" for k, v in idle.items())
    )
    samples: dict[str, dict[str, list[dict[str, float]]]] = {}
    with tmpfs_root() as fast:
        # A first analysis pays this process's one-time costs (imports, caches): not measured.
        warm = Path(tempfile.mkdtemp(prefix="osptrack-bench-"))
        try:
            for loader in loaders.values():
                os.environ["OSPTRACK_EBPF_LOADER"] = str(loader)
                timed_analyze(entries[0], warm)
                shutil.rmtree(warm / "run", ignore_errors=True)
        finally:
            shutil.rmtree(warm, ignore_errors=True)
        for entry in entries:
            per = samples.setdefault(entry["name"], {s: [] for s in sides})
            for i in range(repeat):
                k = i % len(sides)
                for side in sides[k:] + sides[:k]:
                    scratch = Path(
                        tempfile.mkdtemp(prefix="osptrack-bench-", dir=fast if side == "bare" else None)
                    )
                    try:
                        if side == "bare":
                            per[side].append(measure_bare(entry, scratch))
                        else:
                            per[side].append(measure_analyze(entry, scratch, loaders[side], idle[side]))
                    finally:
                        shutil.rmtree(scratch, ignore_errors=True)
            med = {
                s: {c: statistics.median(r.get(c, 0.0) for r in rows) for c in set().union(*rows)}
                for s, rows in per.items()
                if rows
            }
            line = f"{entry['ecosystem']:5} {entry['name']:16}"
            if "bare" in med:
                line += f" bare {med['bare']['wall']:.2f}s cpu {med['bare']['cpu']:.2f}s ({med['bare']['cpu_per_wall']:.2f})"
            for s in loaders:
                m = med[s]
                line += (
                    f" | {s}: wall {m['wall']:.2f}s cpu {m['total']:.2f}s ({m['cpu_per_wall']:.2f}) sandbox {m['sandbox']:.2f}"
                    f" (bpf {m['bpf']:.3f}) tracer {m['tracer']:.3f} ({m['tracer_wakeups']:.0f} wakeups) host {m['host']:.2f}"
                )
            print(line + f" load {loadavg()[0]:.1f}", flush=True)
    load_after = loadavg()
    print()
    for s in loaders:
        print(f"side {s}: medians per package, CPU seconds (sums over packages at the bottom)")
        cols = [c for c in COLUMNS if any(c in r for p in samples.values() for r in p[s])]
        print(f"  {'package':16}" + "".join(f" {c.replace('host ', 'h:')[:11]:>11}" for c in cols))
        sums: collections.defaultdict[str, float] = collections.defaultdict(float)
        for name, per in samples.items():
            mid = {c: statistics.median(r.get(c, 0.0) for r in per[s]) for c in cols}
            for c, v in mid.items():
                sums[c] += v
            print(f"  {name:16}" + "".join(f" {mid[c]:>11.3f}" for c in cols))
        sums["cpu_per_wall"] = sums["total"] / sums["wall"] if sums["wall"] else 0.0
        print(f"  {'sum':16}" + "".join(f" {sums[c]:>11.3f}" for c in cols))
        if "bare" in sides:
            bw = sum(statistics.median(r["wall"] for r in p["bare"]) for p in samples.values())
            bc = sum(statistics.median(r["cpu"] for r in p["bare"]) for p in samples.values())
            print(f"  bare: wall {bw:.2f} s, cpu {bc:.2f} s, cpu/wall {bc / bw:.2f}")
    print(f"load average before {load_before}, after {load_after} (machine shared: CPU-seconds, not walls)")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "load_before": load_before,
                    "load_after": load_after,
                    "idle_bpf_ns_s": idle,
                    "samples": samples,
                },
                indent=1,
            )
        )
    if stats_fd is not None:
        os.close(stats_fd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
