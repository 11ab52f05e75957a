"""The HTTP side the fake upstream registries share: a threaded server on 127.0.0.1 that asks its
subclass for each path's answer and misbehaves as its `mode` says."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class LoopbackFake:
    """Subclasses are dataclasses with `mode: str` and `hits: list[str]`, and define `reply`.

    Modes here: "truncated" (a file's Content-Length promises 1000 bytes more than are sent),
    "truncated-page" (the same for an index page). Subclasses do "malformed" and "badhash".
    """

    mode: str
    hits: list[str]
    server: ThreadingHTTPServer

    def reply(self, path: str) -> tuple[bytes | None, str, bool]:
        """(body or None for a 404, content type, whether it is a file rather than an index page)"""
        raise NotImplementedError

    def start(self) -> Any:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                fake.hits.append(self.path)
                body, ctype, is_file = fake.reply(self.path)
                if body is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                truncate = (fake.mode == "truncated" and is_file) or (
                    fake.mode == "truncated-page" and not is_file
                )
                self.send_response(200)
                if ctype:
                    self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body) + (1000 if truncate else 0)))
                self.end_headers()
                self.wfile.write(body)
                if truncate:
                    self.close_connection = True

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"
