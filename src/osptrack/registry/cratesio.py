"""crates.io's sparse index (RFC 2789), which cargo >= 1.68 reads over plain HTTP.

Inside the sandbox cargo's config replaces crates-io with `sparse+<REGISTRY_URL>/crates/`:

    /crates/config.json                 {"dl": ".../crates/dl/{crate}/{version}"}
    /crates/1/a, 2/ab, 3/a/abc, ab/cd/abcd...   one JSON line per version (the index file)
    /crates/dl/<name>/<version>         the .crate

Each index line carries `cksum` (the .crate's sha256, which cargo checks the download against)
and the dependencies, read on the host from the .crate's Cargo.toml (which `cargo package`
normalises), or, online, taken as index.crates.io published them.
"""

from __future__ import annotations

import tomllib
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from osptrack.ecosystems.archives import depth, read_member
from osptrack.errors import BadInput
from osptrack.jsonio import dumps
from osptrack.registry import REGISTRY_URL
from osptrack.registry.flavour import Answer, Miss, Page, Projects, Serve
from osptrack.registry.model import Dist
from osptrack.target import normalise_name

if TYPE_CHECKING:
    from osptrack.registry.upstream import Upstream

PREFIX = "/crates/"
INDEX_URL = f"sparse+{REGISTRY_URL}{PREFIX}"
KINDS = {"dependencies": "normal", "dev-dependencies": "dev", "build-dependencies": "build"}
KINDS |= {k.replace("-", "_"): v for k, v in KINDS.items()}
JSON_TYPE = "application/json"


def index_path(name: str) -> str:
    """The index file of `name` below the index root, as cargo asks for it (lowercase)."""
    n = name.lower()
    if len(n) <= 2:
        return f"{len(n)}/{n}"
    if len(n) == 3:
        return f"3/{n[0]}/{n}"
    return f"{n[:2]}/{n[2:4]}/{n}"


def _name_from_index_path(parts: list[str]) -> str | None:
    if not parts or not parts[-1]:
        return None
    name = parts[-1]
    return name if index_path(name) == "/".join(parts).lower() else None


def index_entry(manifest: dict[str, Any]) -> dict[str, Any] | None:
    """The index line (minus `cksum`) that crates.io would publish for this Cargo.toml."""
    package = manifest.get("package")
    if not isinstance(package, dict) or not isinstance(package.get("name"), str):
        return None
    version = package.get("version")
    if not isinstance(version, str):
        return None
    deps: list[dict[str, Any]] = []
    _deps(manifest, None, deps)
    targets = manifest.get("target")
    for cfg, table in targets.items() if isinstance(targets, dict) else ():
        if isinstance(table, dict):
            _deps(table, str(cfg), deps)
    declared = manifest.get("features")
    features = {
        str(k): [str(x) for x in v]
        for k, v in (declared.items() if isinstance(declared, dict) else ())
        if isinstance(v, list)
    }
    entry: dict[str, Any] = {"name": package["name"], "vers": version, "deps": deps}
    # `dep:` and `?/` features need the v2 field, which older cargo ignores
    if any(f.startswith("dep:") or "?/" in f for fs in features.values() for f in fs):
        entry |= {"features": {}, "features2": features, "v": 2}
    else:
        entry["features"] = features
    entry["yanked"] = False
    if isinstance(package.get("links"), str):
        entry["links"] = package["links"]
    if isinstance(package.get("rust-version"), str):
        entry["rust_version"] = package["rust-version"]
    return entry


def _deps(table: dict[str, Any], target: str | None, out: list[dict[str, Any]]) -> None:
    for section, kind in KINDS.items():
        specs = table.get(section)
        for key, spec in specs.items() if isinstance(specs, dict) else ():
            if isinstance(spec, str):
                spec = {"version": spec}
            if not isinstance(spec, dict) or ("version" not in spec and ("path" in spec or "git" in spec)):
                continue  # a path or git dependency: `cargo package` drops it (dev) or refuses
            dep: dict[str, Any] = {
                "name": str(key),
                "req": str(spec.get("version", "*")),
                "features": [str(f) for f in spec.get("features", []) if isinstance(f, str)],
                "optional": bool(spec.get("optional", False)),
                "default_features": bool(spec.get("default-features", spec.get("default_features", True))),
                "target": target,
                "kind": kind,
            }
            if isinstance(spec.get("package"), str):
                dep["package"] = spec["package"]  # renamed: `name` is how the code calls it
            out.append(dep)


