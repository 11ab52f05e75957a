"""A fake PyPI + npm registry on loopback, serving archives built from source, with ways to misbehave."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from loopback_fake import LoopbackFake

from osptrack.registry.upstream import Upstream


@dataclass
class FakeRegistry(LoopbackFake):
    pypi: dict[str, list[Path]] = field(default_factory=dict)  # normalised name -> files
    npm: dict[str, list[tuple[str, dict, Path]]] = field(
        default_factory=dict
    )  # name -> (version, manifest, tgz)
    mode: str = "ok"  # "ok", "malformed", "truncated", "truncated-page", "badhash"
    hits: list[str] = field(default_factory=list)

    def reply(self, path: str) -> tuple[bytes | None, str, bool]:
        body, ctype = self.answer(path)
        return body, ctype, "/files/" in path or "/-/" in path

    def upstream(self) -> Upstream:
        return Upstream(
            pypi_simple=f"{self.base}/simple", npm=f"{self.base}/npm", allowed_hosts=frozenset({"127.0.0.1"})
        )

    def answer(self, path: str) -> tuple[bytes | None, str]:
        if path.startswith("/simple/"):
            name = path.strip("/").split("/")[1]
            files = self.pypi.get(name)
            if files is None:
                return None, ""
            if self.mode == "malformed":
                return b'{"files": [{"filename": ', "application/vnd.pypi.simple.v1+json"
            doc = {
                "meta": {"api-version": "1.1"},
                "name": name,
                "files": [
                    {
                        "filename": f.name,
                        "url": f"{self.base}/files/{f.name}",
                        "hashes": {"sha256": hashlib.sha256(f.read_bytes()).hexdigest()},
                        "requires-python": ">=3.7",
                    }
                    for f in files
                ],
            }
            return json.dumps(doc).encode(), "application/vnd.pypi.simple.v1+json"
        if path.startswith("/files/"):
            fn = path.rsplit("/", 1)[-1]
            for files in self.pypi.values():
                for f in files:
                    if f.name == fn:
                        data = f.read_bytes()
                        return (
                            data[:-10] + b"x" * 10 if self.mode == "badhash" else data
                        ), "application/octet-stream"
            return None, ""
        if path.startswith("/npm/"):
            rest = path[len("/npm/") :].replace("%2f", "/").replace("%2F", "/")
            if "/-/" in rest:
                name, _, fn = rest.partition("/-/")
                for _ver, _m, tgz in self.npm.get(name, []):
                    if tgz.name == fn:
                        data = tgz.read_bytes()
                        return (
                            data[:-10] + b"x" * 10 if self.mode == "badhash" else data
                        ), "application/octet-stream"
                return None, ""
            versions = self.npm.get(rest)
            if versions is None:
                return None, ""
            if self.mode == "malformed":
                return b"<html>oops", "text/html"
            doc = {
                "name": rest,
                "dist-tags": {"latest": versions[-1][0]},
                "versions": {
                    ver: {
                        **manifest,
                        "dist": {
                            "tarball": f"{self.base}/npm/{rest}/-/{tgz.name}",
                            "integrity": "sha512-"
                            + base64.b64encode(hashlib.sha512(tgz.read_bytes()).digest()).decode(),
                            "shasum": hashlib.sha1(tgz.read_bytes()).hexdigest(),
                        },
                    }
                    for ver, manifest, tgz in versions
                },
            }
            return json.dumps(doc).encode(), "application/vnd.npm.install-v1+json"
        return None, ""
