"""A fake PyPI + npm registry on loopback, serving archives built from source, with ways to misbehave."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from osptrack.registry.upstream import Upstream


@dataclass
class FakeRegistry:
    pypi: dict[str, list[Path]] = field(default_factory=dict)  # normalised name -> files
    npm: dict[str, list[tuple[str, dict, Path]]] = field(
        default_factory=dict
    )  # name -> (version, manifest, tgz)
    mode: str = "ok"  # "ok", "malformed", "truncated", "truncated-page", "badhash"
    hits: list[str] = field(default_factory=list)

    def start(self) -> FakeRegistry:
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                registry.hits.append(self.path)
                body, ctype = registry.answer(self.path)
                if body is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                is_file = "/files/" in self.path or "/-/" in self.path
                truncate = (registry.mode == "truncated" and is_file) or (
                    registry.mode == "truncated-page" and not is_file
                )
                self.send_header("Content-Length", str(len(body) + (1000 if truncate else 0)))
                self.end_headers()
                self.wfile.write(body)
                if truncate:
                    self.close_connection = True

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

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
