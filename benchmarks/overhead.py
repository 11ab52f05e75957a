"""Overhead of osptrack against a bare install + import of the same archive, in-process and through the CLI.

For each package of the shared corpus, --repeat rounds; each round runs three sides, in an
order rotated from round to round (drift from other load hits every side alike):

- bare: the toolchain's own commands on the host, no sandbox, no tracing, as `nobody`, in a
  scratch folder on tmpfs (a tmpfs this benchmark mounts, or /dev/shm when it cannot mount):
  osptrack's sandbox writes to tmpfs too, so the disk is not what is compared;
- in-process: `osptrack.run.analyze()` called in this process (imports, the CLI framework and the seccomp
  compile are paid once, not per package);
- CLI: `.venv/bin/osptrack analyze ECO ARCHIVE --deps-dir DIR --out OUT`, a fresh process per
  package, as a user runs it (interpreter start-up, imports, the CLI framework included), with
  OSPTRACK_SERVER=0: the direct path;
- cli-server: the same command handed to the warm resident analyze server (osptrack.server),
  which is what a user's second and later runs get; the benchmark starts the server before the
  first round and checks, after every sample, that the run was served.

Both osptrack sides write their run folder to a temp folder on the host's disk, as a user's
`./osptrack-runs` would be. Prints per-package medians, the median ratio per ecosystem and over
the corpus for both osptrack sides, and the load average before and after; --json writes all
of it with every sample. The bare side runs the corpus's known-benign packages on the host by
design: that is the comparison the figure is about.

    .venv/bin/python benchmarks/overhead.py [--repeat 3 | --quick] [--only pypi|npm] [--names a,b] [--json PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

CORPUS = Path(__file__).resolve().parents[1] / ".." / "shared" / "corpus"
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]
OSPTRACK = Path(sys.executable).with_name("osptrack")


@contextlib.contextmanager
def tmpfs_root(size: str = "4g") -> Iterator[Path]:
    """A tmpfs of our own for the bare side's scratch (root mounts one); /dev/shm otherwise."""
    mountpoint = Path(tempfile.mkdtemp(prefix="osptrack-bench-tmpfs-"))
    mounted = (
        os.geteuid() == 0
        and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0777", "tmpfs", str(mountpoint)],
            capture_output=True,
            check=False,
        ).returncode
        == 0
    )
    try:
        if mounted:
            yield mountpoint
        else:
            shm = Path(tempfile.mkdtemp(prefix="osptrack-bench-", dir="/dev/shm"))
            shm.chmod(0o777)
            try:
                yield shm
            finally:
                shutil.rmtree(shm, ignore_errors=True)
    finally:
        if mounted:
            subprocess.run(["umount", str(mountpoint)], check=False)
        with contextlib.suppress(OSError):
            mountpoint.rmdir()


def fresh_bytecode() -> None:
    """What setup.sh does after install: osptrack's .pyc files, which PYTHONDONTWRITEBYTECODE
    (or a `git pull` since setup) would otherwise leave missing or stale, so the CLI side would
    compile its sources at every start, as no installed copy does."""
    repo = Path(__file__).resolve().parents[1]
    subprocess.run(["bash", str(repo / "scripts" / "compile-bytecode.sh"), sys.executable], check=True)


def filesystem(path: Path) -> str:
    proc = subprocess.run(["stat", "-f", "-c", "%T", str(path)], capture_output=True, text=True, check=False)
    return proc.stdout.strip() or "?"


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def bare(entry: dict[str, Any], scratch: Path) -> float:
    from osptrack.ecosystems.pypi import build_tools_dir
    from osptrack.run import HARNESS_DIR

    archive = CORPUS / entry["archive"]
    deps = archive.parent
    scratch.chmod(0o777)
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(scratch),
        "TMPDIR": str(scratch),  # pip's build folders and npm's temp files on the tmpfs too
        "LANG": "C.UTF-8",
        "PIP_CONFIG_FILE": "/dev/null",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_NO_CACHE_DIR": "1",
        "npm_config_cache": str(scratch / ".npm"),
        "npm_config_update_notifier": "false",
        "npm_config_fund": "false",
        "npm_config_audit": "false",
    }
    t0 = time.monotonic()
    if entry["ecosystem"] == "pypi":
        site = scratch / "site"
        cmd = ["/usr/bin/python3", "-m", "pip", "install", "-q", "--target", str(site)]
        cmd += ["--no-index", "--find-links", str(deps)]
        tools = build_tools_dir()
        if tools:
            cmd += ["--find-links", str(tools)]
        _run([*cmd, str(archive)], env, scratch)
        _run(
            ["/usr/bin/python3", str(HARNESS_DIR / "pypi_import.py"), entry["name"], str(site)], env, scratch
        )
    else:
        project = scratch / "project"
        project.mkdir()
        (project / "package.json").write_text('{"name": "bench", "version": "1.0.0", "private": true}')
        project.chmod(0o777)
        (project / "package.json").chmod(0o666)
        tarballs = [str(p) for p in sorted(deps.glob("*.tgz")) if p != archive]
        npm = ["npm", "install", "--foreground-scripts", "--no-package-lock", "--offline"]
        _run([*npm, str(archive), *tarballs], env, project)
        _run(["node", str(HARNESS_DIR / "npm_import.js"), entry["name"], str(project)], env, project)
    return time.monotonic() - t0


