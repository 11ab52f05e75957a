"""The online registry APIs of RubyGems, Packagist, crates.io and NuGet: requests and parsing.

Online mode resolves `name[==version]` to one archive URL (plus its checksum and declared
dependencies) and downloads it as plain bytes on the host; nothing in it is executed there.
Request building and response parsing are separate, pure functions so they are tested on
recorded responses: these machines cannot reach the registries.

API references (response shapes follow them):
- rubygems.org  /api/v1/gems/NAME.json, /api/v2/rubygems/NAME/versions/VERSION.json
- Packagist     repo.packagist.org/p2/VENDOR/NAME.json (Composer 2 metadata, "minified")
- crates.io     /api/v1/crates/NAME, /api/v1/crates/NAME/VERSION,
                /api/v1/crates/NAME/VERSION/dependencies; downloads from static.crates.io
- NuGet         v3 flat container: /v3-flatcontainer/ID/index.json and .../ID.VERSION.nupkg,
                dependencies from the .nuspec next to it
"""

from __future__ import annotations

import hashlib
import json
import re
import urllib.parse
import urllib.request
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from osptrack import __version__
from osptrack.ecosystems.base import lenient_version_key
from osptrack.errors import BadInput
from osptrack.jsonio import atomic_write_bytes
from osptrack.target import normalise_ecosystem, validate_name, validate_version

USER_AGENT = f"osptrack/{__version__} (package behaviour research; +https://github.com/ossf/package-analysis)"
MAX_RESPONSE_BYTES = 64 << 20
MAX_ARCHIVE_BYTES = 512 << 20

RUBYGEMS = "https://rubygems.org"
PACKAGIST_REPO = "https://repo.packagist.org"
CRATES_API = "https://crates.io/api/v1"
CRATES_STATIC = "https://static.crates.io/crates"
NUGET_FLAT = "https://api.nuget.org/v3-flatcontainer"


@dataclass(frozen=True)
class Request:
    url: str
    headers: tuple[tuple[str, str], ...] = (("User-Agent", USER_AGENT), ("Accept", "application/json"))


@dataclass(frozen=True)
class Release:
    """One resolved version: where its archive is and how to check it."""

    ecosystem: str
    name: str
    version: str
    archive_url: str
    filename: str
    sha256: str | None = None
    sha1: str | None = None  # Packagist dists carry a sha1 "shasum" when they carry any
    dependencies: tuple[tuple[str, str], ...] = field(default=())  # (name, requirement), runtime only
    yanked: bool = False


# --- request building -------------------------------------------------------------------------


def metadata_request(ecosystem: str, name: str, version: str | None = None) -> Request:
    """The first request for `name` (at `version`, or its versions list if None)."""
    eco = normalise_ecosystem(ecosystem)
    validate_name(eco, name)
    if version is not None:
        validate_version(version)
    q = urllib.parse.quote
    if eco == "rubygems":
        if version is None:
            return Request(f"{RUBYGEMS}/api/v1/gems/{q(name)}.json")
        return Request(f"{RUBYGEMS}/api/v2/rubygems/{q(name)}/versions/{q(version)}.json")
    if eco == "packagist":
        vendor, _, package = name.lower().partition("/")
        return Request(f"{PACKAGIST_REPO}/p2/{q(vendor)}/{q(package)}.json")
    if eco == "crates.io":
        if version is None:
            return Request(f"{CRATES_API}/crates/{q(name)}")
        return Request(f"{CRATES_API}/crates/{q(name)}/{q(version)}")
    if eco == "nuget":
        return Request(f"{NUGET_FLAT}/{q(name.lower())}/index.json")
    raise BadInput(f"no registry API support for {eco} here (pypi and npm go through pip and npm)")


def dependencies_request(ecosystem: str, name: str, version: str) -> Request | None:
    """A second request some registries need for dependencies (crates.io, NuGet), else None."""
    eco = normalise_ecosystem(ecosystem)
    q = urllib.parse.quote
    if eco == "crates.io":
        return Request(f"{CRATES_API}/crates/{q(name)}/{q(version)}/dependencies")
    if eco == "nuget":
        lid, lver = name.lower(), version.lower()
        return Request(f"{NUGET_FLAT}/{q(lid)}/{q(lver)}/{q(lid)}.nuspec", (("User-Agent", USER_AGENT),))
    return None


# --- response parsing -------------------------------------------------------------------------


def _json(body: bytes, what: str) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        raise BadInput(f"{what}: the registry answered with something that is not JSON") from None


