"""The registry service without a sandbox: pages, packuments, files, the cache, and the upstream."""

from __future__ import annotations

import base64
import hashlib
import json
import multiprocessing
import socket
import threading
import zipfile
from pathlib import Path

import pytest
from fake_upstream import FakeRegistry

from builders import make_npm, make_wheel
from osptrack.registry import npm as npm_api
from osptrack.registry import pypi as pypi_api
from osptrack.registry.cache import ContentCache, parse_size
from osptrack.registry.service import RegistryConfig, RegistryService
from osptrack.registry.upstream import (
    NotFound,
    Upstream,
    UpstreamError,
    parse_npm_packument,
    parse_pypi_simple,
)

PIP_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01"
)


def service(tmp_path: Path, eco: str, deps: tuple[Path, ...] = (), online: bool = False,
            upstream: Upstream | None = None) -> RegistryService:  # fmt: skip
    config = RegistryConfig(cache_root=tmp_path / "cache", upstream=upstream or Upstream())
    return RegistryService(eco, deps, online, config)


def body(svc: RegistryService, path: str, accept: str = PIP_ACCEPT) -> tuple[int, bytes]:
    r = svc.route("GET", path, {"accept": accept})
    return r.status, (r.path.read_bytes() if r.path else r.body)


# ---------------------------------------------------------------------------------------- PyPI


def test_pypi_page_lists_deps_dir_files_with_hash_and_requires_python(tmp_path: Path) -> None:
    deps = tmp_path / "deps"
    deps.mkdir()
    meta = "Metadata-Version: 2.1\nName: Foo_Bar\nVersion: 1.2\nRequires-Python: >=3.8\n"
    with zipfile.ZipFile(deps / "foo_bar-1.2-py3-none-any.whl", "w") as zf:
        zf.writestr("foo_bar/__init__.py", "")
        zf.writestr("foo_bar-1.2.dist-info/METADATA", meta)
    sha = hashlib.sha256((deps / "foo_bar-1.2-py3-none-any.whl").read_bytes()).hexdigest()
    with service(tmp_path, "pypi", (deps,)) as svc:
        status, page = body(svc, "/pypi/simple/foo-bar/")
        assert status == 200
        doc = json.loads(page)
        assert doc["files"][0]["hashes"] == {"sha256": sha}
        assert doc["files"][0]["requires-python"] == ">=3.8"
        status, html = body(svc, "/pypi/simple/Foo.Bar/", accept="text/html")
        assert (
            status == 200 and f"#sha256={sha}".encode() in html and b'data-requires-python="&gt;=3.8"' in html
        )
        status, data = body(svc, doc["files"][0]["url"].replace("../..", "/pypi"))
        assert status == 200 and hashlib.sha256(data).hexdigest() == sha
        closure = svc.report()["closure"]
    assert [(c["name"], c["version"], c["sha256"], c["source"]) for c in closure] == [
        ("foo-bar", "1.2", sha, "deps-dir")
    ]


def test_offline_miss_is_a_404_and_recorded_as_missing(tmp_path: Path) -> None:
    with service(tmp_path, "pypi") as svc:
        status, _ = body(svc, "/pypi/simple/requests/")
        assert status == 404
        assert svc.report()["missing"] == ["requests"]
        assert svc.report()["closure"][0]["source"] == "missing"


def test_content_negotiation_follows_pip_accept_header() -> None:
    assert pypi_api.wants_json(PIP_ACCEPT)
    assert not pypi_api.wants_json("text/html")
    assert not pypi_api.wants_json("application/vnd.pypi.simple.v1+json; q=0, text/html")


# ---------------------------------------------------------------------------------------- npm


