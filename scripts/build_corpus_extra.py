#!/usr/bin/env python3
"""Pack real library sources that Debian ships into .crate, .gem and Composer artifacts.

Usage: build_corpus_extra.py OUT_DIR [--analyze RUNS_DIR] [--phases install,import]

Lawful offline sources on these machines (the registries themselves are unreachable):
- crates.io  /usr/share/cargo/registry/<name>-<version>/ from `librust-*-dev`: the crate's
             own files with its cargo-normalised Cargo.toml; packed back into a .crate.
- rubygems   /usr/share/rubygems-integration/all/gems/<name>-<version>/ with the gemspec stub
             Debian writes next to it. The stub is Ruby; it is *parsed* here (name, version,
             require_paths, executables, runtime dependencies), never evaluated.
- packagist  /usr/share/php/<Namespace>/ from `php-*`. Debian drops composer.json, so one is
             written from the table below (composer name, PSR-4 namespace, requirements) and
             the Debian package version; Debian's generated autoload.php is left out.

Only folders are read and archives written under OUT_DIR (never into the repository); nothing
from the packages runs on the host. `--analyze` then runs each artifact through `osptrack
analyze` (the sandbox) with OUT_DIR/<ecosystem> as --deps-dir and prints how many completed.
Install what is missing with: apt-get install -y <the packages named in DEBIAN_PACKAGES>.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import subprocess
import sys
from pathlib import Path

from osptrack.ecosystems.cratesio import pack_crate
from osptrack.ecosystems.packagist import pack_composer_zip
from osptrack.ecosystems.rubygems import gemspec_yaml, pack_gem
from osptrack.jsonio import atomic_write_json

CARGO_REGISTRY = Path("/usr/share/cargo/registry")
RUBY_GEMS = Path("/usr/share/rubygems-integration/all/gems")
RUBY_SPECS = Path("/usr/share/rubygems-integration/all/specifications")
PHP_ROOT = Path("/usr/share/php")

DEBIAN_PACKAGES = (
    "librust-itoa-dev librust-cfg-if-dev librust-autocfg-dev librust-either-dev librust-lazy-static-dev "
    "librust-scopeguard-dev librust-static-assertions-dev librust-hex-dev librust-fnv-dev librust-byteorder-dev "
    "librust-unicode-ident-dev librust-proc-macro2-dev librust-quote-dev librust-libc-dev librust-memchr-dev "
    "librust-bitflags-dev librust-ryu-dev librust-semver-dev "
    "ruby-rack ruby-thor ruby-rainbow ruby-diff-lcs ruby-concurrent ruby-i18n ruby-public-suffix "
    "ruby-addressable ruby-tzinfo "
    "php-psr-log php-psr-container php-psr-cache php-psr-simple-cache php-psr-http-message "
    "php-psr-event-dispatcher php-composer-semver php-composer-spdx-licenses php-composer-ca-bundle "
    "php-composer-pcre php-composer-xdebug-handler php-react-promise php-symfony-polyfill-mbstring"
)

# composer name -> (folder under /usr/share/php, PSR-4 namespace, requirements)
PHP_PACKAGES: dict[str, tuple[str, str, dict[str, str]]] = {
    "psr/log": ("Psr/Log", "Psr\\Log\\", {}),
    "psr/container": ("Psr/Container", "Psr\\Container\\", {}),
    "psr/cache": ("Psr/Cache", "Psr\\Cache\\", {}),
    "psr/simple-cache": ("Psr/SimpleCache", "Psr\\SimpleCache\\", {}),
    "psr/http-message": ("Psr/Http/Message", "Psr\\Http\\Message\\", {}),
    "psr/event-dispatcher": ("Psr/EventDispatcher", "Psr\\EventDispatcher\\", {}),
    "composer/semver": ("Composer/Semver", "Composer\\Semver\\", {}),
    "composer/spdx-licenses": ("Composer/Spdx", "Composer\\Spdx\\", {}),
    "composer/ca-bundle": ("Composer/CaBundle", "Composer\\CaBundle\\", {}),
    "composer/pcre": ("Composer/Pcre", "Composer\\Pcre\\", {}),
    "composer/xdebug-handler": (
        "Composer/XdebugHandler",
        "Composer\\XdebugHandler\\",
        {"psr/log": "*", "composer/pcre": "*"},
    ),
    "react/promise": ("React/Promise", "React\\Promise\\", {}),
    "symfony/polyfill-mbstring": ("Symfony/Polyfill/Mbstring", "Symfony\\Polyfill\\Mbstring\\", {}),
}
AUTOLOAD_FILES = ("functions_include.php", "bootstrap.php")
SKIP_CRATES = ("compiler_builtins-", "rustc-std-workspace-core-")  # toolchain-internal, not libraries


def debian_version(path: Path) -> tuple[str, str] | None:
    """(Debian package, upstream version) owning `path`, via dpkg's own database."""
    try:
        owner = subprocess.run(["dpkg", "-S", str(path)], capture_output=True, text=True, check=True).stdout
        pkg = owner.split(":", 1)[0].split(",")[0].strip()
        full = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    upstream = full.split(":", 1)[-1].rsplit("-", 1)[0]
    return pkg, re.sub(r"[+~](dfsg|ds|really).*$", "", upstream)


