"""A gem source, as RubyGems 3.3's `gem install --source` reads one.

    /rubygems/                                        200: the source speaks the compact index
    /rubygems/info/<name>                             compact index: one line per version
    /rubygems/quick/Marshal.4.8/<full>.gemspec.rz     the gem's specification (rubymarshal.py)
    /rubygems/gems/<full>.gem                         the gem

`gem` resolves from the info lines (dependencies, required ruby), then loads each chosen gem's
Marshal specification and downloads the .gem. A gem's metadata is read on the host from its
metadata.gz YAML, parsed with a safe loader that turns Ruby's tags into plain maps (nothing is
constructed or run); online it is what index.rubygems.org published, whose `checksum` (sha256)
the download is checked against.
"""

from __future__ import annotations

import gzip
import io
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from osptrack.ecosystems.archives import read_member
from osptrack.errors import BadInput
from osptrack.registry.flavour import Answer, Miss, Page, Projects, Serve
from osptrack.registry.model import Dist
from osptrack.registry.rubymarshal import gemspec_rz
from osptrack.target import normalise_name

if TYPE_CHECKING:
    from osptrack.registry.upstream import Upstream

PREFIX = "/rubygems/"
MAX_METADATA_BYTES = 4 << 20
TEXT = "text/plain; charset=utf-8"
Reqs = list[tuple[str, str]]


_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when built in


class _GemSpecLoader(_SafeLoader):  # type: ignore[valid-type,misc]
    """YAML's safe loader, reading `!ruby/object:...` and friends as plain maps, lists, strings."""


def _untagged(loader: yaml.SafeLoader, _suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)  # type: ignore[arg-type]


_GemSpecLoader.add_multi_constructor("!ruby/", _untagged)
_GemSpecLoader.add_multi_constructor("tag:yaml.org,2002:", _untagged)  # e.g. !binary


def full_name(name: str, version: str, platform: str) -> str:
    return f"{name}-{version}" if platform in ("", "ruby") else f"{name}-{version}-{platform}"


def _requirements(value: Any) -> Reqs:
    """A Gem::Requirement map -> [(op, version)]."""
    reqs = value.get("requirements") if isinstance(value, dict) else None
    out: Reqs = []
    for pair in reqs if isinstance(reqs, list) else ():
        if isinstance(pair, list) and len(pair) == 2:
            ver = pair[1].get("version") if isinstance(pair[1], dict) else pair[1]
            out.append((str(pair[0]), str(ver)))
    return out