def parse_metadata(ecosystem: str, name: str, version: str | None, body: bytes) -> Release | str:
    """A Release, or (when `version` is None and the response lists versions only) the
    version to ask for next. BadInput if the package or version does not exist."""
    eco = normalise_ecosystem(ecosystem)
    if eco == "rubygems":
        return _rubygems(name, version, _json(body, f"rubygems {name}"))
    if eco == "packagist":
        return _packagist(name, version, _json(body, f"packagist {name}"))
    if eco == "crates.io":
        return _crates(name, version, _json(body, f"crates.io {name}"))
    if eco == "nuget":
        return _nuget_versions(name, version, _json(body, f"nuget {name}"))
    raise BadInput(f"no registry API support for {eco}")


def _rubygems(name: str, version: str | None, doc: Any) -> Release:
    if not isinstance(doc, dict) or "version" not in doc:
        raise BadInput(f"rubygems {name}: no such gem or version")
    if version is not None and str(doc["version"]) != version:
        raise BadInput(f"rubygems {name}: asked for {version}, registry answered {doc['version']}")
    gem_name, ver = str(doc.get("name") or name), str(doc["version"])
    platform = str(doc.get("platform") or "ruby")
    filename = f"{gem_name}-{ver}.gem" if platform == "ruby" else f"{gem_name}-{ver}-{platform}.gem"
    runtime = (doc.get("dependencies") or {}).get("runtime") or []
    return Release(
        "rubygems",
        gem_name,
        ver,
        str(doc.get("gem_uri") or f"{RUBYGEMS}/gems/{filename}"),
        filename,
        sha256=_hex(doc.get("sha"), 64),
        dependencies=tuple((str(d["name"]), str(d.get("requirements") or ">= 0")) for d in runtime),
        yanked=bool(doc.get("yanked", False)),
    )