def read_tree(folder: Path, skip: tuple[str, ...] = ()) -> dict[str, bytes]:
    files = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if (
            path.is_file()
            and not path.is_symlink()
            and not any(rel == s or rel.startswith(s + "/") for s in skip)
        ):
            files[rel] = path.read_bytes()
    return files


def build_crates(out: Path) -> list[dict[str, object]]:
    entries = []
    for folder in sorted(CARGO_REGISTRY.iterdir()) if CARGO_REGISTRY.is_dir() else ():
        if folder.name.startswith(SKIP_CRATES) or not (folder / "Cargo.toml").is_file():
            continue
        name, _, version = folder.name.rpartition("-")
        files = read_tree(folder, skip=(".cargo-checksum.json", "debian", "Cargo.toml"))
        crate = pack_crate(out, name, version, files, (folder / "Cargo.toml").read_text())
        entries.append(_entry("crates.io", name, version, crate, folder))
    return entries


_SPEC_STR = r'\s*=\s*"([^"]+)"(?:\.freeze)?'


def parse_gemspec_stub(text: str) -> dict[str, object] | None:
    """The fields `gem install` needs, from Debian's generated gemspec stub, by pattern only."""
    name = re.search(r"s\.name" + _SPEC_STR, text)
    version = re.search(r"s\.version" + _SPEC_STR, text)
    if not name or not version:
        return None

    def strings(field: str) -> tuple[str, ...]:
        found = re.search(rf"s\.{field}\s*=\s*\[([^\]]*)\]", text)
        return tuple(re.findall(r'"([^"]+)"', found.group(1))) if found else ()

    deps = tuple(
        (dep, ", ".join(re.findall(r'"([^"]+)"', reqs)) or ">= 0")
        for dep, reqs in re.findall(r"add_runtime_dependency\(%q<([^>]+)>(?:\.freeze)?,\s*\[([^\]]*)\]", text)
    )
    return {
        "name": name.group(1),
        "version": version.group(1),
        "require_paths": strings("require_paths") or ("lib",),
        "executables": strings("executables"),
        "dependencies": deps,
        "summary": (re.search(r"s\.summary" + _SPEC_STR, text) or [None, ""])[1],
    }


def build_gems(out: Path) -> list[dict[str, object]]:
    entries = []
    for folder in sorted(RUBY_GEMS.iterdir()) if RUBY_GEMS.is_dir() else ():
        stub = RUBY_SPECS / f"{folder.name}.gemspec"
        spec = parse_gemspec_stub(stub.read_text()) if stub.is_file() else None
        if spec is None:
            continue
        files = read_tree(folder)
        if not any(f.endswith(".rb") for f in files):
            continue
        deps = tuple((d, r.split(", ")[0]) for d, r in spec["dependencies"])  # type: ignore[attr-defined]
        meta = gemspec_yaml(
            str(spec["name"]),
            str(spec["version"]),
            sorted(files),
            # Debian moves some executables to /usr/bin; declare only those the gem carries.
            executables=tuple(e for e in spec["executables"] if f"bin/{e}" in files),  # type: ignore[attr-defined]
            require_paths=tuple(spec["require_paths"]),  # type: ignore[arg-type]
            dependencies=deps,
            summary=str(spec["summary"]),
        )
        gem = pack_gem(out, meta, files)
        entries.append(_entry("rubygems", str(spec["name"]), str(spec["version"]), gem, folder))
    return entries