def spec_fields(doc: Any) -> dict[str, Any] | None:
    """What the index needs from a gemspec YAML document (runtime dependencies only)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("name"), str):
        return None
    ver = doc.get("version")
    ver = ver.get("version") if isinstance(ver, dict) else ver
    if not isinstance(ver, str | int | float):
        return None
    deps = []
    for dep in doc.get("dependencies") or []:
        if not isinstance(dep, dict) or not isinstance(dep.get("name"), str):
            continue
        if str(dep.get("type", ":runtime")).lstrip(":") != "runtime":
            continue
        deps.append([dep["name"], _requirements(dep.get("requirement"))])
    platform = doc.get("platform")
    authors = doc.get("authors")
    return {
        "name": doc["name"],
        "version": str(ver),
        "platform": platform if isinstance(platform, str) and platform else "ruby",
        "deps": deps,
        "ruby": _requirements(doc.get("required_ruby_version")),
        "rubygems": _requirements(doc.get("required_rubygems_version")),
        "summary": str(doc.get("summary") or ""),
        "authors": [str(a) for a in authors] if isinstance(authors, list) else [],
    }


def _req_text(reqs: Reqs) -> str:
    return "&".join(f"{op} {v}" for op, v in reqs) or ">= 0"


def info_line(d: Dist) -> str:
    m = d.manifest
    deps = ",".join(f"{name}:{_req_text([tuple(r) for r in reqs])}" for name, reqs in m.get("deps", []))  # type: ignore[misc]
    extra = [f"checksum:{d.sha256}"] if d.sha256 else []
    for key in ("ruby", "rubygems"):
        if m.get(key):
            extra.append(f"{key}:{_req_text([tuple(r) for r in m[key]])}")  # type: ignore[misc]
    platform = m.get("platform", "ruby")
    head = d.version if platform == "ruby" else f"{d.version}-{platform}"
    return f"{head} {deps}|{','.join(extra)}"


class RubyGems:
    ecosystem = "rubygems"
    prefix = PREFIX

    def describe(self, path: Path) -> tuple[str, str, dict[str, Any]] | None:
        if not path.name.endswith(".gem"):
            return None
        try:
            found = read_member(path, lambda n: n == "metadata.gz")
            if found is None:
                return None
            with gzip.GzipFile(fileobj=io.BytesIO(found[1])) as fh:
                text = fh.read(MAX_METADATA_BYTES + 1)
            if len(text) > MAX_METADATA_BYTES:
                return None
            fields = spec_fields(yaml.load(text, Loader=_GemSpecLoader))  # noqa: S506 - safe loader subclass
        except (BadInput, OSError, EOFError, yaml.YAMLError, RecursionError):
            return None
        if fields is None:
            return None
        return fields["name"], fields["version"], fields

    def route(self, rest: str, projects: Projects) -> Answer:
        path = urllib.parse.unquote(rest).strip("/")
        if path == "":
            return Page(200, TEXT, b"---\n")  # `gem` takes a 200 here to mean: compact index
        if path.startswith("info/") and "/" not in path[5:]:
            name = normalise_name(self.ecosystem, path[5:])
            dists = projects(name)
            if not dists:
                # RubyGems 3.3 drops the compact index for the whole source on a 404 here (and
                # falls back to specs.4.8.gz), so a miss is an empty list: still recorded
                return Miss(name, page=Page(200, TEXT, b"---\n"))
            lines = "".join(info_line(d) + "\n" for d in dists)
            return Page(200, TEXT, ("---\n" + lines).encode())
        for folder, suffix in (("quick/Marshal.4.8/", ".gemspec.rz"), ("gems/", ".gem")):
            if path.startswith(folder) and path.endswith(suffix):
                stem = path[len(folder) : -len(suffix)]
                found = self._by_full_name(stem, projects)
                if found is None:
                    return Miss(stem.rpartition("-")[0] or stem)
                if suffix == ".gem":
                    return Serve(found)
                m = found.manifest
                tuples = lambda rs: [tuple(r) for r in rs]  # noqa: E731 - JSON lists back to pairs
                body = gemspec_rz(
                    m.get("name", found.name), found.version, m.get("platform", "ruby"),
                    [(n, tuples(r)) for n, r in m.get("deps", [])], tuples(m.get("ruby", [])),
                    tuples(m.get("rubygems", [])), m.get("summary", ""), m.get("authors"),
                )  # fmt: skip
                return Page(200, "application/octet-stream", body)
        return Page(404, TEXT, b"not found\n")

    @staticmethod
    def _by_full_name(stem: str, projects: Projects) -> Dist | None:
        """`<name>-<version>[-<platform>]`: the name may hold dashes, so try each split."""
        parts = stem.split("-")
        for i in range(1, len(parts)):
            name = normalise_name("rubygems", "-".join(parts[:i]))
            for d in projects(name) if _plausible_version(parts[i]) else ():
                m = d.manifest
                if full_name(str(m.get("name", d.name)), d.version, str(m.get("platform", "ruby"))) == stem:
                    return d
        return None

    def upstream_project(self, upstream: Upstream, name: str) -> list[Dist]:
        url = f"{upstream.rubygems.rstrip('/')}/info/{urllib.parse.quote(name)}"
        return parse_info(name, url, upstream.get(url), upstream.rubygems_files)


def _plausible_version(text: str) -> bool:
    return bool(text) and text[0].isdigit()


def _parse_reqs(text: str) -> Reqs:
    out: Reqs = []
    for part in text.split("&"):
        op, _, ver = part.strip().partition(" ")
        if ver:
            out.append((op, ver.strip()))
    return out


def parse_info(name: str, url: str, body: bytes, files_base: str) -> list[Dist]:
    """index.rubygems.org's compact index file -> one Dist per version with a sha256 checksum."""
    from osptrack.registry.upstream import UpstreamError

    host = urllib.parse.urlsplit(url).hostname
    try:
        text = body.decode()
    except UnicodeDecodeError:
        raise UpstreamError(f"{host} info of {name}: not UTF-8 text ({len(body)} bytes)") from None
    lines = text.split("\n")
    if "---" not in lines:
        raise UpstreamError(f"{host} info of {name}: not a compact index file (no '---' line)")
    out: list[Dist] = []
    for line in lines[lines.index("---") + 1 :]:
        if not line.strip():
            continue
        head, _, rest = line.partition(" ")
        deps_text, _, req_text = rest.partition("|")
        ver, _, platform = head.partition("-")
        extra = dict(p.split(":", 1) for p in req_text.split(",") if ":" in p)
        sha = extra.get("checksum", "")
        if len(sha) != 64 or not ver:
            continue  # a version that cannot be checked is not offered
        deps = [
            [d.split(":", 1)[0], _parse_reqs(d.split(":", 1)[1])] for d in deps_text.split(",") if ":" in d
        ]
        fields = {
            "name": name, "version": ver, "platform": platform or "ruby", "deps": deps,
            "ruby": _parse_reqs(extra.get("ruby", "")), "rubygems": _parse_reqs(extra.get("rubygems", "")),
        }  # fmt: skip
        file = f"{full_name(name, ver, platform or 'ruby')}.gem"
        out.append(
            Dist(
                "rubygems",
                normalise_name("rubygems", name),
                ver,
                file,
                "upstream",
                sha.lower(),
                upstream_url=f"{files_base.rstrip('/')}/gems/{file}",
                manifest=fields,
            )  # fmt: skip
        )
    return out
