"""Overhead of `osptrack analyze` against a bare install + import of the same archive.

For each package of the shared corpus, alternately: (a) the bare toolchain commands on the
host, no sandbox, no tracing, run as `nobody` in a scratch folder; (b) osptrack's whole
analysis (namespaces, fake network, strace, parsing, writing the run folder). Prints the
median ratio per ecosystem and overall. The bare side runs the corpus's known-benign packages
on the host by design: that is the comparison the figure is about.

    .venv/bin/python benchmarks/overhead.py [--repeat 3] [--only pypi|npm] [--names a,b]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from osptrack.ecosystems.pypi import build_tools_dir
from osptrack.run import HARNESS_DIR, AnalyzeOptions, analyze
from osptrack.target import parse_target

CORPUS = Path(__file__).resolve().parents[1] / ".." / "shared" / "corpus"
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]


def bare(entry: dict, scratch: Path) -> float:
    archive = CORPUS / entry["archive"]
    deps = archive.parent
    scratch.chmod(0o777)
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(scratch),
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
        cmd = [
            "/usr/bin/python3",
            "-m",
            "pip",
            "install",
            "-q",
            "--target",
            str(site),
            "--no-index",
            "--find-links",
            str(deps),
        ]
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
        _run(
            [
                "npm",
                "install",
                "--foreground-scripts",
                "--no-package-lock",
                "--offline",
                str(archive),
                *tarballs,
            ],
            env,
            project,
        )
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


def traced(entry: dict, scratch: Path) -> float:
    archive = CORPUS / entry["archive"]
    t0 = time.monotonic()
    outcome = analyze(
        parse_target(entry["ecosystem"], str(archive)),
        AnalyzeOptions(timeout_s=300, deps_dirs=(archive.parent,)),
        scratch / "run",
    )
    took = time.monotonic() - t0
    if set(outcome.statuses.values()) != {"completed"}:
        raise SystemExit(f"{entry['name']}: analysis did not complete: {outcome.statuses}")
    return took


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", choices=["pypi", "npm"])
    parser.add_argument("--names", help="comma-separated corpus names to measure (default: all)")
    args = parser.parse_args()
    entries = json.loads((CORPUS / "manifest.json").read_text())["packages"]
    entries = [e for e in entries if args.only in (None, e["ecosystem"])]
    if args.names:
        entries = [e for e in entries if e["name"] in args.names.split(",")]
    rows = []
    for entry in entries:
        times: dict[str, list[float]] = {"bare": [], "traced": []}
        for i in range(args.repeat):
            order = ("bare", "traced") if i % 2 == 0 else ("traced", "bare")  # alternate: drift hits both
            for kind in order:
                scratch = Path(tempfile.mkdtemp(prefix="osptrack-bench-"))
                try:
                    times[kind].append((bare if kind == "bare" else traced)(entry, scratch))
                finally:
                    shutil.rmtree(scratch, ignore_errors=True)
        b, t = statistics.median(times["bare"]), statistics.median(times["traced"])
        rows.append((entry["ecosystem"], entry["name"], b, t, t / b))
        print(
            f"{entry['ecosystem']:5} {entry['name']:16} bare {b:6.2f}s  osptrack {t:6.2f}s  ratio {t / b:5.2f}",
            flush=True,
        )
    print()
    for eco in sorted({r[0] for r in rows}):
        ratios = [r[4] for r in rows if r[0] == eco]
        print(f"median ratio {eco:5}: {statistics.median(ratios):.2f}  (n={len(ratios)})")
    print(
        f"median ratio all  : {statistics.median(r[4] for r in rows):.2f}  (n={len(rows)}, repeat={args.repeat}, "
        f"cpus={os.cpu_count()})"
    )


if __name__ == "__main__":
    main()