def build_composer(out: Path) -> list[dict[str, object]]:
    entries = []
    for name, (rel, namespace, requires) in PHP_PACKAGES.items():
        folder = PHP_ROOT / rel
        owner = debian_version(folder) if folder.is_dir() else None
        if owner is None:
            continue
        files = {
            f"src/{k}": v for k, v in read_tree(folder, skip=("autoload.php",)).items() if k.endswith(".php")
        }
        autoload: dict[str, object] = {"psr-4": {namespace: "src/"}}
        extra_files = [f"src/{f}" for f in AUTOLOAD_FILES if f"src/{f}" in files]
        if extra_files:
            autoload["files"] = extra_files
        manifest = {
            "name": name,
            "version": owner[1],
            "description": f"{name} as shipped by Debian's {owner[0]}",
            "type": "library",
            "require": requires,
            "autoload": autoload,
        }
        archive = pack_composer_zip(out, manifest, files)
        entries.append(_entry("packagist", name, owner[1], archive, folder))
    return entries


def _entry(eco: str, name: str, version: str, archive: Path, source: Path) -> dict[str, object]:
    owner = debian_version(source)
    return {
        "ecosystem": eco,
        "name": name,
        "version": version,
        "archive": f"{archive.parent.name}/{archive.name}",
        "sha256": hashlib.sha256(archive.read_bytes()).hexdigest(),
        "source": f"debian:{owner[0]}" if owner else str(source),
    }


def analyze_all(out: Path, entries: list[dict[str, object]], runs: Path, phases: tuple[str, ...]) -> int:
    from osptrack.errors import BadInput
    from osptrack.run import AnalyzeOptions, analyze
    from osptrack.target import PackageRef

    completed = 0
    for entry in entries:
        eco = str(entry["ecosystem"])
        archive = out / str(entry["archive"])
        ref = PackageRef(eco, str(entry["name"]), None, archive)
        options = AnalyzeOptions(phases=phases, timeout_s=300, deps_dirs=(archive.parent,))
        try:
            outcome = analyze(ref, options, runs / f"{eco}-{archive.stem}")
            statuses = outcome.statuses
        except BadInput as exc:
            statuses = {"error": str(exc)}
        ok = all(statuses.get(p) == "completed" for p in phases)
        completed += ok
        print(
            f"{'ok  ' if ok else 'FAIL'} {eco:10} {entry['name']}=={entry['version']}  {statuses}", flush=True
        )
    print(f"{completed}/{len(entries)} completed {'+'.join(phases)}")
    return completed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder for the artifacts (not inside the repository)")
    parser.add_argument("--analyze", type=Path, help="run each artifact through the sandbox into this folder")
    parser.add_argument("--phases", default="install,import")
    parser.add_argument("--only", help="analyse only this ecosystem's artifacts")
    args = parser.parse_args()
    out: Path = args.out.resolve()
    if Path(__file__).resolve().parents[1] in (out, *out.parents):
        print("build_corpus_extra: OUT_DIR must be outside the repository", file=sys.stderr)
        return 2
    entries: list[dict[str, object]] = []
    for eco, build in (("crates.io", build_crates), ("rubygems", build_gems), ("packagist", build_composer)):
        folder = out / eco
        folder.mkdir(parents=True, exist_ok=True)
        entries += build(folder)
    if not entries:
        print(
            f"build_corpus_extra: no Debian sources found; apt-get install -y {DEBIAN_PACKAGES}",
            file=sys.stderr,
        )
        return 2
    atomic_write_json(
        out / "manifest.json", {"packages": entries, "debian_packages": DEBIAN_PACKAGES.split()}
    )
    counts = {
        e: sum(1 for x in entries if x["ecosystem"] == e) for e in ("crates.io", "rubygems", "packagist")
    }
    print(f"build_corpus_extra: {len(entries)} artifacts in {out} {counts}")
    if args.analyze:
        phases = tuple(p.strip() for p in args.phases.split(",") if p.strip())
        chosen = [e for e in entries if not args.only or e["ecosystem"] == args.only]
        analyze_all(out, chosen, args.analyze.resolve(), phases)
    return 0


if __name__ == "__main__":
    sys.exit(main())
