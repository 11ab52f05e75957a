"""Where the analysis's overhead goes, for one PyPI wheel: namespaces, tracer, sandbox, and the rest.

--repeat rounds; each round runs every side once, in an order rotated from round to round, and
the medians are printed with the load average before and after. Every floor installs the same
wheel with the same pip flags, into a folder on tmpfs, as host `nobody`:

1. bare: `pip install --target` on the host, no namespaces, no tracing;
2. namespaces only: the same inside bwrap's user, pid and network namespaces (the ones a phase
   gets), with / read-only and the target on tmpfs; no tracing;
3. strace only: 2 under `strace_command` with the run's flags (`-u nobody` starting bwrap, as the
   run does), the log written where a run writes its logs (the work root): the floor of tracing
   itself, in the same namespaces and filesystem as the real run;
4. sandbox only: `osptrack.run.analyze` with strace swapped for a launcher that drops to
   `nobody` and leaves an empty log (namespaces, fake network, cgroups, persona, bwrap; no tracing);
5. full: `osptrack.run.analyze` as it is.

For 4 and 5 the install phase's own wall time (run.json) is what compares with 1-3; their
totals include the import phase and the run's set-up and parsing. Wheels only, so no package
build code runs on the host; the bare sides run the corpus's known-benign wheel there by design,
as benchmarks/overhead.py does.

    .venv/bin/python benchmarks/overhead_split.py [--wheel PATH] [--repeat 5 | --quick] [--json PATH]
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
import time
from collections.abc import Callable
from pathlib import Path

from overhead import CORPUS, NOBODY, filesystem, loadavg, tmpfs_root  # sibling: benchmarks/ is sys.path[0]

SIDES = ("bare", "namespaces", "strace", "sandbox", "full")


def pip_argv(wheel: Path, target: Path) -> list[str]:
    return [
        "/usr/bin/python3",
        "-m",
        "pip",
        "install",
        "--no-index",
        "--no-deps",
        "--disable-pip-version-check",
        "--target",
        str(target),
        str(wheel),
    ]


def in_namespaces(scratch: Path, wheel: Path, command: list[str]) -> list[str]:
    """bwrap with a phase's namespaces (user, pid, net, ipc, uts), / read-only, scratch on tmpfs."""
    return [
        "bwrap",
        "--unshare-user",
        "--unshare-pid",
        "--unshare-net",
        "--unshare-ipc",
        "--unshare-uts",
        "--die-with-parent",
        "--ro-bind",
        "/",
        "/",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--tmpfs",
        "/tmp",
        "--bind",
        str(scratch),
        str(scratch),
        "--ro-bind",
        str(wheel.parent),
        str(wheel.parent),
        "--",
        *command,
    ]


def timed_install(argv: list[str], scratch: Path) -> float:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(scratch), "TMPDIR": str(scratch)}
    t0 = time.monotonic()
    subprocess.run(
        argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, timeout=300
    )
    return time.monotonic() - t0


def untraced_launcher(log: Path, *_: object, **__: object) -> list[str]:
    """Stands in for strace_command: an empty log, then bwrap as `nobody` (osptrack.run appends
    `-u nobody --` to the prefix, which the shell shifts away)."""
    script = f': > "{log}"; shift 3; exec {" ".join(NOBODY)} "$@"'
    return ["/bin/sh", "-c", script, "sh", "--"]


