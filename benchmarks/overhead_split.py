"""Where the analysis's overhead goes, for one PyPI wheel: tracer, sandbox, and the rest.

Alternately, --repeat times, four ways of installing (and for the last two, importing) one
shared-corpus wheel; prints the medians:

1. bare: `pip install --target` on the host as `nobody`, no sandbox, no tracing;
2. strace only: the same under `strace_command` (the flags a sandboxed phase uses): the floor
   the analysis's ratio cannot go below;
3. sandbox only: `osptrack.run.analyze` with strace swapped for a launcher that drops to
   `nobody` and leaves an empty log (namespaces, fake network, cgroups, bwrap; no tracing);
4. full: `osptrack.run.analyze` as it is.

Wheels only, so no package build code runs on the host; the bare sides run the corpus's
known-benign wheel there by design, as benchmarks/overhead.py does.

    .venv/bin/python benchmarks/overhead_split.py [--wheel PATH] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from overhead import CORPUS, NOBODY  # sibling script: benchmarks/ is this script's sys.path[0]

import osptrack.run
from osptrack.run import AnalyzeOptions, analyze
from osptrack.target import parse_target
from osptrack.trace.strace import strace_command


def pip_install(prefix: list[str], wheel: Path, scratch: Path) -> float:
    target = scratch / "target"
    shutil.rmtree(target, ignore_errors=True)
    cmd = [*prefix, *NOBODY, "/usr/bin/python3", "-m", "pip", "install", "--no-index", "--no-deps"]
    cmd += ["--disable-pip-version-check", "--target", str(target), str(wheel)]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(scratch)}
    t0 = time.monotonic()
    subprocess.run(
        cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, timeout=300
    )
    return time.monotonic() - t0


def untraced_launcher(log: Path, *_: object, **__: object) -> list[str]:
    """Stands in for strace_command: an empty log, then bwrap as `nobody` (osptrack.run appends
    `-u nobody --` to the prefix, which the shell shifts away)."""
    script = f': > "{log}"; shift 3; exec {" ".join(NOBODY)} "$@"'
    return ["/bin/sh", "-c", script, "sh", "--"]


def analysis(wheel: Path, out: Path, traced: bool) -> tuple[float, float, float]:
    osptrack.run.strace_command = strace_command if traced else untraced_launcher  # type: ignore[assignment]
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.monotonic()
    outcome = analyze(
        parse_target("pypi", str(wheel)), AnalyzeOptions(timeout_s=300, deps_dirs=(wheel.parent,)), out
    )
    total = time.monotonic() - t0
    if set(outcome.statuses.values()) != {"completed"}:
        raise SystemExit(
            f"analysis did not complete ({'traced' if traced else 'untraced'}): {outcome.statuses}"
        )
    phases = json.loads((out / "run.json").read_text())["phases"]
    return total, phases["install"]["wall_s"], phases["import"]["wall_s"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--wheel", type=Path, default=CORPUS / "pypi" / "six" / "six-1.16.0-py2.py3-none-any.whl"
    )
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    wheel = args.wheel.resolve()
    rows: dict[str, list[tuple[float, ...]]] = {"bare": [], "strace": [], "sandbox": [], "full": []}
    with tempfile.TemporaryDirectory(prefix="osptrack-split-") as tmp:
        scratch = Path(tmp)
        scratch.chmod(0o777)  # nobody writes the target and pip's cache here
        for _ in range(args.repeat):
            rows["bare"].append((pip_install([], wheel, scratch),))
            rows["strace"].append((pip_install(strace_command(scratch / "trace.log"), wheel, scratch),))
            rows["sandbox"].append(analysis(wheel, scratch / "sandbox", traced=False))
            rows["full"].append(analysis(wheel, scratch / "full", traced=True))
    med = {k: [statistics.median(r[i] for r in v) for i in range(len(v[0]))] for k, v in rows.items()}
    bare = med["bare"][0]
    print(f"{wheel.name}, medians of {args.repeat}:")
    print(f"  bare pip install            {bare:.3f} s")
    print(f"  strace only                 {med['strace'][0]:.3f} s  ({med['strace'][0] / bare:.2f}x)")
    for key, label in (("sandbox", "analyze, no strace"), ("full", "analyze")):
        total, install, imp = med[key]
        print(
            f"  {label:<27} {total:.3f} s  (install phase {install:.3f} s = {install / bare:.2f}x; import phase {imp:.3f} s)"
        )


if __name__ == "__main__":
    main()