def test_packument_carries_tarball_integrity_and_dependencies(tmp_path: Path) -> None:
    deps = tmp_path / "deps"
    deps.mkdir()
    make_npm(deps, "@scope/dep", "1.0.0", {"index.js": ""}, extra={"dependencies": {"b": "^1.0.0"}})
    tgz = make_npm(deps, "@scope/dep", "2.0.0", {"index.js": ""}, scripts={"postinstall": "node x.js"})
    with service(tmp_path, "npm", (deps,)) as svc:
        status, raw = body(svc, "/npm/@scope%2fdep")
        assert status == 200
        doc = json.loads(raw)
        assert doc["dist-tags"] == {"latest": "2.0.0"}
        v1, v2 = doc["versions"]["1.0.0"], doc["versions"]["2.0.0"]
        assert v1["dependencies"] == {"b": "^1.0.0"}
        assert v2["hasInstallScript"] is True
        want = "sha512-" + base64.b64encode(hashlib.sha512(tgz.read_bytes()).digest()).decode()
        assert v2["dist"]["integrity"] == want
        assert v2["dist"]["shasum"] == hashlib.sha1(tgz.read_bytes()).hexdigest()
        assert v2["dist"]["tarball"].endswith("/npm/@scope/dep/-/dep-2.0.0.tgz")
        status, data = body(svc, "/npm/@scope/dep/-/dep-2.0.0.tgz")
        assert status == 200 and data == tgz.read_bytes()


def test_npm_paths() -> None:
    assert npm_api.parse_path("@scope%2fname") == ("@scope/name", None)
    assert npm_api.parse_path("ms/-/ms-2.0.0.tgz") == ("ms", "2.0.0")
    assert npm_api.parse_path("@s/n/-/n-1.0.0-beta.1.tgz") == ("@s/n", "1.0.0-beta.1")
    assert npm_api.parse_path("ms/-/other-1.0.0.tgz") is None


# ---------------------------------------------------------------------------------------- HTTP


def test_keep_alive_connection_serves_several_requests(tmp_path: Path) -> None:
    deps = tmp_path / "deps"
    deps.mkdir()
    make_npm(deps, "left", "1.0.0", {"index.js": ""})
    with service(tmp_path, "npm", (deps,)) as svc:
        server, client = socket.socketpair()
        fed: list[bytes] = []
        thread = threading.Thread(target=svc.handle, args=(server, fed.append))
        thread.start()
        request = b"GET /npm/left HTTP/1.1\r\nHost: pkgmirror.internal.lan\r\n\r\n"
        client.sendall(request + b"GET /npm/nothere HTTP/1.1\r\nHost: x\r\n\r\n")
        client.shutdown(socket.SHUT_WR)
        thread.join(10)  # the service returns once the client has closed its side
        assert not thread.is_alive()
        server.close()  # closing is the fake network's job
        received = b""
        while chunk := client.recv(65536):
            received += chunk
        client.close()
    assert received.count(b"HTTP/1.1 ") == 2
    assert b"HTTP/1.1 200" in received and b"HTTP/1.1 404" in received
    assert b"".join(fed).startswith(request)


# ---------------------------------------------------------------------------------------- cache


def test_cache_evicts_least_recently_used_and_keeps_pinned(tmp_path: Path) -> None:
    cache = ContentCache(tmp_path / "c", max_bytes=250)

    def put(name: str, pinned: bool = False) -> None:  # fmt: skip
        data = name.encode() * (100 // len(name))
        cache.put(
            "pypi", name, "1", f"{name}-1.tar.gz", data, hashlib.sha256(data).hexdigest(), pinned=pinned
        )

    put("pinned", pinned=True)
    put("aaaa")
    put("bbbb")  # over 250 bytes: the oldest unpinned (aaaa) goes
    names = {e.name for e in cache.entries()}
    assert names == {"pinned", "bbbb"}
    assert not cache.blob(hashlib.sha256(b"aaaa" * 25).hexdigest()).exists()
    assert parse_size("5G") == 5 << 30 and parse_size("512MiB") == 512 << 20


def _writer(root: str, i: int) -> None:
    cache = ContentCache(Path(root), max_bytes=1 << 30)
    for j in range(10):
        data = f"{i}-{j}".encode() * 50
        cache.put("npm", f"p{i}", str(j), f"p{i}-{j}.tgz", data, hashlib.sha256(data).hexdigest())


def test_concurrent_writers_lose_no_entry(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path / "c"), i)) for i in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    entries = ContentCache(tmp_path / "c").entries()
    assert len(entries) == 40
    for e in entries:
        assert (
            hashlib.sha256(ContentCache(tmp_path / "c").blob(e.sha256).read_bytes()).hexdigest() == e.sha256
        )


# ---------------------------------------------------------------------------------------- upstream


