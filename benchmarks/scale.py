"""Time and peak memory against trace size: synthetic packages of 100 to 10,000 modules.

For each size, a wheel (and, with `--npm`, an npm tarball) of N small modules is built from source
in a temp folder. Then, alternately and `--repeat` times:

- bare: `pip install --target` (or `npm install --offline`) into tmpfs (/dev/shm) as `nobody`, then
  the import harness, no sandbox and no tracing (as benchmarks/overhead.py's bare side, on tmpfs);
- osptrack: the real CLI, `osptrack analyze pypi WHEEL --out DIR`, in a subprocess, direct
  (OSPTRACK_SERVER=0), so that the analysis is in the process tree whose memory is sampled.

Reported per size (medians): wall time of each side, the ratio, the trace size (strace log lines
and bytes, summed over the phases, from run.json), events, and peak memory of the osptrack side:

- `host_rss`: the peak, over samples every 20 ms of /proc, of the summed RSS of the CLI process
  and its descendants on the host side (strace included; the sandbox's processes, which run as
  uid 65534, are left out: they are the package manager's, and bare has them too);
- `cli_hwm`: the CLI process's own VmHWM (kernel-kept peak RSS), at its last sample.

    .venv/bin/python benchmarks/scale.py --repeat 3 [--sizes 100,1000,10000] [--npm] [--quick]

The load average (`uptime`) is printed with the figures: on a shared machine, say so.
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
import threading
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # builders: the tests' package builders, from source

from builders import make_npm, make_wheel  # noqa: E402
from osptrack.run import HARNESS_DIR  # noqa: E402

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]
SANDBOX_UID = 65534
TMPFS = Path("/dev/shm")
NAME = "osptrack-scale"
MODULE = "def f{i}(x):\n    return x + {i}\n\nVALUE = {i}\n"


def build_wheel(dest: Path, n: int) -> Path:
    pkg = NAME.replace("-", "_")
    files = {f"{pkg}/__init__.py": "VERSION = '1.0'\n"}
    files |= {f"{pkg}/m{i:05d}.py": MODULE.format(i=i) for i in range(n)}
    path = make_wheel(dest, NAME, "1.0.0", files)
    with zipfile.ZipFile(path) as zf:  # sanity: the wheel holds every module
        assert len(zf.namelist()) == n + 4
    return path


def build_npm(dest: Path, n: int) -> Path:
    files = {"index.js": "module.exports = {version: '1.0.0'};\n"}
    files |= {
        f"lib/m{i:05d}.js": f"module.exports = function f{i}(x) {{ return x + {i}; }};\n" for i in range(n)
    }
    return make_npm(dest, NAME, "1.0.0", files)


def _env(home: Path) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "PIP_CONFIG_FILE": "/dev/null",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_NO_CACHE_DIR": "1",
        "npm_config_cache": str(home / ".npm"),
        "npm_config_update_notifier": "false",
        "npm_config_fund": "false",
        "npm_config_audit": "false",
    }


def bare(ecosystem: str, archive: Path) -> float:
    scratch = Path(tempfile.mkdtemp(prefix="osptrack-scale-bare-", dir=TMPFS))
    try:
        scratch.chmod(0o777)
        env = _env(scratch)
        t0 = time.monotonic()
        if ecosystem == "pypi":
            site = scratch / "site"
            _nobody(["/usr/bin/python3", "-m", "pip", "install", "-q", "--no-index", "--target", str(site),
                     str(archive)], env, scratch)  # fmt: skip
            _nobody(["/usr/bin/python3", str(HARNESS_DIR / "pypi_import.py"), NAME, str(site)], env, scratch)
        else:
            project = scratch / "project"
            project.mkdir(mode=0o777)
            (project / "package.json").write_text('{"name": "bench", "version": "1.0.0", "private": true}')
            (project / "package.json").chmod(0o666)
            _nobody(["npm", "install", "--foreground-scripts", "--no-package-lock", "--offline", str(archive)],
                    env, project)  # fmt: skip
            _nobody(["node", str(HARNESS_DIR / "npm_import.js"), NAME, str(project)], env, project)
        return time.monotonic() - t0
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _nobody(cmd: list[str], env: dict[str, str], cwd: Path) -> None:
    subprocess.run([*NOBODY, *cmd], env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=1800)  # fmt: skip


class TreeSampler(threading.Thread):
    """Peak summed RSS of a process and its host-side descendants, sampled from /proc."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak = 0
        self.hwm = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            total = 0
            for pid in self._tree():
                status = _status(pid)
                if not status or int(status.get("Uid", "0").split()[0]) == SANDBOX_UID:
                    continue
                total += _kb(status.get("VmRSS"))
                if pid == self.pid:
                    self.hwm = max(self.hwm, _kb(status.get("VmHWM")))
            self.peak = max(self.peak, total)
            self.done.wait(self.interval)

    def _tree(self) -> list[int]:
        children: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
        found, todo = [], [self.pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo.extend(children.get(pid, []))
        return found


def _status(pid: int) -> dict[str, str]:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def _kb(value: str | None) -> int:
    return int(value.split()[0]) * 1024 if value else 0


def traced(ecosystem: str, archive: Path) -> dict[str, float]:
    scratch = Path(tempfile.mkdtemp(prefix="osptrack-scale-run-"))
    try:
        out = scratch / "run"
        cli = ROOT / ".venv" / "bin" / "osptrack"
        t0 = time.monotonic()
        # Direct, not through the analyze server: a served analysis runs as the server's child,
        # outside the tree the sampler measures (it would report the client's few MiB).
        env = {**os.environ, "OSPTRACK_SERVER": "0"}
        proc = subprocess.Popen([str(cli), "analyze", ecosystem, str(archive), "--out", str(out)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)  # fmt: skip
        sampler = TreeSampler(proc.pid)
        sampler.start()
        _, err = proc.communicate(timeout=1800)
        took = time.monotonic() - t0
        sampler.done.set()
        sampler.join()
        if proc.returncode not in (0, 1):  # 1: a verdict over the threshold is still a run
            raise SystemExit(f"osptrack exited {proc.returncode}: {err.decode(errors='replace')[-2000:]}")
        info = json.loads((out / "run.json").read_text())
        phases = info["phases"].values()
        if {p["status"] for p in phases} != {"completed"}:
            raise SystemExit(f"analysis did not complete: {[p['status'] for p in phases]}")
        return {
            "wall": took,
            "host_rss": sampler.peak,
            "cli_hwm": sampler.hwm,
            "events": info["trace"]["events"],
            "lines": sum(p.get("trace_lines", 0) for p in phases),
            "bytes": sum(p.get("trace_bytes", 0) for p in phases),
        }
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sizes", default="100,1000,10000", help="module counts, comma-separated")
    parser.add_argument("--npm", action="store_true", help="also an npm tarball of each size")
    parser.add_argument("--quick", action="store_true", help="one repeat, sizes 100,1000")
    args = parser.parse_args()
    sizes = [100, 1000] if args.quick else [int(s) for s in args.sizes.split(",")]
    repeat = 1 if args.quick else args.repeat
    ecosystems = ["pypi", "npm"] if args.npm else ["pypi"]
    print(f"load average before: {os.getloadavg()}  cpus={os.cpu_count()}  repeat={repeat}", flush=True)
    build = Path(tempfile.mkdtemp(prefix="osptrack-scale-build-"))
    build.chmod(0o755)
    rows = []
    try:
        for eco in ecosystems:
            for n in sizes:
                folder = build / f"{eco}-{n}"
                folder.mkdir(mode=0o755)
                archive = build_wheel(folder, n) if eco == "pypi" else build_npm(folder, n)
                archive.chmod(0o644)
                b_times: list[float] = []
                runs: list[dict[str, float]] = []
                for i in range(repeat):
                    order = ("bare", "osptrack") if i % 2 == 0 else ("osptrack", "bare")  # alternate
                    for side in order:
                        if side == "bare":
                            b_times.append(bare(eco, archive))
                        else:
                            runs.append(traced(eco, archive))
                b = statistics.median(b_times)
                med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
                rows.append((eco, n, b, med))
                print(
                    f"{eco:4} {n:6} modules  bare {b:6.2f}s  osptrack {med['wall']:6.2f}s  "
                    f"ratio {med['wall'] / b:5.2f}  trace {int(med['lines']):>8} lines {med['bytes'] / 1e6:7.1f} MB  "
                    f"events {int(med['events']):>7}  host_rss {med['host_rss'] / 2**20:6.1f} MiB  "
                    f"cli_hwm {med['cli_hwm'] / 2**20:6.1f} MiB  load {os.getloadavg()[0]:.2f}",
                    flush=True,
                )
    finally:
        shutil.rmtree(build, ignore_errors=True)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
