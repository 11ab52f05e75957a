"""npm's registry API for one package: the packument, with tarballs served by the same service.

Every version carries `dist.tarball` (pointing back at the service), `dist.integrity` (sha512)
and `dist.shasum` (sha1), which npm checks each download against; npm then places nested and
conflicting versions itself, as against the real registry.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterable
from typing import TYPE_CHECKING

from osptrack.jsonio import dumps
from osptrack.registry.model import Dist

if TYPE_CHECKING:
    import semantic_version

JSON_TYPE = "application/json"


def tarball_path(name: str, version: str) -> str:
    """`<name>/-/<basename>-<version>.tgz`, the layout registry.npmjs.org uses."""
    return f"{name}/-/{name.rsplit('/', 1)[-1]}-{version}.tgz"


def parse_path(path: str) -> tuple[str, str | None] | None:
    """A request path below /npm/ -> (package name, tarball version or None), else None.

    npm asks for scoped packuments as `@scope%2fname`; tarballs as `@scope/name/-/name-1.0.0.tgz`.
    """
    path = urllib.parse.unquote(path).strip("/")
    if not path:
        return None
    if "/-/" in path:
        name, _, filename = path.partition("/-/")
        base = name.rsplit("/", 1)[-1]
        if not filename.startswith(f"{base}-") or not filename.endswith(".tgz"):
            return None
        return name.lower(), filename[len(base) + 1 : -len(".tgz")]
    parts = path.split("/")
    if parts[0].startswith("@") and len(parts) >= 2:
        return f"{parts[0]}/{parts[1]}".lower(), None
    return parts[0].lower(), None


def _semver_key(v: str) -> tuple[int, semantic_version.Version | str]:
    import semantic_version  # 28 ms: loaded when npm first asks for a packument, not at start-up

    try:
        return (1, semantic_version.Version(v))
    except ValueError:
        return (0, v)


def packument(name: str, dists: Iterable[Dist], base_url: str, tags: dict[str, str] | None = None) -> bytes:
    versions: dict[str, dict[str, object]] = {}
    for d in dists:
        dist: dict[str, object] = {"tarball": f"{base_url}{tarball_path(name, d.version)}"}
        if d.integrity:
            dist["integrity"] = d.integrity
        if d.shasum:
            dist["shasum"] = d.shasum
        versions[d.version] = {"name": name, "version": d.version, **d.manifest, "dist": dist}
    import semantic_version

    ordered = sorted(versions, key=_semver_key)
    dist_tags = {k: v for k, v in (tags or {}).items() if v in versions}
    stable = [v for v in ordered if _semver_key(v)[0] and not semantic_version.Version(v).prerelease]
    if "latest" not in dist_tags and ordered:
        dist_tags["latest"] = (stable or ordered)[-1]
    doc = {"name": name, "dist-tags": dist_tags, "versions": {v: versions[v] for v in ordered}}
    return dumps(doc)
