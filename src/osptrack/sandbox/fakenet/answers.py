"""What the fake HTTP(S) servers answer, by method, path and Accept, as INetSim and FakeNet-NG do.

Pure policy (no sockets), in order:

1. chat webhooks: Discord `/api/webhooks/...` -> 204; Slack `/services/...` -> 200 `ok`; Telegram
   `/bot<token>/<method>` -> 200 `{"ok": true, "result": {}}` (what each real service answers);
2. a path ending in a script suffix (.sh .py .ps1 .js .rb .php) -> that script, harmless, writing
   the run's marker (stages.py); a binary suffix (.exe .dll .elf .bin .so ...) or `Accept:
   application/octet-stream` -> an ELF or PE stub;
3. an API (`Accept` JSON, a JSON body, or `/api/` in the path) -> 200 `{}`;
4. any other POST/PUT/PATCH (beacons, form posts, paste uploads) -> 204;
5. everything else -> a small HTML page (HEAD gets its headers only).

`Answer.summary()` is what goes into the record's `served` list.
"""

from __future__ import annotations

import posixpath
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from osptrack.sandbox.fakenet.stages import (
    BINARY_SUFFIXES,
    CONTENT_TYPES,
    SCRIPT_SUFFIXES,
    elf_stub,
    pe_stub,
    script,
)

SERVER = "nginx"
HTML = (
    b'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>Welcome</title></head>\n'
    b"<body><h1>Welcome</h1><p>It works.</p></body></html>\n"
)
_TELEGRAM = re.compile(r"^/bot\d{3,12}:[A-Za-z0-9_-]{10,}/\w+")


@dataclass(frozen=True)
class Answer:
    status: int
    kind: str  # webhook, script, binary, api, post, html, doh, websocket
    body: bytes = b""
    content_type: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def summary(self, sent_body: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status, "kind": self.kind, "content_type": self.content_type,
                               "bytes": len(self.body) if sent_body else 0}  # fmt: skip
        out.update(self.detail)
        return out


def choose(method: str, target: str, headers: Mapping[str, str], marker: str) -> Answer:
    """The answer to one request. `headers` has lower-cased names; `marker` is the run's marker path."""
    path = urllib.parse.urlsplit(target).path or "/"
    accept = headers.get("accept", "").lower()
    ctype = headers.get("content-type", "").lower()
    writes = method in ("POST", "PUT", "PATCH")
    if path.startswith("/api/webhooks/") and writes:
        return Answer(204, "webhook", detail={"service": "discord"})
    if path.startswith("/services/") and writes and "slack" in headers.get("host", "").lower():
        return Answer(200, "webhook", b"ok", "text/html", {"service": "slack"})
    if _TELEGRAM.match(path):
        return Answer(200, "webhook", b'{"ok":true,"result":{}}', "application/json", {"service": "telegram"})
    suffix = posixpath.splitext(path.lower())[1]
    if not writes:
        lang = SCRIPT_SUFFIXES.get(suffix)
        if lang is not None:
            return Answer(
                200, "script", script(lang, marker), CONTENT_TYPES[lang], {"lang": lang, "marker": marker}
            )
        binary = BINARY_SUFFIXES.get(suffix) or ("elf" if "application/octet-stream" in accept else None)
        if binary is not None:
            body = pe_stub() if binary == "pe" else elf_stub(marker)
            detail = {"format": binary, **({"marker": marker} if binary == "elf" else {})}
            return Answer(200, "binary", body, CONTENT_TYPES[binary], detail)
    if "json" in accept or "json" in ctype or "/api/" in path:
        return Answer(200, "api", b"{}", "application/json")
    if writes:
        return Answer(204, "post")
    return Answer(200, "html", HTML, "text/html; charset=utf-8")


def response_headers(answer: Answer, close: bool) -> list[tuple[str, str]]:
    headers = [("Server", SERVER)]
    if answer.status != 204:
        if answer.content_type:
            headers.append(("Content-Type", answer.content_type))
        headers.append(("Content-Length", str(len(answer.body))))
    if close:
        headers.append(("Connection", "close"))
    return headers
