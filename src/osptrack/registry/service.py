"""The registry service: PyPI's simple API, npm's registry API, a gem source, a Composer
repository and cargo's sparse index, over HTTP/1.1 (h11).

The fake network hands it every connection to `REGISTRY_ADDRESS` (`handle(conn, feed)`), in a
handler thread inside the run's network namespace. Online fetches must not happen there (the
namespace has no route out), so they go to worker threads that `start()` creates in osptrack's
own namespace; those threads are the only ones that talk to the real registry.

What it serves, per project, in order of precedence (the same file name or version from a
later source is hidden by an earlier one): every `--deps-dir` folder, the host-side cache, and
(online only) what the real registry lists, fetched on first request, checked against the
registry's digest, put in the cache, then served. Offline, an unknown project is a 404.

Everything the package managers asked for is recorded (`report()` -> run.json `registry`).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import queue
import socket
import threading
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from osptrack.registry import NPM_REGISTRY_URL, PYPI_INDEX_URL, REGISTRY_URL
from osptrack.registry import pypi as pypi_api
from osptrack.registry.backends import BACKEND_NAMES
from osptrack.registry.cache import ContentCache
from osptrack.registry.flavour import ArchiveFolders, Flavour, Miss, Page, Serve
from osptrack.registry.local import LocalFolders
from osptrack.registry.model import ClosureEntry, Dist
from osptrack.registry.upstream import NotFound, Upstream, UpstreamError
from osptrack.target import normalise_name

if TYPE_CHECKING:
    from concurrent.futures import Future

    import h11

IDLE_TIMEOUT_S = 30.0  # a keep-alive connection pip or npm left open
FETCH_TIMEOUT_S = 300.0
CHUNK = 256 * 1024
MAX_ERRORS = 100
WORKERS = 4
# The ecosystems served through a `Flavour` (PyPI and npm are the service's own code): module
# and class, imported only for the ecosystem a service serves (rubygems' pulls yaml and marshal).
FLAVOUR_CLASSES = {
    "crates.io": ("osptrack.registry.cratesio", "CratesIo"),
    "packagist": ("osptrack.registry.packagist", "Packagist"),
    "rubygems": ("osptrack.registry.rubygems", "RubyGems"),
}


def flavour_for(ecosystem: str) -> Flavour | None:
    """The ecosystem's `Flavour`, or None for PyPI and npm (and anything not served)."""
    found = FLAVOUR_CLASSES.get(ecosystem)
    if found is None:
        return None
    module, name = found
    flavour: Flavour = getattr(importlib.import_module(module), name)()
    return flavour


@dataclass(frozen=True)
class RegistryConfig:
    cache_root: Path | None = None  # default: cache.default_root()
    cache_max_bytes: int | None = None
    upstream: Upstream = field(default_factory=Upstream)
    seed_folders: tuple[Path, ...] = ()  # the build backends' folders, pinned into the cache on first use


@dataclass
class _Response:
    status: int
    content_type: str = "text/plain; charset=utf-8"
    body: bytes = b""
    path: Path | None = None  # a file to stream instead of `body`
    size: int = 0


class _HostWorkers:
    """Threads created by the caller of `start()`, so they live in its network namespace."""

    def __init__(self, n: int) -> None:
        self._queue: queue.Queue[tuple[Callable[[], Any], Future[Any]] | None] = queue.Queue()
        self._threads = [
            threading.Thread(target=self._loop, name="registry-fetch", daemon=True) for _ in range(n)
        ]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def submit(self, fn: Callable[[], Any]) -> Future[Any]:
        # concurrent.futures loads logging (~5 ms); only a run that fetches (--online) needs it
        from concurrent.futures import Future

        fut: Future[Any] = Future()
        self._queue.put((fn, fut))
        return fut

    def close(self) -> None:
        for _ in self._threads:
            self._queue.put(None)
        for t in self._threads:
            if t.is_alive():
                t.join(10)

    def _loop(self) -> None:
        while (item := self._queue.get()) is not None:
            fn, fut = item
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn())
            except BaseException as exc:  # handed to the waiting handler thread
                fut.set_exception(exc)


