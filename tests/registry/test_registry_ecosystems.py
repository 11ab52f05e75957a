"""crates.io's sparse index, the Composer repository and the gem source of the registry service.

Without a sandbox: the pages, the files, the cache, the upstream (a fake registry on loopback).
With one (marked `sandbox`): cargo and composer resolve a dependency that only the registry has,
(and gem), and a missing one is named in run.json. Every package is built from source in tmp_path.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_ecosystems import FakeEcosystems

from builders import require_toolchain
from osptrack.ecosystems.cratesio import pack_crate
from osptrack.ecosystems.packagist import pack_composer_zip
from osptrack.ecosystems.rubygems import gemspec_yaml, pack_gem
from osptrack.registry.cache import ContentCache
from osptrack.registry.cratesio import index_entry, index_path
from osptrack.registry.packagist import expand_minified
from osptrack.registry.service import RegistryConfig, RegistryService
from osptrack.registry.upstream import Upstream, UpstreamError
from osptrack.run import AnalyzeOptions, analyze
from osptrack.target import parse_target

DEP_TOML = """[package]
name = "osptrack_dep"
version = "0.2.1"
edition = "2021"
links = "osptrackdep"

[dependencies]
serde = { version = "1.0", default-features = false, features = ["derive"], optional = true }
rand_alias = { package = "rand", version = "0.8" }

[target.'cfg(unix)'.dependencies]
libc = "0.2"

[build-dependencies]
cc = "1"