class CratesIo:
    ecosystem = "crates.io"
    prefix = PREFIX

    def describe(self, path: Path) -> tuple[str, str, dict[str, Any]] | None:
        if not path.name.endswith(".crate"):
            return None
        try:
            found = read_member(path, lambda n: depth(n) == 1 and n.endswith("/Cargo.toml"))
            manifest = tomllib.loads(found[1].decode()) if found else None
        except (BadInput, UnicodeDecodeError, tomllib.TOMLDecodeError):
            return None
        entry = index_entry(manifest) if manifest else None
        if entry is None:
            return None
        return entry["name"], entry["vers"], entry

    def route(self, rest: str, projects: Projects) -> Answer:
        parts = [urllib.parse.unquote(p) for p in rest.strip("/").split("/")]
        if parts == ["config.json"]:
            doc = {"dl": f"{REGISTRY_URL}{PREFIX}dl/{{crate}}/{{version}}", "api": None}
            return Page(200, JSON_TYPE, dumps(doc))
        if len(parts) == 3 and parts[0] == "dl":
            name = normalise_name(self.ecosystem, parts[1])
            found = next((d for d in projects(name) if d.version == parts[2]), None)
            return Serve(found) if found else Miss(name, parts[2])
        raw = _name_from_index_path(parts)
        if raw is None:
            return Page(404, "text/plain", b"not found\n")
        name = normalise_name(self.ecosystem, raw)
        lines = []
        for d in projects(name):
            entry = {**d.manifest, "cksum": d.sha256}
            if entry.get("name") and normalise_name(self.ecosystem, str(entry["name"])) == name:
                lines.append(dumps(entry))
        if not lines:
            return Miss(name)
        return Page(200, "text/plain; charset=utf-8", b"\n".join(lines) + b"\n")

    def upstream_project(self, upstream: Upstream, name: str) -> list[Dist]:
        url = f"{upstream.crates_index.rstrip('/')}/{index_path(name)}"
        return parse_index_file(name, url, upstream.get(url), upstream.crates_dl)


def parse_index_file(name: str, url: str, body: bytes, dl: str) -> list[Dist]:
    """index.crates.io's file for `name` -> one Dist per version that carries a sha256 cksum."""
    from orjson import JSONDecodeError, loads

    from osptrack.registry.upstream import UpstreamError

    host = urllib.parse.urlsplit(url).hostname
    try:
        text = body.decode()
    except UnicodeDecodeError:
        raise UpstreamError(f"{host} index file of {name}: not UTF-8 text ({len(body)} bytes)") from None
    out: list[Dist] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = loads(line)
        except JSONDecodeError:
            raise UpstreamError(f"{host} index file of {name}: line {number} is not JSON") from None
        if not isinstance(entry, dict):
            raise UpstreamError(f"{host} index file of {name}: line {number} is not a JSON object")
        vers, cksum, real = entry.get("vers"), entry.get("cksum"), entry.get("name")
        if not (
            isinstance(vers, str) and isinstance(real, str) and isinstance(cksum, str) and len(cksum) == 64
        ):
            continue  # a version that cannot be checked is not offered
        out.append(
            Dist(
                "crates.io",
                normalise_name("crates.io", real),
                vers,
                f"{real}-{vers}.crate",
                "upstream",
                cksum.lower(),
                upstream_url=f"{dl.rstrip('/')}/{real}/{real}-{vers}.crate",
                manifest={k: v for k, v in entry.items() if k != "cksum"},
            )  # fmt: skip
        )
    if not out and text.strip():
        raise UpstreamError(f"{host} index file of {name}: no version with a name, vers and sha256 cksum")
    return out