@pytest.fixture()
def fake(tmp_path: Path):  # type: ignore[no-untyped-def]
    src = tmp_path / "upstream"
    src.mkdir()
    reg = FakeRegistry()
    reg.pypi["onlyup"] = [make_wheel(src, "onlyup", "3.0", {"onlyup.py": "X = 1\n"})]
    tgz = make_npm(src, "upnpm", "1.0.0", {"index.js": ""})
    reg.npm["upnpm"] = [("1.0.0", {"name": "upnpm", "version": "1.0.0"}, tgz)]
    reg.start()
    yield reg
    reg.stop()


@pytest.mark.parametrize("eco", ["pypi", "npm"])
def test_online_miss_is_fetched_checked_cached_then_served_offline(
    tmp_path: Path, fake: FakeRegistry, eco: str
) -> None:
    page, file = (
        ("/pypi/simple/onlyup/", None) if eco == "pypi" else ("/npm/upnpm", "/npm/upnpm/-/upnpm-1.0.0.tgz")
    )
    with service(tmp_path, eco, online=True, upstream=fake.upstream()) as svc:
        status, raw = body(svc, page)
        assert status == 200
        if eco == "pypi":
            file = json.loads(raw)["files"][0]["url"].replace("../..", "/pypi")
        assert file is not None
        status, data = body(svc, file)
        assert status == 200 and data
        report = svc.report()
    assert report["errors"] == [] and report["closure"][0]["source"] == "upstream"
    with service(tmp_path, eco) as svc:  # offline, same cache
        assert body(svc, page)[0] == 200
        status, again = body(svc, file)
        assert status == 200 and again == data
        assert svc.report()["closure"][0]["source"] == "cache"


@pytest.mark.parametrize("mode", ["malformed", "truncated", "truncated-page", "badhash"])
@pytest.mark.parametrize("eco", ["pypi", "npm"])
def test_bad_upstream_answer_gives_one_line_and_caches_nothing(
    tmp_path: Path, fake: FakeRegistry, eco: str, mode: str
) -> None:
    fake.mode = mode
    page = "/pypi/simple/onlyup/" if eco == "pypi" else "/npm/upnpm"
    with service(tmp_path, eco, online=True, upstream=fake.upstream()) as svc:
        status, raw = body(svc, page)
        if mode not in ("malformed", "truncated-page"):
            assert status == 200
            file = (
                json.loads(raw)["files"][0]["url"].replace("../..", "/pypi")
                if eco == "pypi"
                else "/npm/upnpm/-/upnpm-1.0.0.tgz"
            )
            status, _ = body(svc, file)
            assert status == 502
        else:
            assert status == 404
        errors = svc.report()["errors"]
    assert len(errors) == 1 and "\n" not in errors[0]
    want = {
        "malformed": "not JSON",
        "truncated": "truncated",
        "truncated-page": "truncated",
        "badhash": "does not match",
    }
    assert want[mode] in errors[0], errors
    assert ContentCache(tmp_path / "cache").entries() == []
    assert not (tmp_path / "cache" / "blobs").exists() or not any((tmp_path / "cache" / "blobs").rglob("*"))


def test_upstream_refuses_hosts_that_are_not_the_registry(tmp_path: Path) -> None:
    up = Upstream()
    with pytest.raises(UpstreamError, match="not one of the registry hosts"):
        up.get("https://evil.example/simple/x/")
    with pytest.raises(UpstreamError, match="not one of the registry hosts"):
        up.get("http://pypi.org/simple/x/")  # plain http to a real registry host


def test_unknown_target_is_not_found_naming_the_registry_answer(fake: FakeRegistry) -> None:
    up = fake.upstream()
    with pytest.raises(NotFound, match="no project named nosuch .404 Not Found"):
        up.resolve_target("pypi", "nosuch", "1.0")
    with pytest.raises(NotFound, match="onlyup has no release 9.9 .latest is 3.0"):
        up.resolve_target("pypi", "onlyup", "9.9")
    with pytest.raises(NotFound, match="upnpm has no version 2.0.0"):
        up.resolve_target("npm", "upnpm", "2.0.0")
    assert up.resolve_target("npm", "upnpm", None) == "1.0.0"


