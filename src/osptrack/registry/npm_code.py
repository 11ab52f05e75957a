"""Whether `npm install` of a tarball can run code of any package: its lifecycle scripts, an
implicit `node-gyp rebuild`, or a dependency npm would fetch from somewhere else than the registry.

An install phase that provably runs none is a pure toolchain phase, so the tracer may leave out
the stat/access/readlink probes there (npm's own module loading is ~4,400 statx: most of what
strace costs on an npm install; ecosystems/npm.py `Npm.probes_needed`). The answer must be
sound, never merely likely: anything unreadable, unusual or unbounded counts as code.

Everything here reads tarballs on the host through the bounded reader of ecosystems/archives.py
and never runs them. Which packages npm may install is over-approximated by name: every served
version of every name that any reachable package.json lists (dependencies, optional and peer
dependencies, `npm:` aliases), so the resolver's choice of version cannot matter.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from osptrack.ecosystems.archives import depth, read_member, tar_members
from osptrack.errors import BadInput

# What npm runs while installing a tarball or a registry package (and, for git and folder
# dependencies, the prepare family): any of them in any package.json of the closure is code.
LIFECYCLE_SCRIPTS = frozenset(
    {
        "preinstall",
        "install",
        "postinstall",
        "preprepare",
        "prepare",
        "postprepare",
        "prepublish",
        "prepack",
        "postpack",
    }
)
_DEPENDENCY_FIELDS = ("dependencies", "optionalDependencies", "peerDependencies")

_memo: dict[tuple[int, int, int, int], tuple[str | None, tuple[str, ...]]] = {}
_memo_lock = threading.Lock()


def scan(path: Path) -> tuple[str | None, tuple[str, ...]]:
    """(why installing this tarball can run code, or None; the dependency names it lists).

    Remembered per file (device, inode, size, mtime): the registry cache's blobs never change, a
    batch worker analyses many packages against the same folders, and the run's staged copy of
    its target is a hard link of the file whose manifest `top_manifest` read (and scanned). The
    reason then names the file as it was first scanned (the callers only ask whether there is one)."""
    try:
        key = _key(path)
    except OSError as exc:
        return f"{path.name}: {exc.strerror}", ()
    with _memo_lock:
        if key in _memo:
            return _memo[key]
    found = _scan(path)
    with _memo_lock:
        _memo[key] = found
    return found


def top_manifest(path: Path, want: Callable[[str], bool]) -> tuple[str, bytes] | None:
    """`archives.read_member(path, want)` for an npm tarball's own package.json (`want` names
    it), read in the same walk as `scan`'s, whose answer is remembered for the file: the manifest
    of a big tarball sits near its end (core-js's at member 3,488 of 3,498), so reading it and
    scanning apart walked the tarball twice. Whatever the walk does not settle (an unreadable
    archive, no such member, a cap reached first) is read_member's own answer or error."""
    found: tuple[str, bytes] | None = None
    state = _ScanState(path)
    try:
        key: tuple[int, int, int, int] | None = _key(path)
    except OSError:
        key = None
    try:
        for member, data in tar_members(path, _wanted):
            if found is None and data is not None and want(member):
                found = (member, data)
            if state.why is None:
                state.add(member, data)
            if found is not None and state.why is not None:
                break  # both answers known: the rest cannot change either
    except BadInput as exc:
        state.fail(str(exc))
    if key is not None:
        with _memo_lock:
            _memo[key] = state.result()
    return found if found is not None else read_member(path, want)


def _key(path: Path) -> tuple[int, int, int, int]:
    st = path.stat()
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _wanted(name: str) -> bool:
    return name.endswith("/package.json") or name == "package.json"


def _scan(path: Path) -> tuple[str | None, tuple[str, ...]]:
    state = _ScanState(path)
    try:
        for member, data in tar_members(path, _wanted):
            state.add(member, data)
            if state.why is not None:
                break
    except BadInput as exc:
        state.fail(str(exc))
    return state.result()


class _ScanState:
    """`scan` one member at a time, in tarball order: `why` is set once some member means code."""

    def __init__(self, path: Path) -> None:
        self.name = path.name
        self.why: str | None = None
        # Every package.json's dependencies, not only the top one's: a bundled dependency's own
        # dependencies come from the registry, and a duplicate member is what extraction keeps.
        self.names: list[str] = []
        self.top_seen = False

    def add(self, member: str, data: bytes | None) -> None:
        base = member.rstrip("/").rsplit("/", 1)[-1]
        if base == "binding.gyp":
            self.why = f"{self.name}: {member} (npm runs node-gyp rebuild)"
            return
        if not _wanted(member):
            return
        if data is None:  # a link or device in place of a manifest: unknowable here
            self.why = f"{self.name}: {member} is not a regular file"
            return
        why, deps = _manifest(self.name, member, data)
        if why is not None:
            self.why = why
            return
        self.names += deps
        self.top_seen = self.top_seen or depth(member) == 1  # package/package.json: what npm installs

    def fail(self, why: str) -> None:
        if self.why is None:
            self.why = why

    def result(self) -> tuple[str | None, tuple[str, ...]]:
        if self.why is not None:
            return self.why, ()
        if not self.top_seen:
            return f"{self.name}: no package.json", ()
        return None, tuple(dict.fromkeys(self.names))


def _manifest(archive: str, member: str, data: bytes) -> tuple[str | None, list[str]]:
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeError):
        return f"{archive}: {member} is not JSON", []
    if not isinstance(doc, dict):
        return f"{archive}: {member} is not an object", []
    scripts = doc.get("scripts")
    if scripts is not None and not isinstance(scripts, dict):
        return f"{archive}: {member} scripts is not an object", []
    ran = sorted(LIFECYCLE_SCRIPTS.intersection(scripts or {}))
    if ran:
        return f"{archive}: {member} scripts.{ran[0]}", []
    if doc.get("gypfile"):
        return f"{archive}: {member} gypfile", []
    names: list[str] = []
    for field in _DEPENDENCY_FIELDS:
        deps = doc.get(field)
        if deps is None:
            continue
        if not isinstance(deps, dict):
            return f"{archive}: {member} {field} is not an object", []
        for name, spec in deps.items():
            target = _registry_name(name, spec)
            if target is None:
                return f"{archive}: {member} {field}.{name} is not a registry range ({spec!r})", []
            names.append(target)
    return None, names


