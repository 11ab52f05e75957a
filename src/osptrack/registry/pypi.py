"""PyPI's simple repository API for one project: PEP 503 HTML and PEP 691 JSON, with hashes.

File URLs are relative (`../../files/<sha256>/<filename>`), so the page works under whatever
host name the client used; the fragment carries the sha256 that pip checks the download against.
"""

from __future__ import annotations

from collections.abc import Iterable

from packaging.version import InvalidVersion, Version

from osptrack.jsonio import dumps
from osptrack.registry.model import Dist

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_TYPE = "text/html; charset=utf-8"
API_VERSION = "1.1"


def _escape(text: str) -> str:
    """html.escape(text) (quote=True), without the html package, whose entity table a run's
    start-up otherwise imports (this module loads before the first phase)."""
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("'", "&#x27;")
    )


def file_path(dist: Dist) -> str:
    return f"files/{dist.sha256}/{dist.filename}"


def wants_json(accept: str) -> bool:
    """PEP 691 content negotiation, simplified: JSON when the client lists it with q > 0 first
    among the simple-API types (pip sends JSON at q=1 and HTML at q=0.1)."""
    best, best_q = "html", -1.0
    for part in accept.split(","):
        kind, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for param in params:
            if param.startswith("q="):
                try:
                    q = float(param[2:])
                except ValueError:
                    q = 0.0
        if kind == JSON_TYPE and q > best_q:
            best, best_q = "json", q
        elif kind in ("application/vnd.pypi.simple.v1+html", "text/html") and q > best_q:
            best, best_q = "html", q
    return best == "json" and best_q > 0


def _version_key(v: str) -> tuple[int, Version | str]:
    try:
        return (1, Version(v))
    except InvalidVersion:
        return (0, v)


def project_json(name: str, dists: Iterable[Dist]) -> bytes:
    files = []
    versions: set[str] = set()
    for d in dists:
        versions.add(d.version)
        entry: dict[str, object] = {
            "filename": d.filename,
            "url": f"../../{file_path(d)}",
            "hashes": {"sha256": d.sha256},
            "yanked": d.yanked,
        }
        if d.requires_python:
            entry["requires-python"] = d.requires_python
        if d.size is not None:
            entry["size"] = d.size
        files.append(entry)
    doc = {
        "meta": {"api-version": API_VERSION},
        "name": name,
        "files": files,
        "versions": sorted(versions, key=_version_key),
    }
    return dumps(doc)


def project_html(name: str, dists: Iterable[Dist]) -> bytes:
    lines = [
        "<!DOCTYPE html>",
        "<html><head>",
        f'<meta name="pypi:repository-version" content="{API_VERSION}">',
        f"<title>Links for {_escape(name)}</title></head><body>",
        f"<h1>Links for {_escape(name)}</h1>",
    ]
    for d in dists:
        attrs = f'href="../../{_escape(file_path(d))}#sha256={d.sha256}"'
        if d.requires_python:
            attrs += f' data-requires-python="{_escape(d.requires_python)}"'
        if d.yanked:
            attrs += ' data-yanked=""'
        lines.append(f"<a {attrs}>{_escape(d.filename)}</a><br/>")
    lines.append("</body></html>")
    return ("\n".join(lines) + "\n").encode()


def root_html(names: Iterable[str]) -> bytes:
    links = "".join(f'<a href="{_escape(n)}/">{_escape(n)}</a><br/>\n' for n in sorted(names))
    return f'<!DOCTYPE html>\n<html><head><meta name="pypi:repository-version" content="{API_VERSION}"><title>Simple index</title></head><body>\n{links}</body></html>\n'.encode()