def _run(cmd: list[str], env: dict[str, str], cwd: Path) -> None:
    subprocess.run(
        [*NOBODY, *cmd],
        env=env,
        cwd=cwd,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=600,
    )


def timed_analyze(entry: dict[str, Any], scratch: Path, **options: Any) -> float:
    """Seconds of one in-process `analyze()` of a corpus entry (extra AnalyzeOptions in `options`);
    exits unless every phase completed. tracer.py and strace_levers.py time their sides with it."""
    from osptrack.run import AnalyzeOptions, analyze
    from osptrack.target import parse_target

    archive = CORPUS / entry["archive"]
    t0 = time.monotonic()
    outcome = analyze(
        parse_target(entry["ecosystem"], str(archive)),
        AnalyzeOptions(timeout_s=300, deps_dirs=(archive.parent,), **options),
        scratch / "run",
    )
    took = time.monotonic() - t0
    if set(outcome.statuses.values()) != {"completed"}:
        raise SystemExit(f"{entry['name']}: analysis did not complete ({options}): {outcome.statuses}")
    return took


def in_process(entry: dict[str, Any], scratch: Path) -> float:
    return timed_analyze(entry, scratch)


def rotated_samples(
    entry: dict[str, Any], runs: dict[str, Callable[[dict[str, Any], Path], float]], repeat: int, fast: Path
) -> dict[str, list[float]]:
    """`repeat` rounds of every side, each side first in turn; bare scratch on the tmpfs `fast`."""
    sides = list(runs)
    samples: dict[str, list[float]] = {s: [] for s in sides}
    for i in range(repeat):
        k = i % len(sides)
        for side in sides[k:] + sides[:k]:
            scratch = Path(tempfile.mkdtemp(prefix="osptrack-bench-", dir=fast if side == "bare" else None))
            try:
                samples[side].append(runs[side](entry, scratch))
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
    return samples


SERVER_NOTE = Path(tempfile.gettempdir()) / f"osptrack-bench-server-note-{os.getpid()}"


def server_env(served: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "OSPTRACK_SERVER"}
    if not served:
        env["OSPTRACK_SERVER"] = "0"
    env["OSPTRACK_SERVER_NOTE"] = str(SERVER_NOTE)
    return env


def last_note() -> str:
    lines = SERVER_NOTE.read_text().splitlines() if SERVER_NOTE.exists() else []
    return lines[-1] if lines else ""


def warm_server(timeout_s: float = 120.0) -> None:
    """Start the analyze server (a usage error: the first run spawns it) and wait until it serves."""
    deadline = time.monotonic() + timeout_s
    while True:
        subprocess.run([str(OSPTRACK), "analyze", "cobol", "x==1"], env=server_env(True), capture_output=True)
        if last_note() == "served":
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"the analyze server did not start: {last_note()!r}")
        time.sleep(0.2)


def cli(entry: dict[str, Any], scratch: Path) -> float:
    return cli_run(entry, scratch, served=False)


def cli_server(entry: dict[str, Any], scratch: Path) -> float:
    return cli_run(entry, scratch, served=True)


