"""What tracing the probe syscalls (stat/access/readlink families) costs a full analysis.

Alternately, --repeat times, `osptrack.run.analyze` (install + import) of one small wheel built
here from source, with the probe syscalls traced (as shipped) and with them left out of
strace's `-e trace=` list; prints the medians of each phase's wall time and of the events.

    .venv/bin/python benchmarks/probe_tracing.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import zipfile
from pathlib import Path

import osptrack.trace.strace as strace
from osptrack.run import AnalyzeOptions, analyze
from osptrack.target import parse_target

SHIPPED = strace.TRACED_SYSCALLS
WITHOUT = tuple(name for name in SHIPPED if name not in strace.PROBE_SYSCALLS)


def wheel(dest: Path) -> Path:
    """A one-module wheel whose import pulls in a few stdlib packages (stats galore)."""
    info = "osptrack_bench-0.1.dist-info"
    members = {
        "osptrack_bench/__init__.py": "import email, http.client, json\n",
        f"{info}/METADATA": "Metadata-Version: 2.1\nName: osptrack-bench\nVersion: 0.1\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: bench\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    members[f"{info}/RECORD"] = "".join(f"{m},,\n" for m in [*members, f"{info}/RECORD"])
    path = dest / "osptrack_bench-0.1-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in members.items():
            zf.writestr(name, text)
    path.chmod(0o644)
    return path


def one(archive: Path, out: Path, traced: tuple[str, ...]) -> dict[str, float]:
    strace.TRACED_SYSCALLS = traced  # strace_command reads it at call time
    try:
        analyze(parse_target("pypi", str(archive)), AnalyzeOptions(timeout_s=300), out)
    finally:
        strace.TRACED_SYSCALLS = SHIPPED
    run = json.loads((out / "run.json").read_text())
    figures = {p: float(i["wall_s"]) for p, i in run["phases"].items()}
    figures["events"] = float(run["trace"]["events"])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    results: dict[str, list[dict[str, float]]] = {"probes traced": [], "probes not traced": []}
    with tempfile.TemporaryDirectory(prefix="osptrack-bench-", dir="/var/tmp") as tmp:
        Path(tmp).chmod(0o755)
        archive = wheel(Path(tmp))
        for i in range(args.repeat):
            for label, traced in (("probes traced", SHIPPED), ("probes not traced", WITHOUT)):
                results[label].append(one(archive, Path(tmp) / f"run-{i}-{len(traced)}", traced))
    for label, runs in results.items():
        medians = {k: round(statistics.median(r[k] for r in runs), 3) for k in runs[0]}
        print(f"{label:18} " + "  ".join(f"{k} {v:g}" for k, v in medians.items()))


if __name__ == "__main__":
    main()