def expand_minified(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Composer 2 "minified" metadata: each entry repeats only what changed from the previous
    one, and the value "__unset" removes a key."""
    out: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    for entry in entries:
        current = dict(current)
        for key, value in entry.items():
            if value == "__unset":
                current.pop(key, None)
            else:
                current[key] = value
        out.append(current)
    return out


def _packagist(name: str, version: str | None, doc: Any) -> Release:
    packages = doc.get("packages") if isinstance(doc, dict) else None
    entries = (packages or {}).get(name.lower()) if isinstance(packages, dict) else None
    if not entries:
        raise BadInput(f"packagist {name}: no such package")
    if doc.get("minified") == "composer/2.0":
        entries = expand_minified(entries)
    stable = [e for e in entries if _is_stable(str(e.get("version_normalized") or e.get("version", "")))]
    if version is None:
        chosen = stable[0] if stable else entries[0]  # Packagist lists newest first
    else:
        want = version.lstrip("v")
        chosen = next((e for e in entries if str(e.get("version", "")).lstrip("v") == want), None)
        if chosen is None:
            raise BadInput(f"packagist {name}: no version {version}")
    dist = chosen.get("dist") or {}
    if not dist.get("url"):
        raise BadInput(
            f"packagist {name} {chosen.get('version')}: no dist archive (source-only releases are not supported)"
        )
    ver = str(chosen["version"])
    requires = chosen.get("require") or {}
    deps = tuple(
        (str(k), str(v)) for k, v in requires.items() if "/" in k and isinstance(v, str)
    )  # php, ext-* and lib-* are platform requirements, not packages
    return Release(
        "packagist",
        name.lower(),
        ver,
        str(dist["url"]),
        f"{name.lower().replace('/', '-')}-{ver.lstrip('v')}.zip",
        sha1=_hex(dist.get("shasum"), 40),
        dependencies=deps,
    )


def _is_stable(version: str) -> bool:
    return not re.search(r"(dev|alpha|beta|rc|RC|-a|-b)", version)


def _crates(name: str, version: str | None, doc: Any) -> Release | str:
    if not isinstance(doc, dict) or doc.get("errors"):
        detail = (doc.get("errors") or [{}])[0].get("detail") if isinstance(doc, dict) else None
        raise BadInput(f"crates.io {name}: {detail or 'no such crate or version'}")
    if version is None:
        crate = doc.get("crate") or {}
        latest = crate.get("max_stable_version") or crate.get("max_version") or crate.get("newest_version")
        if not latest:
            raise BadInput(f"crates.io {name}: no published version")
        return str(latest)
    info = doc.get("version") or {}
    crate_name, num = str(info.get("crate") or name), str(info.get("num") or "")
    if num != version:
        raise BadInput(f"crates.io {name}: asked for {version}, registry answered {num or 'nothing'}")
    return Release(
        "crates.io",
        crate_name,
        num,
        f"{CRATES_STATIC}/{crate_name}/{crate_name}-{num}.crate",
        f"{crate_name}-{num}.crate",
        sha256=_hex(info.get("checksum"), 64),
        yanked=bool(info.get("yanked", False)),
    )


def parse_crates_dependencies(body: bytes) -> tuple[tuple[str, str], ...]:
    """Non-optional normal and build dependencies (build ones run at install); dev ones never do."""
    doc = _json(body, "crates.io dependencies")
    deps = []
    for dep in doc.get("dependencies") or []:
        if dep.get("kind", "normal") in ("normal", "build") and not dep.get("optional", False):
            deps.append((str(dep["crate_id"]), str(dep.get("req") or "*")))
    return tuple(deps)


def _nuget_versions(name: str, version: str | None, doc: Any) -> Release:
    versions = doc.get("versions") if isinstance(doc, dict) else None
    if not versions:
        raise BadInput(f"nuget {name}: no such package")
    if version is None:
        stable = [v for v in versions if "-" not in v]
        version = _highest(stable or versions)
    elif version.lower() not in (v.lower() for v in versions):
        raise BadInput(f"nuget {name}: no version {version}")
    lid, lver = name.lower(), version.lower()
    return Release(
        "nuget", name, version, f"{NUGET_FLAT}/{lid}/{lver}/{lid}.{lver}.nupkg", f"{lid}.{lver}.nupkg"
    )


def _highest(versions: list[str]) -> str:
    return max(versions, key=lenient_version_key)


_NUSPEC_DEP = re.compile(rb"<dependency\b([^>]*)>", re.I)
_ATTR = re.compile(rb'\b(id|version)\s*=\s*"([^"]*)"', re.I)


def parse_nuspec_dependencies(body: bytes) -> tuple[tuple[str, str], ...]:
    """Dependencies from a .nuspec, all target-framework groups merged, first seen wins."""
    seen: dict[str, str] = {}
    for match in _NUSPEC_DEP.finditer(body):
        attrs = {k.lower(): v.decode(errors="replace") for k, v in _ATTR.findall(match.group(1))}
        if attrs.get(b"id"):
            seen.setdefault(attrs[b"id"], attrs.get(b"version", ""))
    return tuple(seen.items())


def _hex(value: Any, length: int) -> str | None:
    text = str(value or "").lower()
    return text if re.fullmatch(rf"[0-9a-f]{{{length}}}", text) else None


# --- the network part (not unit-tested: the registries are unreachable here) --------------------


def fetch(request: Request, limit: int = MAX_RESPONSE_BYTES, timeout: float = 60.0) -> bytes:
    req = urllib.request.Request(request.url, headers=dict(request.headers))
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - https registry URLs only
            data = resp.read(limit + 1)
    except OSError as exc:
        raise BadInput(f"{request.url}: {exc}") from None
    if len(data) > limit:
        raise BadInput(f"{request.url}: response larger than {limit} bytes")
    return data


def resolve(ecosystem: str, name: str, version: str | None) -> Release:
    """Name and optional version -> one Release, over the network."""
    eco = normalise_ecosystem(ecosystem)
    found = parse_metadata(eco, name, version, fetch(metadata_request(eco, name, version)))
    if isinstance(found, str):
        found = parse_metadata(eco, name, found, fetch(metadata_request(eco, name, found)))
        assert isinstance(found, Release)
    deps_req = dependencies_request(eco, found.name, found.version)
    if deps_req is not None:
        body = fetch(deps_req)
        deps = parse_crates_dependencies(body) if eco == "crates.io" else parse_nuspec_dependencies(body)
        found = replace(found, dependencies=deps)
    return found


def download(release: Release, dest_dir: Path) -> Path:
    """The archive's bytes into dest_dir/<filename>, checked against the registry's checksum."""
    if not release.archive_url.startswith("https://"):
        raise BadInput(f"{release.name}: refusing a non-https archive URL {release.archive_url}")
    data = fetch(Request(release.archive_url, (("User-Agent", USER_AGENT),)), limit=MAX_ARCHIVE_BYTES)
    verify(release, data)
    path = dest_dir / release.filename
    atomic_write_bytes(path, data)
    path.chmod(0o644)  # mkstemp's 0600 would hide it from the sandbox's host uid in a --deps-dir
    return path


def verify(release: Release, data: bytes) -> None:
    """BadInput if the bytes do not match a checksum the registry published."""
    if release.sha256 and hashlib.sha256(data).hexdigest() != release.sha256:
        raise BadInput(f"{release.filename}: sha256 does not match the registry's")
    if release.sha1 and hashlib.sha1(data).hexdigest() != release.sha1:  # noqa: S324 - Packagist's own choice
        raise BadInput(f"{release.filename}: sha1 does not match the registry's")
