"""A Composer repository (the v2 metadata protocol packagist.org speaks), with zip dists.

Inside the sandbox the project's composer.json lists `{"type": "composer", "url":
"<REGISTRY_URL>/packagist"}` and disables packagist.org:

    /packagist/packages.json                       {"metadata-url": "/packagist/p2/%package%.json"}
    /packagist/p2/<vendor>/<name>.json             every version: its composer.json + dist
    /packagist/dists/<vendor>/<name>/<version>.zip the zip

Each dist carries `shasum` (sha1), which Composer checks the download against. A version's
fields are the zip's own composer.json, read on the host (never run); online, they are what
repo.packagist.org published (its "minified" form expanded).
"""

from __future__ import annotations

import json
import re
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from osptrack.ecosystems.archives import read_member
from osptrack.errors import BadInput
from osptrack.jsonio import dumps
from osptrack.registry import REGISTRY_URL
from osptrack.registry.flavour import Answer, Miss, Page, Projects, Serve
from osptrack.registry.model import Dist
from osptrack.target import normalise_name

if TYPE_CHECKING:
    from osptrack.registry.upstream import Upstream

PREFIX = "/packagist/"
REPOSITORY_URL = f"{REGISTRY_URL}/packagist"
JSON_TYPE = "application/json"
MAX_MANIFEST = 4 << 20
_NAME = re.compile(r"^[a-z0-9]([_.-]?[a-z0-9]+)*/[a-z0-9](([_.]|-{1,2})?[a-z0-9]+)*$")
_VERSION_IN_FILENAME = re.compile(r"-v?(\d[\w.+-]*?)\.zip$")
# What a repository's version entry must not carry over from a package's own composer.json.
_DROPPED = ("dist", "source", "repositories", "config", "minimum-stability", "prefer-stable", "version")


def dist_path(name: str, version: str) -> str:
    return f"dists/{name}/{urllib.parse.quote(version, safe='')}.zip"


class Packagist:
    ecosystem = "packagist"
    prefix = PREFIX

    def describe(self, path: Path) -> tuple[str, str, dict[str, Any]] | None:
        if not path.name.endswith(".zip"):
            return None
        try:
            found = read_member(
                path, lambda n: n.strip("/").count("/") <= 1 and n.rsplit("/", 1)[-1] == "composer.json"
            )
            manifest = json.loads(found[1]) if found and len(found[1]) <= MAX_MANIFEST else None
        except (BadInput, ValueError):
            return None
        if not isinstance(manifest, dict) or not isinstance(manifest.get("name"), str):
            return None
        version = manifest.get("version")
        if not isinstance(version, str) or not version.strip():
            # a GitHub zipball (what Packagist serves) has no version: the file name says it
            m = _VERSION_IN_FILENAME.search(path.name)
            if m is None:
                return None
            version = m.group(1)
        fields = {k: v for k, v in manifest.items() if k not in _DROPPED}
        return manifest["name"], version.strip(), fields

    def route(self, rest: str, projects: Projects) -> Answer:
        path = urllib.parse.unquote(rest.strip("/"))
        if path == "packages.json":
            doc = {"packages": [], "metadata-url": f"{PREFIX}p2/%package%.json"}
            return Page(200, JSON_TYPE, dumps(doc))
        if path.startswith("p2/") and path.endswith(".json"):
            name = path[3:-5]
            if name.endswith("~dev"):  # the dev-branch half of a package: none are served
                return Page(200, JSON_TYPE, dumps({"packages": {name[:-4]: []}}))
            name = normalise_name(self.ecosystem, name)
            dists = projects(name) if _NAME.match(name) else []
            if not dists:
                return Miss(name)
            return Page(200, JSON_TYPE, metadata(name, dists))
        if path.startswith("dists/") and path.endswith(".zip"):
            name, _, version = path[len("dists/") : -len(".zip")].rpartition("/")
            name = normalise_name(self.ecosystem, name)
            found = next((d for d in projects(name) if d.version == version), None)
            return Serve(found) if found else Miss(name, version)
        return Page(404, "text/plain", b"not found\n")

    def upstream_project(self, upstream: Upstream, name: str) -> list[Dist]:
        url = f"{upstream.packagist.rstrip('/')}/p2/{urllib.parse.quote(name)}.json"
        return parse_p2(name, url, upstream.get(url))


def metadata(name: str, dists: list[Dist]) -> bytes:
    versions = []
    for d in dists:
        dist: dict[str, Any] = {"type": "zip", "url": f"{REGISTRY_URL}{PREFIX}{dist_path(name, d.version)}"}
        if d.shasum:
            dist["shasum"] = d.shasum
        versions.append({**d.manifest, "name": name, "version": d.version, "dist": dist})
    return dumps({"packages": {name: versions}})


def expand_minified(entries: list[Any]) -> list[dict[str, Any]]:
    """Composer 2's "minified" form: each version repeats only what changed from the previous
    one, and "__unset" removes a field (composer/metadata-minifier)."""
    out: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        current = {**current, **entry}
        current = {k: v for k, v in current.items() if v != "__unset"}
        out.append(current)
    return out


def parse_p2(name: str, url: str, body: bytes) -> list[Dist]:
    """repo.packagist.org's p2 file -> one Dist per version with a zip dist."""
    from osptrack.registry.upstream import UpstreamError

    host = urllib.parse.urlsplit(url).hostname
    try:
        doc = json.loads(body)
    except ValueError:
        raise UpstreamError(
            f"{host} metadata of {name}: the registry's answer is not JSON ({len(body)} bytes)"
        ) from None
    packages = doc.get("packages") if isinstance(doc, dict) else None
    entries = packages.get(name) if isinstance(packages, dict) else None
    if not isinstance(entries, list):
        raise UpstreamError(f"{host} metadata of {name}: no 'packages' list for {name}")
    if doc.get("minified") == "composer/2.0":
        entries = expand_minified(entries)
    out: list[Dist] = []
    for entry in entries:
        dist = entry.get("dist") if isinstance(entry, dict) else None
        version = entry.get("version") if isinstance(entry, dict) else None
        if not isinstance(dist, dict) or dist.get("type") != "zip" or not isinstance(dist.get("url"), str):
            continue
        if not isinstance(version, str):
            continue
        shasum = dist.get("shasum") if isinstance(dist.get("shasum"), str) and dist.get("shasum") else None
        fields = {k: v for k, v in entry.items() if k not in _DROPPED}
        out.append(
            Dist(
                "packagist",
                name,
                version,
                f"{name.replace('/', '-')}-{version}.zip",
                "upstream",
                shasum=shasum,
                upstream_url=dist["url"],
                manifest=fields,
            )  # fmt: skip
        )
    return out
