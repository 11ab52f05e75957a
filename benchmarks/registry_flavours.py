"""The registry service's own cost for RubyGems, Packagist and crates.io, without the sandbox.

Packages are built from source in a temp folder (N per ecosystem, each with a ~64 KiB file of
random bytes, so hashing and copying show). One "run" asks for each package's index answer
(compact index `/info/` plus the Marshal gemspec, p2 metadata, sparse index file) and downloads
each archive over one keep-alive HTTP/1.1 connection, in three settings, alternated per repeat:

- deps-dir:   served from the folder (every archive's metadata read and hashed on first use)
- cold cache: online against a fake registry on loopback: fetched, hash-checked, written to an
              empty cache, served (the real registry's latency is not in this figure)
- warm cache: offline, the same files from the cache the cold run filled

    .venv/bin/python benchmarks/registry_flavours.py [--repeat 5] [--packages 30] [--quick]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "registry"))
sys.path.insert(0, str(ROOT / "benchmarks"))
from fake_ecosystems import FakeEcosystems  # noqa: E402

from osptrack.ecosystems.cratesio import pack_crate  # noqa: E402
from osptrack.ecosystems.packagist import pack_composer_zip  # noqa: E402
from osptrack.ecosystems.rubygems import gemspec_yaml, pack_gem  # noqa: E402
from osptrack.registry.cratesio import index_path  # noqa: E402
from osptrack.registry.service import RegistryConfig, RegistryService  # noqa: E402
from registry import client  # noqa: E402


def build(folder: Path, n: int, fake: FakeEcosystems) -> dict[str, list[str]]:
    """The packages, registered with the fake upstream too; per ecosystem the paths one run asks."""
    folder.mkdir(parents=True)
    paths: dict[str, list[str]] = {"crates.io": [], "packagist": [], "rubygems": []}
    for i in range(n):
        blob = os.urandom(64 << 10)
        name = f"bench-crate-{i}"
        toml = f'[package]\nname = "{name}"\nversion = "1.0.{i}"\nedition = "2021"\n\n[dependencies]\nserde = "1"\n'
        crate = pack_crate(folder, name, f"1.0.{i}", {"src/lib.rs": b"", "data.bin": blob}, toml)
        fake.crates[name] = [({"name": name, "vers": f"1.0.{i}", "deps": [], "features": {}}, crate)]
        paths["crates.io"] += [f"/crates/{index_path(name)}", f"/crates/dl/{name}/1.0.{i}"]
        pkg = f"bench/pkg{i}"
        manifest = {"name": pkg, "version": f"2.0.{i}", "require": {"php": ">=7"}}
        zipped = pack_composer_zip(folder, manifest, {"data.bin": blob})
        fake.composer[pkg] = [(manifest, zipped)]
        paths["packagist"] += [f"/packagist/p2/{pkg}.json", f"/packagist/dists/{pkg}/2.0.{i}.zip"]
        gem_name = f"bench-gem-{i}"
        gem = pack_gem(folder, gemspec_yaml(gem_name, f"3.0.{i}", ["data.bin"]), {"data.bin": blob})
        fake.gems[gem_name] = [(f"3.0.{i}", "", gem)]
        stem = f"{gem_name}-3.0.{i}"
        paths["rubygems"] += [
            f"/rubygems/info/{gem_name}",
            f"/rubygems/quick/Marshal.4.8/{stem}.gemspec.rz",
            f"/rubygems/gems/{stem}.gem",
        ]
    return paths


def timed(make: Callable[[], RegistryService], paths: list[str]) -> float:
    t0 = time.perf_counter()
    with make() as svc:
        _, bad = client(svc, paths)
    elapsed = time.perf_counter() - t0
    if bad:
        raise SystemExit(f"{bad} answers were not 200: the benchmark would measure errors")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--packages", type=int, default=30)
    parser.add_argument("--quick", action="store_true", help="2 repeats of 5 packages")
    args = parser.parse_args()
    repeat, n = (2, 5) if args.quick else (args.repeat, args.packages)
    tmp = Path(tempfile.mkdtemp(prefix="osptrack-bench-flavours-"))
    fake = FakeEcosystems().start()
    try:
        paths = build(tmp / "deps", n, fake)
        times: dict[tuple[str, str], list[float]] = {}
        for r in range(repeat):
            for eco, asked in paths.items():  # alternate the three settings within each repeat
                cache = tmp / f"cache-{eco}-{r}"
                runs = {
                    "deps-dir": lambda: RegistryService(eco, (tmp / "deps",), False, RegistryConfig(cache_root=tmp / "empty")),  # noqa: B023
                    "cold cache": lambda: RegistryService(eco, (), True, RegistryConfig(cache_root=cache, upstream=fake.upstream())),  # noqa: B023
                    "warm cache": lambda: RegistryService(eco, (), False, RegistryConfig(cache_root=cache)),  # noqa: B023
                }  # fmt: skip
                for setting, make in runs.items():
                    times.setdefault((eco, setting), []).append(timed(make, asked))
                shutil.rmtree(cache, ignore_errors=True)
        print(f"{n} packages per ecosystem (64 KiB of data each), {repeat} repeats, medians; load average "
              f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")  # fmt: skip
        print(f"{'ecosystem':<10} {'deps-dir':>10} {'cold cache':>11} {'warm cache':>11}")
        for eco in paths:
            row = [
                statistics.median(times[(eco, s)]) * 1000 for s in ("deps-dir", "cold cache", "warm cache")
            ]
            print(f"{eco:<10} {row[0]:>8.0f}ms {row[1]:>9.0f}ms {row[2]:>9.0f}ms")
    finally:
        fake.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
