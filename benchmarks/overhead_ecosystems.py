"""Overhead of `osptrack analyze` (install + import) for RubyGems, Packagist, crates.io and NuGet.

Same method as benchmarks/overhead.py, for the other ecosystems: alternately (a) the bare
toolchain steps on the host as `nobody` in a scratch HOME, no sandbox, no tracing: exactly the
argv and environment the ecosystem module gives the sandbox, with /root mapped to the scratch
folder; (b) osptrack's whole analysis. Prints medians and the ratio per ecosystem.

Packages: one benign artifact per ecosystem from the Debian-sourced extra corpus
(scripts/build_corpus_extra.py OUT_DIR), and for NuGet, which has no Debian source, a small
benign package assembled here with ilasm (a class library plus a build/.targets `Exec echo`).
The bare side runs them on the host by design: that is the comparison the figure is about.

    .venv/bin/python scripts/build_corpus_extra.py /tmp/osptrack-extra
    .venv/bin/python benchmarks/overhead_ecosystems.py --corpus /tmp/osptrack-extra [--repeat 3]
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

from osptrack import ecosystems
from osptrack.ecosystems.base import Layout
from osptrack.ecosystems.cratesio import SANDBOX_TOOLCHAIN, host_sysroot
from osptrack.ecosystems.nuget import MONO_CFG, pack_nupkg
from osptrack.run import HARNESS_DIR, AnalyzeOptions, analyze
from osptrack.target import PackageRef

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]
PICK = {"rubygems": "rack", "packagist": "composer/semver", "crates.io": "itoa"}

BENIGN_IL = """
.assembly extern mscorlib { .publickeytoken = (B7 7A 5C 56 19 34 E0 89) .ver 4:0:0:0 }
.assembly 'OsptrackBench' { .ver 1:0:0:0 }
.module 'OsptrackBench.dll'
.class public auto ansi beforefieldinit OsptrackBench.Value extends [mscorlib]System.Object { }
"""
BENIGN_TARGETS = """<?xml version="1.0" encoding="utf-8"?>
<Project xmlns="http://schemas.microsoft.com/developer/msbuild/2003">
  <Target Name="OsptrackBenchEcho" BeforeTargets="Build"><Exec Command="echo osptrack-benchmark" /></Target>
</Project>
"""


def nuget_package(folder: Path) -> Path:
    il = folder / "bench.il"
    il.write_text(BENIGN_IL)
    dll = folder / "OsptrackBench.dll"
    subprocess.run(["ilasm", "/dll", f"/output:{dll}", str(il)], check=True, capture_output=True)
    files = {
        "lib/net45/OsptrackBench.dll": dll.read_bytes(),
        "build/Osptrack.Bench.targets": BENIGN_TARGETS.encode(),
    }
    pkgs = folder / "pkgs"
    pkgs.mkdir(mode=0o755)
    return pack_nupkg(pkgs, "Osptrack.Bench", "1.0.0", files)


def targets(corpus: Path, scratch: Path, pick: dict[str, str]) -> list[tuple[str, str, str, Path]]:
    manifest = json.loads((corpus / "manifest.json").read_text())
    found = []
    for eco, name in pick.items():
        entry = next(e for e in manifest["packages"] if e["ecosystem"] == eco and e["name"] == name)
        found.append((eco, name, entry["version"], corpus / entry["archive"]))
    if shutil.which("ilasm"):
        found.append(("nuget", "Osptrack.Bench", "1.0.0", nuget_package(scratch)))
    return found


def host_path(text: str, home: Path) -> str:
    """A sandbox path as the bare run sees it."""
    sysroot = host_sysroot() or "/usr"
    text = text.replace(SANDBOX_TOOLCHAIN, sysroot).replace(MONO_CFG, "/etc")
    return text.replace("/input/harness", str(HARNESS_DIR)).replace("/root", str(home))


def bare(eco_name: str, name: str, version: str, archive: Path, home: Path) -> float:
    eco = ecosystems.get(eco_name)
    home.mkdir(mode=0o700)
    shutil.chown(home, "nobody", "nogroup")
    prepare = getattr(eco, "prepare_home", None)
    if prepare is not None:
        prepare(home, 65534, 65534)
    layout = Layout(
        name=name,
        version=version,
        archive=str(archive),
        deps=(str(archive.parent),),
        harness=str(HARNESS_DIR),
    )
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8", "TMPDIR": str(home)}
    env.update({k: host_path(v, home) for k, v in eco.env(layout, False).items()})
    cwd = host_path(getattr(eco, "chdir", lambda: "/root")(), home)
    t0 = time.monotonic()
    for phase in ("install", "import"):
        argv = [host_path(a, home) for a in eco.command(phase, layout, False) or []]
        subprocess.run(
            [*NOBODY, *argv],
            env=env,
            cwd=cwd,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=900,
        )
    return time.monotonic() - t0


def traced(eco_name: str, archive: Path, out: Path) -> float:
    t0 = time.monotonic()
    ref = PackageRef(eco_name, "", None, archive)
    outcome = analyze(ref, AnalyzeOptions(timeout_s=600, deps_dirs=(archive.parent,)), out)
    took = time.monotonic() - t0
    if set(outcome.statuses.values()) != {"completed"}:
        raise SystemExit(f"{eco_name} {archive.name}: analysis did not complete: {outcome.statuses}")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, required=True, help="OUT_DIR of scripts/build_corpus_extra.py")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", help="one ecosystem")
    parser.add_argument(
        "--pick", action="append", default=[], help="ECO=NAME from the corpus instead of the default"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="osptrack-bench-", dir="/var/tmp") as tmp:
        scratch = Path(tmp)
        scratch.chmod(0o755)
        rows = []
        pick = {**PICK, **dict(p.split("=", 1) for p in args.pick)}
        for eco_name, name, version, archive in targets(args.corpus.resolve(), scratch, pick):
            if args.only and eco_name != args.only:
                continue
            bare_s, traced_s = [], []
            for i in range(args.repeat):  # alternate, so drift hits both sides alike
                bare_s.append(bare(eco_name, name, version, archive, scratch / f"bare-{eco_name}-{i}"))
                traced_s.append(traced(eco_name, archive, scratch / f"run-{eco_name}-{i}"))
            b, t = statistics.median(bare_s), statistics.median(traced_s)
            rows.append((eco_name, f"{name}=={version}", b, t))
            print(
                f"{eco_name:10} {name}=={version:10} bare {b:6.2f}s  analyze {t:6.2f}s  ratio {t / b:4.2f}x  "
                f"(n={args.repeat}; bare {[round(x, 2) for x in bare_s]}, analyze {[round(x, 2) for x in traced_s]})",
                flush=True,
            )
        if rows:
            print(f"median ratio over ecosystems: {statistics.median(t / b for _, _, b, t in rows):.2f}x")


if __name__ == "__main__":
    main()