def analysis(wheel: Path, out: Path, traced: bool) -> tuple[float, float, float]:
    import osptrack.run
    from osptrack.run import AnalyzeOptions, analyze
    from osptrack.target import parse_target
    from osptrack.trace.strace import strace_command

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
    shutil.rmtree(out, ignore_errors=True)
    return total, phases["install"]["wall_s"], phases["import"]["wall_s"]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--wheel", type=Path, default=CORPUS / "pypi" / "six" / "six-1.16.0-py2.py3-none-any.whl"
    )
    parser.add_argument("--repeat", type=int, default=5, help="rounds (default 5)")
    parser.add_argument("--quick", action="store_true", help="2 rounds")
    parser.add_argument("--json", type=Path, help="write medians, samples and load averages here")
    args = parser.parse_args()
    if not args.wheel.is_file():
        print(f"skipped: {args.wheel} not found (the shared corpus, ../shared, is absent?)")
        return 0
    if os.geteuid() != 0:
        print("skipped: the sandbox sides need root")
        return 0
    from osptrack.sandbox.runner import work_root
    from osptrack.trace.strace import strace_command

    repeat = 2 if args.quick else args.repeat
    wheel = args.wheel.resolve()
    load_before = loadavg()
    samples: dict[str, list[tuple[float, ...]]] = {s: [] for s in SIDES}
    logs = Path(tempfile.mkdtemp(prefix="split-logs-", dir=work_root()))
    out_root = Path(tempfile.mkdtemp(prefix="osptrack-split-out-"))
    try:
        with tmpfs_root() as fast:
            scratch = fast / "scratch"
            scratch.mkdir(mode=0o777)
            scratch.chmod(0o777)  # nobody writes the target here
            logs.chmod(0o777)  # strace writes the log as root; the tracee is nobody

            def fresh() -> Path:
                shutil.rmtree(scratch / "target", ignore_errors=True)
                return scratch / "target"

            def strace_prefix() -> list[str]:
                prefix = strace_command(logs / "install.strace")
                return [*prefix[:-1], "-u", "nobody", "--"]  # as osptrack.run._traced starts bwrap

            sides: dict[str, Callable[[], tuple[float, ...]]] = {
                "bare": lambda: (timed_install([*NOBODY, *pip_argv(wheel, fresh())], scratch),),
                "namespaces": lambda: (
                    timed_install(
                        [*NOBODY, *in_namespaces(scratch, wheel, pip_argv(wheel, fresh()))], scratch
                    ),
                ),
                "strace": lambda: (
                    timed_install(
                        [*strace_prefix(), *in_namespaces(scratch, wheel, pip_argv(wheel, fresh()))], scratch
                    ),
                ),
                "sandbox": lambda: analysis(wheel, out_root / "sandbox", traced=False),
                "full": lambda: analysis(wheel, out_root / "full", traced=True),
            }
            print(f"target folder on {fast} ({filesystem(fast)}); strace log in {logs} ({filesystem(logs)})")
            print(f"load average before: {load_before}, {os.cpu_count()} cores")
            for i in range(repeat):
                k = i % len(SIDES)
                for side in SIDES[k:] + SIDES[:k]:
                    samples[side].append(sides[side]())
    finally:
        shutil.rmtree(logs, ignore_errors=True)
        shutil.rmtree(out_root, ignore_errors=True)
    load_after = loadavg()
    med = {k: [statistics.median(r[i] for r in v) for i in range(len(v[0]))] for k, v in samples.items()}
    bare = med["bare"][0]
    print(f"{wheel.name}, medians of {repeat} rounds (rotated order):")
    print(f"  bare pip install (tmpfs)         {bare:.3f} s")
    print(
        f"  namespaces only (bwrap)          {med['namespaces'][0]:.3f} s  ({med['namespaces'][0] / bare:.2f}x)"
    )
    print(f"  strace only (in the namespaces)  {med['strace'][0]:.3f} s  ({med['strace'][0] / bare:.2f}x)")
    for key, label in (("sandbox", "analyze, no strace"), ("full", "analyze")):
        total, install, imp = med[key]
        print(
            f"  {label:<32} {total:.3f} s  (install phase {install:.3f} s = {install / bare:.2f}x; import phase {imp:.3f} s)"
        )
    print(f"load average before {load_before}, after {load_after}")
    if args.json:
        result = {
            "wheel": wheel.name,
            "repeat": repeat,
            "load_before": load_before,
            "load_after": load_after,
            "median_s": {"bare": bare, **{k: med[k][0] for k in ("namespaces", "strace")}}
            | {f"{k}_total": med[k][0] for k in ("sandbox", "full")}
            | {f"{k}_install_phase": med[k][1] for k in ("sandbox", "full")}
            | {f"{k}_import_phase": med[k][2] for k in ("sandbox", "full")},
            "samples_s": samples,
        }
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
