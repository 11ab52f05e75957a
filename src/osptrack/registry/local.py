"""Distributions in the `--deps-dir` folders, found by name and described from their own metadata.

Everything here reads files on the host and never runs them: wheel and sdist names are parsed
with `packaging`, `Requires-Python` comes from METADATA/PKG-INFO and an npm tarball's manifest
from its `package/package.json`, through the bounded reader of `ecosystems/archives.py`.
Hashing is deferred to the first request for a project, so a large folder costs only a
directory listing (pypi) or one manifest read per tarball (npm) at start.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from osptrack.ecosystems.archives import container_of, depth, read_member
from osptrack.errors import BadInput
from osptrack.registry import npm_code
from osptrack.registry.model import Dist
from osptrack.target import normalise_name

PYPI_SUFFIXES = (".whl", ".tar.gz", ".zip", ".tar.bz2")
NPM_SUFFIXES = (".tgz", ".tar.gz")
# The package.json fields that npm reads from a packument's version entry when it resolves.
NPM_MANIFEST_FIELDS = (
    "dependencies",
    "optionalDependencies",
    "peerDependencies",
    "peerDependenciesMeta",
    "bundleDependencies",
    "bundledDependencies",
    "bin",
    "directories",
    "engines",
    "os",
    "cpu",
    "deprecated",
    "license",
    "main",
)
INSTALL_SCRIPTS = ("preinstall", "install", "postinstall")
_NPM_FILE = re.compile(r"^(.+?)-v?(\d+\.\d+\.\d+[^/]*?)\.(?:tgz|tar\.gz)$")


def digests(path: Path) -> tuple[str, str, str, int]:
    """(sha256 hex, npm integrity `sha512-<b64>`, sha1 hex, size) in one pass over the file."""
    h256, h512, h1 = hashlib.sha256(), hashlib.sha512(), hashlib.sha1()  # noqa: S324 - npm's shasum
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            size += len(chunk)
            for h in (h256, h512, h1):
                h.update(chunk)
    return h256.hexdigest(), "sha512-" + base64.b64encode(h512.digest()).decode(), h1.hexdigest(), size


# A wheel file name's parts in the plain form packaging.utils.parse_wheel_filename accepts: an
# escaped name (its own rule), an optional build tag starting with a digit, and a tag triple
# whose interpreters are identifiers and whose members are not empty.
_WHEEL_NAME = re.compile(r"[\w._]+\Z")
_WHEEL_BUILD = re.compile(r"\d")
_SDIST_NAME = re.compile(r"[A-Za-z0-9._-]+\Z")
_WHEEL_TAGS = re.compile(
    r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*(?:-[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*){2}\Z"
)


def plain_name_version(filename: str) -> tuple[str, str] | None:
    """pypi_name_version for the names packaging would surely accept (every wheel and sdist
    file name on PyPI today), without packaging.utils: its import loads packaging.tags, logging
    and sysconfig (~10 ms, 60-150 ms under load) before a run indexing a folder can start. None:
    let packaging decide (any other form, and every file name it rejects)."""
    if filename.endswith(".whl"):
        stem = filename[:-4]
        dashes = stem.count("-")
        if dashes not in (4, 5):
            return None
        parts = stem.split("-", dashes - 2)
        if "__" in parts[0] or not _WHEEL_NAME.match(parts[0]) or not _WHEEL_TAGS.match(parts[-1]):
            return None
        if dashes == 5 and not _WHEEL_BUILD.match(parts[2]):
            return None
        name_part, version_part = parts[0], parts[1]
    elif filename.endswith((".tar.gz", ".zip")):
        stem = filename[: -len(".tar.gz")] if filename.endswith(".tar.gz") else filename[: -len(".zip")]
        name_part, _, version_part = stem.rpartition("-")
        if not _SDIST_NAME.match(name_part):
            return None
    else:
        return None
    try:
        version = Version(version_part)
    except InvalidVersion:
        return None
    return normalise_name("pypi", name_part), str(version)


def pypi_name_version(filename: str) -> tuple[str, str] | None:
    """(normalised project name, version) from a wheel or sdist file name, or None."""
    plain = plain_name_version(filename)
    if plain is not None:
        return plain
    from packaging.utils import (
        InvalidSdistFilename,
        InvalidWheelFilename,
        canonicalize_name,
        parse_sdist_filename,
        parse_wheel_filename,
    )

    try:
        if filename.endswith(".whl"):
            name, ver, _, _ = parse_wheel_filename(filename)
        elif filename.endswith(".tar.bz2"):
            stem = filename[: -len(".tar.bz2")]
            base, _, ver_text = stem.rpartition("-")
            name, ver = canonicalize_name(base), parse_sdist_filename(f"{base}-{ver_text}.tar.gz")[1]
        else:
            name, ver = parse_sdist_filename(filename)
    except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
        return None
    return str(name), str(ver)


def requires_python(path: Path, filename: str | None = None) -> str | None:
    """`Requires-Python` of a wheel's METADATA or an sdist's PKG-INFO, if it says one."""
    want = ".dist-info/METADATA" if (filename or path.name).endswith(".whl") else "/PKG-INFO"
    try:
        found = read_member(path, lambda n: depth(n) == 1 and n.endswith(want))
    except BadInput:
        return None
    if found is None:
        return None
    import email.parser  # ~5 ms: only once a request asks

    value = email.parser.BytesHeaderParser().parsebytes(found[1]).get("Requires-Python")
    text = " ".join(str(value or "").split())
    return text or None


def pypi_by_content(path: Path) -> tuple[str, str, str] | None:
    """(normalised name, version, the file name pip needs) of a wheel or sdist whose own name
    does not say what it is (a wheel saved as `.zip`), from its metadata; None if it is neither."""
    from osptrack.ecosystems.pypi import PyPI  # the same reader and naming as for the target

    eco = PyPI()
    try:
        served = eco.staged_name(path, eco.read_metadata(path))
    except (BadInput, OSError):
        return None
    found = pypi_name_version(served)
    return (found[0], found[1], served) if found else None


def _misnamed(path: Path, suffixes: tuple[str, ...]) -> bool:
    """A file whose name may lie about its content: no suffix of its ecosystem, or a zip (a
    wheel and a `.zip` sdist look alike by name; a zip's directory is cheap to read)."""
    if path.name.endswith(".whl"):
        return False
    try:
        return not path.name.endswith(suffixes) or zipfile.is_zipfile(path)
    except OSError:
        return False


def npm_manifest(path: Path) -> dict[str, Any] | None:
    """The tarball's package.json as a dict with a string name and version, or None."""
    try:
        # read with the scan of what installing it runs, which closure_code asks for next
        found = npm_code.top_manifest(path, lambda n: depth(n) == 1 and n.endswith("/package.json"))
        doc = json.loads(found[1]) if found else None
    except (BadInput, ValueError):
        return None
    if (
        not isinstance(doc, dict)
        or not isinstance(doc.get("name"), str)
        or not isinstance(doc.get("version"), str)
    ):
        return None
    return doc


def npm_version_fields(doc: dict[str, Any]) -> dict[str, Any]:
    """What a packument's version entry says about this package.json (minus `dist`)."""
    fields = {k: doc[k] for k in NPM_MANIFEST_FIELDS if k in doc}
    scripts = doc.get("scripts")
    if isinstance(scripts, dict):
        fields["scripts"] = {k: v for k, v in scripts.items() if isinstance(v, str)}
        if any(k in scripts for k in INSTALL_SCRIPTS):
            fields["hasInstallScript"] = True
    return fields


class LocalFolders:
    """The distributions of a set of folders, by (ecosystem, name). Files are never moved.

    npm tarballs are indexed by the name their file name suggests (`<name>-<version>.tgz`,
    `<scope>-<name>-<version>.tgz`) and their package.json is read only when that name is asked
    for (a large tarball's manifest can sit at the end of thousands of members); a name that no
    file name suggests makes the remaining tarballs be read once, so a misnamed file is still found.
    A PyPI file whose name may lie (a `.zip`, or no Python suffix at all) is recognised by its
    content (`archives.identify` through the PyPI reader) and served under the name pip needs:
    a wheel saved as `x.zip` is listed as `x-1.0-py3-none-any.whl`, never as an sdist.
    """

    def __init__(self, ecosystem: str, folders: Iterable[Path]) -> None:
        self.ecosystem = ecosystem
        # name -> (path, version, the file name it is served under)
        self._candidates: dict[str, list[tuple[Path, str, str]]] = {}
        self._unread: dict[Path, str] = {}  # npm: path -> guessed name
        self._described: dict[str, list[Dist]] = {}
        self._manifests: dict[Path, dict[str, Any]] = {}
        self._lock = threading.Lock()
        for folder in folders:
            for path in sorted(folder.iterdir()) if folder.is_dir() else ():
                if path.is_symlink() or not path.is_file():
                    continue
                self._add_candidate(path)

    def _add_candidate(self, path: Path) -> None:
        if self.ecosystem == "pypi":
            # a misnamed file is served under the name pip needs (a wheel's, for a wheel)
            found = pypi_by_content(path) if _misnamed(path, PYPI_SUFFIXES) else None
            if found is None and path.name.endswith(PYPI_SUFFIXES):
                by_name = pypi_name_version(path.name)
                found = (*by_name, path.name) if by_name else None
            if found is not None:
                self._candidates.setdefault(found[0], []).append((path, found[1], found[2]))
        elif self.ecosystem == "npm":
            if path.name.endswith(NPM_SUFFIXES):
                m = _NPM_FILE.match(path.name)
                self._unread[path] = m.group(1).lower() if m else ""
            elif container_of(path) in ("tar.gz", "tar"):  # a tarball by content; read on demand
                self._unread[path] = ""

    def names(self) -> list[str]:
        """Every name served (npm: reads every manifest not read yet)."""
        with self._lock:
            self._read_npm(list(self._unread))
            return sorted(self._candidates)

    def files(self, name: str) -> list[Path]:
        """The files indexed under `name` so far, without reading or hashing them."""
        with self._lock:
            return [path for path, *_ in self._candidates.get(name, [])]

    def dists(self, name: str) -> list[Dist]:
        """Every distribution of `name` (already normalised), hashed on first use."""
        with self._lock:
            if name in self._described:
                return self._described[name]
            if self.ecosystem == "npm":
                guesses = {name, name.lstrip("@").replace("/", "-"), name.rsplit("/", 1)[-1]}
                self._read_npm([p for p, g in self._unread.items() if g in guesses])
                if name not in self._candidates:
                    self._read_npm(list(self._unread))  # a file name that does not say its package
            self._described[name] = [
                self._describe(name, path, v, served) for path, v, served in self._candidates.get(name, [])
            ]
            return self._described[name]

    def _read_npm(self, paths: list[Path]) -> None:
        for path in paths:
            self._unread.pop(path, None)
            doc = npm_manifest(path)
            if doc is not None:
                self._manifests[path] = doc
                self._candidates.setdefault(doc["name"].lower(), []).append((path, doc["version"], path.name))

    def _describe(self, name: str, path: Path, version: str, served: str) -> Dist:
        sha256, integrity, shasum, size = digests(path)
        if self.ecosystem == "pypi":
            return Dist(
                "pypi", name, version, served, "deps-dir", sha256, size, path,
                requires_python=requires_python(path, served),
            )  # fmt: skip
        doc = self._manifests[path]
        return Dist(
            "npm", doc["name"], version, path.name, "deps-dir", sha256, size, path,
            integrity=integrity, shasum=shasum, manifest=npm_version_fields(doc),
        )  # fmt: skip