def test_parsers_skip_files_without_a_checkable_digest() -> None:
    page = {"files": [{"filename": "a-1.0.tar.gz", "url": "a-1.0.tar.gz", "hashes": {}},
                      {"filename": "a-1.1.tar.gz", "url": "f/a-1.1.tar.gz", "hashes": {"sha256": "ab" * 32}}]}  # fmt: skip
    dists = parse_pypi_simple("a", "https://pypi.org/simple/a/", json.dumps(page).encode())
    assert [(d.version, d.upstream_url) for d in dists] == [
        ("1.1", "https://pypi.org/simple/a/f/a-1.1.tar.gz")
    ]
    doc = {"versions": {"1.0.0": {"dist": {"tarball": "https://registry.npmjs.org/x/-/x-1.0.0.tgz"}}}}
    assert parse_npm_packument("x", "https://registry.npmjs.org/x", json.dumps(doc).encode())[0] == []


def test_seeding_an_already_seeded_folder_reads_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """seed runs before every analysis: once the files are in the cache it must not hash them again."""
    from osptrack.registry import local
    from osptrack.registry import service as service_mod

    folder = tmp_path / "build-backends"
    folder.mkdir()
    for name in ("alpha", "beta"):
        with zipfile.ZipFile(folder / f"{name}-1.0-py3-none-any.whl", "w") as zf:
            zf.writestr(f"{name}/__init__.py", "")
            zf.writestr(
                f"{name}-1.0.dist-info/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n"
            )
    cache = ContentCache(tmp_path / "c")
    assert service_mod.seed(cache, "pypi", (folder,)) == 2
    calls: list[Path] = []
    real = local.digests
    monkeypatch.setattr(local, "digests", lambda p: calls.append(p) or real(p))
    assert service_mod.seed(cache, "pypi", (folder,)) == 0
    assert calls == []
    # A new file in the folder is still seeded (and only it is hashed).
    with zipfile.ZipFile(folder / "gamma-1.0-py3-none-any.whl", "w") as zf:
        zf.writestr("gamma-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: gamma\nVersion: 1.0\n")
    assert service_mod.seed(cache, "pypi", (folder,)) == 1
    assert [p.name for p in calls] == ["gamma-1.0-py3-none-any.whl"]


# ---------------------------------------------------------------------------------------- misnamed


def test_wheel_saved_as_zip_in_a_deps_dir_is_served_as_a_wheel(tmp_path: Path) -> None:
    deps = tmp_path / "deps"
    deps.mkdir()
    wheel = make_wheel(deps, "osptrack-zipped", "1.5", {"osptrack_zipped.py": "X = 1\n"})
    misnamed = wheel.rename(deps / "osptrack-zipped-1.5.zip")  # pip would take it for an sdist
    (deps / "notes.zip").write_bytes(b"PK\x05\x06" + b"\0" * 18)  # an empty zip: no package, skipped
    sha = hashlib.sha256(misnamed.read_bytes()).hexdigest()
    with service(tmp_path, "pypi", (deps,)) as svc:
        status, page = body(svc, "/pypi/simple/osptrack-zipped/")
        assert status == 200
        files = json.loads(page)["files"]
        assert [f["filename"] for f in files] == ["osptrack_zipped-1.5-py3-none-any.whl"]
        status, data = body(svc, files[0]["url"].replace("../..", "/pypi"))
        assert status == 200 and data == misnamed.read_bytes()
        assert body(svc, "/pypi/simple/")[1].count(b"<a ") == 1
        closure = svc.report()["closure"]
    assert [(c["name"], c["version"], c["sha256"], c["filename"]) for c in closure] == [
        ("osptrack-zipped", "1.5", sha, "osptrack_zipped-1.5-py3-none-any.whl")
    ]


def test_npm_tarball_without_its_suffix_in_a_deps_dir_is_found_by_content(tmp_path: Path) -> None:
    deps = tmp_path / "deps"
    deps.mkdir()
    tgz = make_npm(deps, "osptrack-renamed", "1.0.0", {"index.js": ""})
    tgz.rename(deps / "download.zip")
    with service(tmp_path, "npm", (deps,)) as svc:
        status, raw = body(svc, "/npm/osptrack-renamed")
        assert status == 200 and list(json.loads(raw)["versions"]) == ["1.0.0"]
        status, _ = body(svc, "/npm/osptrack-renamed/-/osptrack-renamed-1.0.0.tgz")
        assert status == 200