def _registry_name(name: str, spec: object) -> str | None:
    """The registry name a dependency resolves to, or None when npm would fetch it elsewhere
    (git, a URL, a folder, a file, a GitHub shorthand) and might run its prepare script."""
    if not isinstance(spec, str):
        return None
    if spec.startswith("npm:"):  # an alias: npm:<name>@<range>
        alias = spec[4:]
        at = alias.find("@", 1)  # a scope's own @ is at 0
        target, spec = (alias[:at], alias[at + 1 :]) if at > 0 else (alias, "")
        name = target
    if ":" in spec or "/" in spec or "\\" in spec:
        return None
    return name.lower()


def closure_code(roots: Iterable[Path], dists_of: Callable[[str], Iterable[Path]]) -> str | None:
    """Why `npm install` of `roots` with what `dists_of(name)` serves can run code, or None.

    Walks the name graph from the roots (see the module docstring); a name nothing serves is
    a 404 to npm, and so no code."""
    todo = list(roots)
    seen_files: set[Path] = set()
    seen_names: set[str] = set()
    while todo:
        path = todo.pop()
        if path in seen_files:
            continue
        seen_files.add(path)
        why, names = scan(path)
        if why is not None:
            return why
        for name in names:
            if name not in seen_names:
                seen_names.add(name)
                todo.extend(dists_of(name))
    return None