class RegistryService:
    def __init__(
        self,
        ecosystem: str,
        deps_dirs: Iterable[Path] = (),
        online: bool = False,
        config: RegistryConfig | None = None,
        files: Iterable[Path] = (),
    ) -> None:
        """`files`: single archives served as if they sat in a deps-dir (cargo's package itself,
        which cargo takes from its registry like any other crate)."""
        self.ecosystem = ecosystem
        self.flavour = flavour_for(ecosystem)
        self.online = online
        self.config = config or RegistryConfig()
        self.cache = ContentCache(self.config.cache_root, self.config.cache_max_bytes)
        self.local: LocalFolders | ArchiveFolders = (
            ArchiveFolders(self.flavour, deps_dirs, files)
            if self.flavour is not None
            else LocalFolders(ecosystem, deps_dirs)
        )
        self.phase: str | None = None
        self.requests = 0
        self._lock = threading.Lock()
        self._page_locks: dict[str, threading.Lock] = {}
        self._projects: dict[str, tuple[list[Dist], dict[str, str]]] = {}
        self._by_sha: dict[str, Dist] = {}  # pypi files listed so far
        self._closure: dict[tuple[str, str | None], ClosureEntry] = {}
        self._errors: list[str] = []
        self._cached: dict[str, list[Dist]] | None = None
        self._workers = _HostWorkers(WORKERS) if online else None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        if self.config.seed_folders and self.ecosystem == "pypi":
            try:
                for folder in self.config.seed_folders:
                    names = BACKEND_NAMES if folder.name == "build-backends" else None
                    seed(self.cache, "pypi", (folder,), names=names)
            except OSError as exc:  # a read-only cache still serves what it has
                self._error(f"cache {self.cache.root}: build backends not seeded ({exc.strerror or exc})")
        if self._workers is not None:
            self._workers.start()

    def close(self) -> None:
        if self._workers is not None:
            self._workers.close()
        with contextlib.suppress(OSError):
            self.cache.flush()

    def __enter__(self) -> RegistryService:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def set_phase(self, phase: str | None) -> None:
        self.phase = phase

    def serves_only_wheels(self) -> bool:
        """PyPI offline: every file this service can hand pip is a wheel, so an install of a wheel
        builds nothing and runs no code of any package. Online, upstream may have an sdist."""
        if self.ecosystem != "pypi" or self.online or not isinstance(self.local, LocalFolders):
            return False
        local = [path.name for name in self.local.names() for path in self.local.files(name)]
        cached = [d.filename for dists in self._cache_by_name().values() for d in dists]
        return all(name.endswith(".whl") for name in (*local, *cached))

    def npm_install_code(self, archive: Path | None, name: str) -> str | None:
        """npm offline: why installing `archive` (or, with None, the served `name`) can run code
        of some package, or None when it provably runs none (registry/npm_code.py). Online,
        upstream may serve anything."""
        if self.ecosystem != "npm" or self.online or not isinstance(self.local, LocalFolders):
            return "not an offline npm registry"
        from osptrack.registry import npm_code

        local = self.local

        def dists_of(dep: str) -> list[Path]:
            dists = [*local.dists(dep), *self._cache_by_name().get(dep, [])]
            return [d.path for d in dists if d.path is not None]

        roots = [archive] if archive is not None else dists_of(name.lower())
        return npm_code.closure_code(roots, dists_of)

    # ------------------------------------------------------------------ what run.json gets

    @property
    def index_url(self) -> str:
        if self.flavour is not None:
            return f"{REGISTRY_URL}{self.flavour.prefix}"
        return PYPI_INDEX_URL if self.ecosystem == "pypi" else NPM_REGISTRY_URL

    def closure(self) -> list[ClosureEntry]:
        with self._lock:
            return list(self._closure.values())

    def missing(self, phase: str | None = None) -> list[str]:
        return sorted(
            {c.name for c in self.closure() if c.source == "missing" and (phase is None or c.phase == phase)}
        )

    def errors(self) -> list[str]:
        with self._lock:
            return list(self._errors)

    def report(self) -> dict[str, Any]:
        return {
            "url": self.index_url,
            "online": self.online,
            "requests": self.requests,
            "closure": [c.as_dict() for c in self.closure()],
            "missing": self.missing(),
            "errors": self.errors(),
        }

    def _record(self, entry: ClosureEntry) -> None:
        key = (entry.name, entry.filename)
        with self._lock:
            if entry.source == "missing" and any(
                c.name == entry.name and c.source != "missing" for c in self._closure.values()
            ):
                return  # asked again later and found (a page first, then a file)
            self._closure.setdefault(key, replace(entry, phase=self.phase))

    def _error(self, line: str) -> None:
        with self._lock:
            if len(self._errors) < MAX_ERRORS and line not in self._errors:
                self._errors.append(line)

    # ------------------------------------------------------------------ HTTP

    def handle(self, conn: socket.socket, feed: Callable[[bytes], None] | None = None) -> None:
        """Serve HTTP/1.1 requests on `conn` (keep-alive) until the client closes or goes quiet."""
        import h11  # with the first connection, in the phase: not before it

        h = h11.Connection(h11.SERVER)
        conn.settimeout(IDLE_TIMEOUT_S)
        while True:
            try:
                event = h.next_event()
            except h11.RemoteProtocolError:
                with contextlib.suppress(OSError, h11.LocalProtocolError):
                    self._send(conn, h, "GET", _Response(400, body=b"bad request\n"))
                return
            if event is h11.NEED_DATA:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if feed is not None and data:
                    feed(data)
                h.receive_data(data)
                continue
            if isinstance(event, h11.Request):
                with self._lock:
                    self.requests += 1
                headers = {k.decode().lower(): v.decode("latin-1") for k, v in event.headers}
                method = event.method.decode()
                response = self.route(method, event.target.decode("latin-1"), headers)
                try:
                    self._send(conn, h, method, response)
                except OSError:
                    return
                if h.our_state is h11.MUST_CLOSE:
                    return  # `Connection: close` (Composer's PHP streams read until EOF): close now
                continue
            if isinstance(event, h11.EndOfMessage):
                if h.our_state is h11.DONE and h.their_state is h11.DONE:
                    try:
                        h.start_next_cycle()
                    except h11.LocalProtocolError:
                        return
                    continue
                continue
            if isinstance(event, h11.ConnectionClosed) or h.our_state is h11.MUST_CLOSE:
                return

    def _send(self, conn: socket.socket, h: h11.Connection, method: str, r: _Response) -> None:
        import h11

        size = r.size if r.path is not None else len(r.body)
        headers = [("Content-Type", r.content_type), ("Content-Length", str(size)), ("Server", "nginx")]
        conn.sendall(h.send(h11.Response(status_code=r.status, headers=headers)) or b"")
        if method != "HEAD":
            if r.path is not None:
                with r.path.open("rb") as fh:
                    while chunk := fh.read(CHUNK):
                        conn.sendall(h.send(h11.Data(data=chunk)) or b"")
            elif r.body:
                conn.sendall(h.send(h11.Data(data=r.body)) or b"")
        conn.sendall(h.send(h11.EndOfMessage()) or b"")

    def route(self, method: str, target: str, headers: dict[str, str]) -> _Response:
        if method not in ("GET", "HEAD"):
            return _Response(405, body=b"method not allowed\n")
        path = urllib.parse.urlsplit(target).path
        if self.ecosystem == "pypi" and path.startswith("/pypi/"):
            return self._pypi(path[len("/pypi/") :], headers.get("accept", ""))
        if self.ecosystem == "npm" and path.startswith("/npm/"):
            return self._npm(path[len("/npm/") :])
        if self.flavour is not None and path.startswith(self.flavour.prefix):
            return self._flavoured(self.flavour, path[len(self.flavour.prefix) :])
        if path == "/":
            return _Response(200, body=b"package mirror\n")
        return _Response(404, body=b"not found\n")

    # ------------------------------------------------------------------ PyPI

    def _pypi(self, rest: str, accept: str) -> _Response:
        parts = [urllib.parse.unquote(p) for p in rest.strip("/").split("/")]
        if parts == ["simple"]:
            names = {*self.local.names(), *self._cache_by_name()}
            return _Response(200, pypi_api.HTML_TYPE, pypi_api.root_html(names))
        if len(parts) == 2 and parts[0] == "simple":
            name = normalise_name("pypi", parts[1])
            dists, _ = self._project(name)
            if not dists:
                self._record(ClosureEntry("pypi", name, None, None, "missing"))
                return _Response(404, body=f"no distributions of {name}\n".encode())
            if pypi_api.wants_json(accept):
                return _Response(200, pypi_api.JSON_TYPE, pypi_api.project_json(name, dists))
            return _Response(200, pypi_api.HTML_TYPE, pypi_api.project_html(name, dists))
        if len(parts) == 3 and parts[0] == "files":
            with self._lock:
                dist = self._by_sha.get(parts[1])
            if dist is None or dist.filename != parts[2]:
                return _Response(404, body=b"no such file\n")
            return self._serve_file(dist)
        return _Response(404, body=b"not found\n")

    # ------------------------------------------------------------------ npm

    def _npm(self, rest: str) -> _Response:
        from osptrack.registry import npm as npm_api  # semantic_version: npm's service only

        parsed = npm_api.parse_path(rest)
        if parsed is None:
            return _Response(404, npm_api.JSON_TYPE, b'{"error":"Not found"}')
        name, version = parsed
        dists, tags = self._project(name)
        if version is None:
            if not dists:
                self._record(ClosureEntry("npm", name, None, None, "missing"))
                return _Response(404, npm_api.JSON_TYPE, b'{"error":"Not found"}')
            published = dists[0].name if dists else name
            return _Response(
                200, npm_api.JSON_TYPE, npm_api.packument(published, dists, NPM_REGISTRY_URL, tags)
            )
        found = next((d for d in dists if d.version == version), None)
        if found is None:
            self._record(ClosureEntry("npm", name, version, None, "missing"))
            return _Response(404, npm_api.JSON_TYPE, b'{"error":"Not found"}')
        return self._serve_file(found)

    # ------------------------------------------------------------------ RubyGems, Packagist, crates.io

    def _flavoured(self, flavour: Flavour, rest: str) -> _Response:
        answer = flavour.route(rest, lambda name: self._project(name)[0])
        if isinstance(answer, Page):
            return _Response(answer.status, answer.content_type, answer.body)
        if isinstance(answer, Serve):
            return self._serve_file(answer.dist)
        assert isinstance(answer, Miss)
        self._record(ClosureEntry(self.ecosystem, answer.name, answer.version, None, "missing"))
        if answer.page is not None:
            return _Response(answer.page.status, answer.page.content_type, answer.page.body)
        return _Response(404, body=f"no {answer.name} {answer.version or ''}".strip().encode() + b"\n")

    # ------------------------------------------------------------------ shared

    def _project(self, name: str) -> tuple[list[Dist], dict[str, str]]:
        """Every distribution of `name` from every source, computed once per run."""
        with self._lock:
            lock = self._page_locks.setdefault(name, threading.Lock())
        with lock:
            with self._lock:
                if name in self._projects:
                    return self._projects[name]
            chosen: dict[str, Dist] = {}
            key = (lambda d: d.filename) if self.ecosystem == "pypi" else (lambda d: d.version)
            for d in [*self.local.dists(name), *self._cache_by_name().get(name, [])]:
                chosen.setdefault(key(d), d)
            tags: dict[str, str] = {}
            if self.online:
                try:
                    upstream, tags = self._on_host(lambda: self._upstream_project(name))
                    for d in upstream:
                        chosen.setdefault(key(d), d)
                except NotFound:
                    pass  # the registry has no such project: a 404, and `missing` says so
                except UpstreamError as exc:
                    self._error(str(exc))
            dists = list(chosen.values())
            with self._lock:
                self._projects[name] = (dists, tags)
                for d in dists:
                    if d.sha256:
                        self._by_sha.setdefault(d.sha256, d)
            return dists, tags

    def _upstream_project(self, name: str) -> tuple[list[Dist], dict[str, str]]:
        up = self.config.upstream
        if self.flavour is not None:
            return self.flavour.upstream_project(up, name), {}
        if self.ecosystem == "pypi":
            return up.pypi_page(name), {}
        return up.npm_packument(name)

    def _on_host(self, fn: Callable[[], Any]) -> Any:
        assert self._workers is not None
        return self._workers.submit(fn).result(FETCH_TIMEOUT_S)

    def _cache_by_name(self) -> dict[str, list[Dist]]:
        if self._cached is None:
            found: dict[str, list[Dist]] = {}
            for e in self.cache.entries():
                if e.ecosystem != self.ecosystem:
                    continue
                m = e.meta
                dist = Dist(
                    e.ecosystem, e.name, e.version, e.filename, "cache", e.sha256, e.size, self.cache.blob(e.sha256),
                    requires_python=m.get("requires_python"), yanked=bool(m.get("yanked")),
                    integrity=m.get("integrity"), shasum=m.get("shasum"), manifest=dict(m.get("manifest") or {}),
                )  # fmt: skip
                found.setdefault(e.name.lower(), []).append(dist)
            self._cached = found
        return self._cached

    def _serve_file(self, dist: Dist) -> _Response:
        ctype = "application/octet-stream"
        if dist.path is not None:
            try:
                size = dist.path.stat().st_size
            except OSError:
                size = -1  # evicted by another run between listing and download
            if size >= 0:
                if dist.source == "cache":
                    self.cache.touch(f"{dist.ecosystem}/{dist.name}/{dist.filename}")
                self._record(
                    ClosureEntry(
                        dist.ecosystem, dist.name, dist.version, dist.sha256, dist.source, dist.filename
                    )
                )
                return _Response(200, ctype, path=dist.path, size=size)
        if not self.online:
            self._record(
                ClosureEntry(dist.ecosystem, dist.name, dist.version, None, "missing", dist.filename)
            )
            return _Response(404, body=b"not in the cache\n")
        try:
            data, sha256 = self._on_host(lambda: self._fetch_and_cache(dist))
        except UpstreamError as exc:
            self._error(str(exc))
            self._record(
                ClosureEntry(dist.ecosystem, dist.name, dist.version, None, "missing", dist.filename)
            )
            return _Response(502, body=(str(exc) + "\n").encode())
        self._record(ClosureEntry(dist.ecosystem, dist.name, dist.version, sha256, "upstream", dist.filename))
        return _Response(200, ctype, body=data)

    def _fetch_and_cache(self, dist: Dist) -> tuple[bytes, str]:
        data = self.config.upstream.fetch(dist)  # raises unless the registry's digest matches
        sha256 = hashlib.sha256(data).hexdigest()
        meta: dict[str, Any]
        if dist.ecosystem == "pypi":
            meta = {"requires_python": dist.requires_python, "yanked": dist.yanked}
        else:
            meta = {"integrity": dist.integrity, "shasum": dist.shasum, "manifest": dist.manifest}
        try:
            self.cache.put(dist.ecosystem, dist.name.lower(), dist.version, dist.filename, data, sha256, meta)
        except OSError as exc:
            self._error(f"cache {self.cache.root}: not written ({exc.strerror or exc})")
        return data, sha256