[features]
default = ["dep:serde"]
"""


def service(tmp_path: Path, eco: str, deps: tuple[Path, ...] = (), online: bool = False,
            upstream: Upstream | None = None) -> RegistryService:  # fmt: skip
    config = RegistryConfig(cache_root=tmp_path / "cache", upstream=upstream or Upstream())
    return RegistryService(eco, deps, online, config)


def get(svc: RegistryService, path: str) -> tuple[int, bytes]:
    r = svc.route("GET", path, {})
    return r.status, (r.path.read_bytes() if r.path else r.body)


def crate_dep(folder: Path, name: str = "osptrack_dep", version: str = "0.2.1", toml: str = DEP_TOML) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return pack_crate(folder, name, version, {"src/lib.rs": b"pub fn dep() -> u32 { 2 }\n"}, toml)


def composer_dep(folder: Path, name: str = "osptrack/dep", version: str = "1.2.0") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    manifest = {
        "name": name,
        "version": version,
        "autoload": {"files": ["dep.php"]},
        "require": {"php": ">=7"},
    }
    return pack_composer_zip(folder, manifest, {"dep.php": b"<?php function osptrack_dep() { return 2; }\n"})


# ------------------------------------------------------------------------------- crates.io


def test_index_paths_follow_cargos_layout() -> None:
    assert [index_path(n) for n in ("a", "ab", "abc", "Serde")] == ["1/a", "2/ab", "3/a/abc", "se/rd/serde"]


def test_index_entry_carries_deps_kinds_targets_renames_and_v2_features() -> None:
    import tomllib

    entry = index_entry(tomllib.loads(DEP_TOML))
    assert entry is not None
    deps = {d["name"]: d for d in entry["deps"]}
    assert deps["serde"] == {"name": "serde", "req": "1.0", "features": ["derive"], "optional": True,
                             "default_features": False, "target": None, "kind": "normal"}  # fmt: skip
    assert deps["rand_alias"]["package"] == "rand"
    assert deps["libc"]["target"] == "cfg(unix)" and deps["cc"]["kind"] == "build"
    assert (
        entry["features2"] == {"default": ["dep:serde"]}
        and entry["v"] == 2
        and entry["links"] == "osptrackdep"
    )


def test_sparse_index_serves_deps_dir_crate_with_cksum_and_download(tmp_path: Path) -> None:
    crate = crate_dep(tmp_path / "deps")
    with service(tmp_path, "crates.io", (tmp_path / "deps",)) as svc:
        status, config = get(svc, "/crates/config.json")
        assert status == 200 and "{crate}" in json.loads(config)["dl"]
        status, index = get(svc, "/crates/os/pt/osptrack-dep")  # - and _ are one crate name
        assert status == 200
        (line,) = [json.loads(x) for x in index.splitlines()]
        assert line["name"] == "osptrack_dep" and line["vers"] == "0.2.1"
        assert line["cksum"] == hashlib.sha256(crate.read_bytes()).hexdigest()
        status, data = get(svc, "/crates/dl/osptrack_dep/0.2.1")
        assert status == 200 and data == crate.read_bytes()
        assert get(svc, "/crates/ab/se/absent")[0] == 404
        report = svc.report()
    assert report["missing"] == ["absent"]
    assert [(c["name"], c["source"]) for c in report["closure"] if c["source"] != "missing"] == [
        ("osptrack-dep", "deps-dir")
    ]


# ------------------------------------------------------------------------------- Packagist


def test_composer_repository_lists_deps_dir_zip_with_shasum(tmp_path: Path) -> None:
    zipped = composer_dep(tmp_path / "deps")
    with service(tmp_path, "packagist", (tmp_path / "deps",)) as svc:
        status, root = get(svc, "/packagist/packages.json")
        assert status == 200 and json.loads(root)["metadata-url"] == "/packagist/p2/%package%.json"
        status, meta = get(svc, "/packagist/p2/osptrack/dep.json")
        assert status == 200
        (version,) = json.loads(meta)["packages"]["osptrack/dep"]
        assert version["version"] == "1.2.0" and version["require"] == {"php": ">=7"}
        assert version["dist"]["shasum"] == hashlib.sha1(zipped.read_bytes()).hexdigest()
        dist_path = version["dist"]["url"].split("pkgmirror.internal.lan", 1)[1]
        assert get(svc, dist_path) == (200, zipped.read_bytes())
        assert get(svc, "/packagist/p2/osptrack/dep~dev.json")[0] == 200  # no dev branches, no miss
        assert get(svc, "/packagist/p2/other/absent.json")[0] == 404
        report = svc.report()
    assert report["missing"] == ["other/absent"]


def test_minified_metadata_is_expanded_with_unset() -> None:
    entries = expand_minified([{"name": "a/b", "version": "2.0", "require": {"x/y": "1"}}, {"version": "1.0", "require": "__unset"}])  # fmt: skip
    assert entries == [
        {"name": "a/b", "version": "2.0", "require": {"x/y": "1"}},
        {"name": "a/b", "version": "1.0"},
    ]


# ------------------------------------------------------------------------------- RubyGems


def gem(folder: Path, name: str = "osptrack-dep-gem", version: str = "1.1.0",
        deps: tuple[tuple[str, str], ...] = ()) -> Path:  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    lib = f"lib/{name.replace('-', '_')}.rb"
    return pack_gem(
        folder, gemspec_yaml(name, version, [lib], dependencies=deps), {lib: b"OSPTRACK_DEP = 1\n"}
    )


def test_gem_source_serves_compact_index_marshal_spec_and_gem(tmp_path: Path) -> None:
    dep = gem(tmp_path / "deps", "osptrack-dep-gem", "1.1.0", (("json", "~> 2.0"),))
    with service(tmp_path, "rubygems", (tmp_path / "deps",)) as svc:
        assert get(svc, "/rubygems/")[0] == 200  # gem takes a 200 here as "compact index"
        status, info = get(svc, "/rubygems/info/osptrack-dep-gem")
        sha = hashlib.sha256(dep.read_bytes()).hexdigest()
        assert (status, info.decode()) == (
            200,
            f"---\n1.1.0 json:~> 2.0|checksum:{sha},ruby:>= 0,rubygems:>= 0\n",
        )
        status, rz = get(svc, "/rubygems/quick/Marshal.4.8/osptrack-dep-gem-1.1.0.gemspec.rz")
        assert status == 200 and rz
        assert get(svc, "/rubygems/gems/osptrack-dep-gem-1.1.0.gem") == (200, dep.read_bytes())
        status, empty = get(svc, "/rubygems/info/absent-gem")  # gem 3.3 gives up the index on a 404
        assert (status, empty) == (200, b"---\n")
        assert svc.report()["missing"] == ["absent-gem"]
    if shutil.which("ruby"):  # the specification osptrack wrote, read back by RubyGems itself
        script = ('require "zlib"; s = Marshal.load(Zlib::Inflate.inflate(STDIN.read)); '
                  'print [s.full_name, s.dependencies.map(&:to_s)].inspect')  # fmt: skip
        out = subprocess.run(["ruby", "-e", script], input=rz, capture_output=True, check=True, timeout=60)
        assert out.stdout.decode() == '["osptrack-dep-gem-1.1.0", ["json (~> 2.0)"]]'


# ------------------------------------------------------------------------------- online


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeEcosystems]:
    reg = FakeEcosystems()
    crate = crate_dep(
        tmp_path / "upstream", "upcrate", "1.0.0", '[package]\nname = "upcrate"\nversion = "1.0.0"\n'
    )
    reg.crates["upcrate"] = [({"name": "upcrate", "vers": "1.0.0", "deps": [], "features": {}}, crate)]
    zipped = composer_dep(tmp_path / "upstream", "up/pkg", "3.1.0")
    reg.composer["up/pkg"] = [({"name": "up/pkg", "version": "3.1.0"}, zipped)]
    reg.gems["upgem"] = [("2.0.0", "", gem(tmp_path / "upstream", "upgem", "2.0.0"))]
    reg.start()
    yield reg
    reg.stop()


PAGES = {"crates.io": ("/crates/3/u/upc", "/crates/up/cr/upcrate", "/crates/dl/upcrate/1.0.0"),
         "packagist": (None, "/packagist/p2/up/pkg.json", "/packagist/dists/up/pkg/3.1.0.zip"),
         "rubygems": (None, "/rubygems/info/upgem", "/rubygems/gems/upgem-2.0.0.gem")}  # fmt: skip
MALFORMED = {"crates.io": "not JSON", "packagist": "not JSON", "rubygems": "not a compact index"}
ECOSYSTEMS = sorted(PAGES)


@pytest.mark.parametrize("eco", ECOSYSTEMS)
def test_online_miss_is_fetched_checked_cached_then_served_offline(
    tmp_path: Path, fake: FakeEcosystems, eco: str
) -> None:
    _, page, file = PAGES[eco]
    with service(tmp_path, eco, online=True, upstream=fake.upstream()) as svc:
        assert get(svc, page)[0] == 200
        status, data = get(svc, file)
        assert status == 200 and data
        report = svc.report()
    assert report["errors"] == [] and [c["source"] for c in report["closure"]] == ["upstream"]
    asked = {
        "crates.io": ("/index/", "/dl/"),
        "packagist": ("/packagist/p2/", "/zips/"),
        "rubygems": ("/rubygems/",),
    }
    assert fake.hits and all(h.startswith(asked[eco]) for h in fake.hits), fake.hits
    with service(tmp_path, eco) as svc:  # offline, same cache
        status, listing = get(svc, page)
        assert status == 200
        sha = hashlib.sha256(data).hexdigest()
        if eco == "crates.io":
            assert json.loads(listing)["cksum"] == sha
        if eco == "rubygems":
            assert f"checksum:{sha}" in listing.decode()
        assert get(svc, file) == (200, data)
        assert [c["source"] for c in svc.report()["closure"]] == ["cache"]


@pytest.mark.parametrize("mode", ["malformed", "truncated", "badhash"])
@pytest.mark.parametrize("eco", ECOSYSTEMS)
def test_bad_upstream_answer_gives_one_line_and_caches_nothing(
    tmp_path: Path, fake: FakeEcosystems, eco: str, mode: str
) -> None:
    fake.mode = mode
    _, page, file = PAGES[eco]
    with service(tmp_path, eco, online=True, upstream=fake.upstream()) as svc:
        status, _ = get(svc, page)
        if mode == "malformed":
            assert status == (200 if eco == "rubygems" else 404)  # gem hears an empty list
        else:
            assert status == 200
            assert get(svc, file)[0] == 502
        errors = svc.report()["errors"]
    assert len(errors) == 1 and "\n" not in errors[0], errors
    assert {"malformed": MALFORMED[eco], "truncated": "truncated", "badhash": "does not match"}[
        mode
    ] in errors[0]
    assert ContentCache(tmp_path / "cache").entries() == []


def test_a_redirect_away_from_the_registry_hosts_is_refused(tmp_path: Path) -> None:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from threading import Thread

    class Redirect(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            self.send_response(302)
            self.send_header("Location", "https://evil.example/x.zip")
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    Thread(target=server.serve_forever, daemon=True).start()
    try:
        up = Upstream(allowed_hosts=frozenset({"127.0.0.1"}))
        with pytest.raises(UpstreamError, match="refusing https://evil.example"):
            up.get(f"http://127.0.0.1:{server.server_address[1]}/zipball")
    finally:
        server.shutdown()
        server.server_close()


# ------------------------------------------------------------------------------- in the sandbox


def analyze_run(tmp_path: Path, eco: str, archive: Path, deps: tuple[Path, ...]) -> tuple[dict, str]:
    options = AnalyzeOptions(timeout_s=240, deps_dirs=deps, phases=("install",),
                             registry=RegistryConfig(cache_root=tmp_path / "cache"))  # fmt: skip
    out = tmp_path / "run"
    outcome = analyze(parse_target(eco, str(archive)), options, out)
    return json.loads((out / "run.json").read_text()), outcome.statuses["install"]


@pytest.mark.sandbox
def test_cargo_resolves_a_dependency_only_the_registry_has_and_names_a_missing_one(tmp_path: Path) -> None:
    require_toolchain("crates.io")
    dep_toml = '[package]\nname = "osptrack-only-dep"\nversion = "0.3.0"\nedition = "2021"\n'
    crate_dep(tmp_path / "deps", "osptrack-only-dep", "0.3.0", dep_toml)
    toml = ('[package]\nname = "osptrack-uses-dep"\nversion = "0.1.0"\nedition = "2021"\n\n'
            '[dependencies]\nosptrack-only-dep = "0.3"\n')  # fmt: skip
    files = {"src/lib.rs": b"pub fn v() -> u32 { osptrack_only_dep::dep() }\n"}
    crate = pack_crate(tmp_path, "osptrack-uses-dep", "0.1.0", files, toml)
    info, status = analyze_run(tmp_path, "crates.io", crate, (tmp_path / "deps",))
    assert status == "completed", info["phases"]["install"]
    sources = {c["name"]: c["source"] for c in info["registry"]["closure"]}
    assert sources == {"osptrack-uses-dep": "deps-dir", "osptrack-only-dep": "deps-dir"}
    assert info["registry"]["url"] == "http://pkgmirror.internal.lan/crates/"

    broken = tmp_path / "broken"
    broken.mkdir()
    toml = toml.replace('osptrack-only-dep = "0.3"', 'osptrack-absent-dep = "1"').replace(
        "uses-dep", "needs-absent"
    )
    crate = pack_crate(broken, "osptrack-needs-absent", "0.1.0", {"src/lib.rs": b""}, toml)
    info, status = analyze_run(broken, "crates.io", crate, ())
    assert status == "error_analysis"
    assert info["registry"]["missing"] == ["osptrack-absent-dep"]


@pytest.mark.sandbox
def test_composer_resolves_a_dependency_only_the_registry_has_and_names_a_missing_one(tmp_path: Path) -> None:
    require_toolchain("packagist")
    composer_dep(tmp_path / "deps", "osptrack/only-dep", "1.2.0")
    manifest = {"name": "osptrack/uses-dep", "version": "0.1.0", "require": {"osptrack/only-dep": "^1.0"}}
    pkg = pack_composer_zip(tmp_path, manifest, {"src.php": b"<?php\n"})
    info, status = analyze_run(tmp_path, "packagist", pkg, (tmp_path / "deps",))
    assert status == "completed", info["phases"]["install"]
    sources = {c["name"]: c["source"] for c in info["registry"]["closure"]}
    assert sources == {"osptrack/only-dep": "deps-dir"}

    broken = tmp_path / "broken"
    broken.mkdir()
    manifest = {"name": "osptrack/needs-absent", "version": "0.1.0", "require": {"osptrack/absent": "^1.0"}}
    pkg = pack_composer_zip(broken, manifest, {"src.php": b"<?php\n"})
    info, status = analyze_run(broken, "packagist", pkg, ())
    assert status == "error_analysis"
    assert info["registry"]["missing"] == ["osptrack/absent"]


@pytest.mark.sandbox
def test_gem_resolves_a_dependency_only_the_registry_has_and_names_a_missing_one(tmp_path: Path) -> None:
    require_toolchain("rubygems")
    gem(tmp_path / "deps", "osptrack-only-dep-gem", "1.3.0")
    top = gem(tmp_path, "osptrack-uses-gem", "0.1.0", (("osptrack-only-dep-gem", "~> 1.0"),))
    info, status = analyze_run(tmp_path, "rubygems", top, (tmp_path / "deps",))
    assert status == "completed", info["phases"]["install"]
    sources = {c["name"]: c["source"] for c in info["registry"]["closure"]}
    assert sources["osptrack-only-dep-gem"] == "deps-dir" and info["registry"]["missing"] == []

    broken = tmp_path / "broken"
    top = gem(broken, "osptrack-needs-absent-gem", "0.1.0", (("osptrack-absent-gem", ">= 1"),))
    info, status = analyze_run(broken, "rubygems", top, ())
    assert status == "error_analysis"
    assert info["registry"]["missing"] == ["osptrack-absent-gem"]


def test_connection_close_is_honoured_at_once(tmp_path: Path) -> None:
    """Composer's PHP streams send `Connection: close` and read until EOF: the service must
    close after the answer, not wait for the idle timeout (30 s per request)."""
    import socket
    import threading
    import time

    composer_dep(tmp_path / "deps")
    with service(tmp_path, "packagist", (tmp_path / "deps",)) as svc:
        server, client = socket.socketpair()

        def serve() -> None:
            svc.handle(server)
            server.close()  # what the fake network does when the handler returns

        thread = threading.Thread(target=serve)
        t0 = time.monotonic()
        thread.start()
        client.sendall(b"GET /packagist/packages.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        client.settimeout(10)
        received = b""
        while chunk := client.recv(65536):
            received += chunk
        thread.join(10)
        assert received.startswith(b"HTTP/1.1 200") and b"metadata-url" in received
        assert time.monotonic() - t0 < 5 and not thread.is_alive()
