"""A fake crates.io / Packagist / RubyGems on loopback, serving archives built from source, with
the same ways to misbehave as fake_upstream.FakeRegistry ("malformed", "truncated", "badhash")."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from loopback_fake import LoopbackFake

from osptrack.registry.cratesio import index_path
from osptrack.registry.upstream import Upstream


@dataclass
class FakeEcosystems(LoopbackFake):
    crates: dict[str, list[tuple[dict, Path]]] = field(default_factory=dict)  # name -> (index line, .crate)
    composer: dict[str, list[tuple[dict, Path]]] = field(default_factory=dict)  # name -> (composer.json, zip)
    gems: dict[str, list[tuple[str, str, Path]]] = field(default_factory=dict)  # name -> (version, deps, gem)
    mode: str = "ok"
    hits: list[str] = field(default_factory=list)

    def reply(self, path: str) -> tuple[bytes | None, str, bool]:
        body, is_file = self.answer(path)
        if body is not None and self.mode == "badhash" and is_file:
            body = body[:-10] + b"x" * 10
        return body, "", is_file

    def upstream(self) -> Upstream:
        return Upstream(
            crates_index=f"{self.base}/index",
            crates_dl=f"{self.base}/dl",
            packagist=f"{self.base}/packagist",
            rubygems=f"{self.base}/rubygems",
            rubygems_files=f"{self.base}/rubygems",
            allowed_hosts=frozenset({"127.0.0.1"}),
        )

    def answer(self, path: str) -> tuple[bytes | None, bool]:
        if path.startswith("/index/"):
            for name, versions in self.crates.items():
                if path == f"/index/{index_path(name)}":
                    if self.mode == "malformed":
                        return b'{"name": "' + name.encode() + b'", "vers": ', False
                    lines = [
                        json.dumps({**line, "cksum": hashlib.sha256(c.read_bytes()).hexdigest()})
                        for line, c in versions
                    ]
                    return ("\n".join(lines) + "\n").encode(), False
            return None, False
        if path.startswith("/dl/"):
            fn = path.rsplit("/", 1)[-1]
            for versions in self.crates.values():
                for _, c in versions:
                    if c.name == fn:
                        return c.read_bytes(), True
            return None, True
        if path.startswith("/packagist/p2/"):
            name = path[len("/packagist/p2/") :].removesuffix(".json")
            versions = self.composer.get(name)
            if versions is None:
                return None, False
            if self.mode == "malformed":
                return b"<html>rate limited", False
            entries = [
                {
                    **manifest,
                    "dist": {
                        "type": "zip",
                        "url": f"{self.base}/zips/{z.name}",
                        "shasum": hashlib.sha1(z.read_bytes()).hexdigest(),
                    },
                }
                for manifest, z in versions
            ]
            return json.dumps({"packages": {name: entries}}).encode(), False
        if path.startswith("/zips/"):
            fn = path.rsplit("/", 1)[-1]
            for versions in self.composer.values():
                for _, z in versions:
                    if z.name == fn:
                        return z.read_bytes(), True
            return None, True
        if path.startswith("/rubygems/info/"):
            versions = self.gems.get(path.rsplit("/", 1)[-1])
            if versions is None:
                return None, False
            if self.mode == "malformed":
                return b"<html>rate limited", False
            lines = [
                f"{v} {deps}|checksum:{hashlib.sha256(g.read_bytes()).hexdigest()}" for v, deps, g in versions
            ]
            return ("---\n" + "\n".join(lines) + "\n").encode(), False
        if path.startswith("/rubygems/gems/"):
            fn = path.rsplit("/", 1)[-1]
            for versions in self.gems.values():
                for _, _, g in versions:
                    if g.name == fn:
                        return g.read_bytes(), True
            return None, True
        return None, False