def seed(
    cache: ContentCache,
    ecosystem: str,
    folders: Iterable[Path],
    pinned: bool = True,
    names: frozenset[str] | None = None,
) -> int:
    """Put the distributions of `folders` (only `names`, if given) into the cache, pinned: never
    evicted. Returns how many were added; files already there are skipped, so calling it on every
    run costs one listing."""
    have = {e.key for e in cache.entries()}
    added = 0
    local = LocalFolders(ecosystem, folders)
    for name in local.names():
        if names is not None and name not in names:
            continue
        if ecosystem == "pypi" and all(f"pypi/{name}/{f.name}" in have for f in local.files(name)):
            continue  # seeded by an earlier run: no hashing (this runs before every analysis)
        for d in local.dists(name):
            key = f"{ecosystem}/{d.name.lower()}/{d.filename}"
            if key in have or d.path is None:
                continue
            meta: dict[str, Any]
            if ecosystem == "pypi":
                meta = {"requires_python": d.requires_python}
            else:
                meta = {"integrity": d.integrity, "shasum": d.shasum, "manifest": d.manifest}
            cache.put(
                ecosystem,
                d.name.lower(),
                d.version,
                d.filename,
                d.path.read_bytes(),
                str(d.sha256),
                meta,
                pinned,
            )
            added += 1
    return added