def cli_run(entry: dict[str, Any], scratch: Path, served: bool) -> float:
    archive = CORPUS / entry["archive"]
    argv = [str(OSPTRACK), "analyze", entry["ecosystem"], str(archive), "--deps-dir", str(archive.parent)]
    argv += ["--timeout", "300", "--out", str(scratch / "run"), "--format", "json"]
    t0 = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, check=False, timeout=900, env=server_env(served))
    took = time.monotonic() - t0
    if served and last_note() != "served":
        raise SystemExit(f"{entry['name']}: the cli-server side was not served ({last_note()!r})")
    if proc.returncode != 0:
        raise SystemExit(
            f"{entry['name']}: osptrack analyze exited {proc.returncode}: {proc.stderr[-400:]!r}"
        )
    statuses = {
        p["status"] for p in json.loads((scratch / "run" / "run.json").read_text())["phases"].values()
    }
    if statuses != {"completed"}:
        raise SystemExit(f"{entry['name']}: CLI analysis did not complete: {statuses}")
    return took


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=3, help="rounds per package (default 3)")
    parser.add_argument("--quick", action="store_true", help="1 round per package")
    parser.add_argument("--only", choices=["pypi", "npm"])
    parser.add_argument("--names", help="comma-separated corpus names to measure (default: all)")
    parser.add_argument("--json", type=Path, help="write medians, ratios, samples and load averages here")
    args = parser.parse_args()
    manifest = CORPUS / "manifest.json"
    if not manifest.is_file():
        print(f"skipped: the shared corpus is absent ({manifest.resolve()} not found; ../shared holds it)")
        return 0
    repeat = 1 if args.quick else args.repeat
    fresh_bytecode()
    entries = json.loads(manifest.read_text())["packages"]
    entries = [e for e in entries if args.only in (None, e["ecosystem"])]
    if args.names:
        wanted = args.names.split(",")
        unknown = sorted(set(wanted) - {e["name"] for e in entries})
        if unknown:
            print(f"overhead.py: error: not in the corpus: {', '.join(unknown)}", file=sys.stderr)
            return 2
        entries = [e for e in entries if e["name"] in wanted]
    runs: dict[str, Callable[[dict[str, Any], Path], float]] = {
        "bare": bare,
        "in-process": in_process,
        "cli": cli,
        "cli-server": cli_server,
    }
    warm_server()
    load_before = loadavg()
    rows: list[dict[str, Any]] = []
    with tmpfs_root() as fast:
        print(f"bare side on {fast} ({filesystem(fast)}); osptrack run folders on {tempfile.gettempdir()}"
              f" ({filesystem(Path(tempfile.gettempdir()))})")  # fmt: skip
        print(f"load average before: {load_before}, {os.cpu_count()} cores; {repeat} round(s) per package")
        for entry in entries:
            samples = rotated_samples(entry, runs, repeat, fast)
            med = {s: statistics.median(v) for s, v in samples.items()}
            row = {
                "ecosystem": entry["ecosystem"],
                "name": entry["name"],
                "median_s": med,
                "ratio_in_process": med["in-process"] / med["bare"],
                "ratio_cli": med["cli"] / med["bare"],
                "ratio_cli_server": med["cli-server"] / med["bare"],
                "samples_s": samples,
                "load_1min": loadavg()[0],
            }
            rows.append(row)
            print(
                f"{entry['ecosystem']:5} {entry['name']:16} bare {med['bare']:6.2f}s  in-process {med['in-process']:6.2f}s"
                f" ({row['ratio_in_process']:4.2f}x)  cli {med['cli']:6.2f}s ({row['ratio_cli']:4.2f}x)"
                f"  cli-server {med['cli-server']:6.2f}s ({row['ratio_cli_server']:4.2f}x)"
                f"  load {row['load_1min']:.1f}",
                flush=True,
            )
    load_after = loadavg()
    summary: dict[str, Any] = {}
    print()
    for group in [*sorted({r["ecosystem"] for r in rows}), "all"]:
        members = [r for r in rows if group in ("all", r["ecosystem"])]
        if not members:
            continue
        ip = statistics.median(r["ratio_in_process"] for r in members)
        c = statistics.median(r["ratio_cli"] for r in members)
        cs = statistics.median(r["ratio_cli_server"] for r in members)
        summary[group] = {
            "median_ratio_in_process": ip, "median_ratio_cli": c, "median_ratio_cli_server": cs, "n": len(members),
        }  # fmt: skip
        print(
            f"median ratio {group:5}: in-process {ip:.2f}x   CLI {c:.2f}x   CLI via server {cs:.2f}x   (n={len(members)})"
        )
    print(f"repeat={repeat}, cpus={os.cpu_count()}; load average before {load_before}, after {load_after}")
    if args.json:
        result = {
            "repeat": repeat,
            "cpus": os.cpu_count(),
            "load_before": load_before,
            "load_after": load_after,
            "bare_filesystem": "tmpfs",
            "packages": rows,
            "median_ratios": summary,
        }
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
