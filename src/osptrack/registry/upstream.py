"""Online mode: the real registry, asked by osptrack on the host. Plain bytes, hash-checked.

Only the ecosystem's registry hosts are ever contacted (pypi.org and files.pythonhosted.org,
registry.npmjs.org), over https; a file URL that a registry answer points elsewhere is refused.
Tests point `Upstream` at a fake registry on loopback (the only place plain http is accepted).
Parsing is separate from fetching, so malformed answers are tested without a network.

Every failure is an `UpstreamError` with a one-line message naming the registry's answer;
`NotFound` is the registry saying 404 (or that a version does not exist).
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import urllib.parse
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from packaging.version import InvalidVersion, Version

from osptrack import __version__
from osptrack.registry.local import npm_version_fields, pypi_name_version
from osptrack.registry.model import Dist

if TYPE_CHECKING:
    import urllib.request

USER_AGENT = f"osptrack/{__version__} (package behaviour research)"
MAX_PAGE_BYTES = 64 << 20  # the largest real packuments are tens of MB
MAX_FILE_BYTES = 512 << 20
PYPI_JSON = "application/vnd.pypi.simple.v1+json"
NPM_ABBREVIATED = "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8"


# Per ecosystem, the hosts its registry answers from. Packagist's dists are GitHub zipballs
# (api.github.com redirects to codeload.github.com); a redirect is followed only to these.
REGISTRY_HOSTS = frozenset(
    {
        "pypi.org", "files.pythonhosted.org", "registry.npmjs.org",
        "index.crates.io", "static.crates.io",
        "repo.packagist.org", "api.github.com", "codeload.github.com",
        "index.rubygems.org", "rubygems.org",
    }
)  # fmt: skip


class UpstreamError(Exception):
    """The registry's answer could not be used; the message is one line for run.json and the CLI."""


class NotFound(UpstreamError):
    """The registry does not have the package or version."""


@dataclass(frozen=True)
class Upstream:
    pypi_simple: str = "https://pypi.org/simple"
    npm: str = "https://registry.npmjs.org"
    crates_index: str = "https://index.crates.io"
    crates_dl: str = "https://static.crates.io/crates"
    packagist: str = "https://repo.packagist.org"
    rubygems: str = "https://index.rubygems.org"
    rubygems_files: str = "https://rubygems.org"
    allowed_hosts: frozenset[str] = field(default_factory=lambda: REGISTRY_HOSTS)
    timeout_s: float = 60.0

    # ------------------------------------------------------------------ fetching

    def get(self, url: str, accept: str | None = None, limit: int = MAX_PAGE_BYTES) -> bytes:
        # http.client and urllib.request (~40 ms) load with the first fetch: an offline run never does
        import http.client
        import urllib.error
        import urllib.request

        host = self._check_url(url)
        headers = {"User-Agent": USER_AGENT}
        if accept:
            headers["Accept"] = accept
        request = urllib.request.Request(url, headers=headers)
        try:
            with self._opener().open(request, timeout=self.timeout_s) as resp:
                data: bytes = resp.read(limit + 1)
                declared = resp.headers.get("Content-Length")
                # read(n) returns short, without an error, when the server closes early
                if declared and declared.isdigit() and int(declared) != len(data) and len(data) <= limit:
                    raise http.client.IncompleteRead(data, int(declared) - len(data))
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                raise NotFound(
                    f"{host} answered 404 Not Found for {urllib.parse.urlsplit(url).path}"
                ) from None
            raise UpstreamError(f"{host} answered {exc.code} {exc.reason} for {url}") from None
        except http.client.IncompleteRead as exc:
            raise UpstreamError(
                f"{host}: truncated answer for {url} ({len(exc.partial)} bytes, then the connection closed)"
            ) from None
        except (OSError, http.client.HTTPException) as exc:
            detail = " ".join(str(getattr(exc, "reason", exc)).split())[:200]
            raise UpstreamError(f"{host} unreachable for {url}: {detail}") from None
        if len(data) > limit:
            raise UpstreamError(f"{host}: answer for {url} is larger than {limit >> 20} MiB")
        return data

    def _opener(self) -> urllib.request.OpenerDirector:
        """urllib's opener, with every redirect target checked as the first URL was."""
        import urllib.request

        upstream = self

        class Redirects(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
                upstream._check_url(newurl)  # UpstreamError: refused, as a first URL would be
                return super().redirect_request(req, fp, code, msg, headers, newurl)

        return urllib.request.build_opener(Redirects)

    def _check_url(self, url: str) -> str:
        parts = urllib.parse.urlsplit(url)
        host = (parts.hostname or "").lower()
        loopback = _is_loopback(host)
        if host not in self.allowed_hosts or not (
            parts.scheme == "https" or (parts.scheme == "http" and loopback)
        ):
            raise UpstreamError(
                f"refusing {url}: not one of the registry hosts {', '.join(sorted(self.allowed_hosts))}"
            )
        return host if not parts.port else f"{host}:{parts.port}"

    def pypi_page(self, name: str) -> list[Dist]:
        url = f"{self.pypi_simple.rstrip('/')}/{urllib.parse.quote(name)}/"
        return parse_pypi_simple(name, url, self.get(url, PYPI_JSON))

    def npm_packument(self, name: str) -> tuple[list[Dist], dict[str, str]]:
        url = f"{self.npm.rstrip('/')}/{urllib.parse.quote(name, safe='@')}"
        return parse_npm_packument(name, url, self.get(url, NPM_ABBREVIATED))

    def fetch(self, dist: Dist) -> bytes:
        """The file's bytes, checked against the digest the registry published for it."""
        if not dist.upstream_url:
            raise UpstreamError(f"{dist.filename}: the registry gave no URL for it")
        data = self.get(dist.upstream_url, limit=MAX_FILE_BYTES)
        verify(dist, data)
        return data

    # ------------------------------------------------------------------ the analysed package itself

    def resolve_target(self, ecosystem: str, name: str, version: str | None) -> str:
        """The version to analyse; NotFound (naming the registry's answer) if there is none."""
        if ecosystem == "pypi":
            host = urllib.parse.urlsplit(self.pypi_simple).hostname
            try:
                dists = self.pypi_page(name)
            except NotFound:
                raise NotFound(f"{host}: no project named {name} (404 Not Found)") from None
            versions = {d.version for d in dists if not d.yanked}
            if version is not None:
                if not any(_same_pypi_version(v, version) for v in versions):
                    latest = _latest_pypi(versions)
                    raise NotFound(
                        f"{host}: {name} has no release {version}"
                        + (f" (latest is {latest})" if latest else "")
                    )
                return version
            latest = _latest_pypi(versions)
            if latest is None:
                raise NotFound(f"{host}: {name} has no installable release")
            return latest
        host = urllib.parse.urlsplit(self.npm).hostname
        try:
            npm_dists, tags = self.npm_packument(name)
        except NotFound:
            raise NotFound(f"{host}: no package named {name} (404 Not Found)") from None
        known = {d.version for d in npm_dists}
        if version is None:
            if "latest" not in tags:
                raise NotFound(f"{host}: {name} has no dist-tags.latest")
            return tags["latest"]
        want = version.lstrip("=v")
        if want not in known:
            raise NotFound(f"{host}: {name} has no version {version} (latest is {tags.get('latest', '?')})")
        return want


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _same_pypi_version(a: str, b: str) -> bool:
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b


def _latest_pypi(versions: set[str]) -> str | None:
    parsed = []
    for v in versions:
        try:
            parsed.append((Version(v), v))
        except InvalidVersion:
            continue
    stable = [p for p in parsed if not p[0].is_prerelease]
    return max(stable or parsed)[1] if parsed else None


# --------------------------------------------------------------------------- parsing


def _json(body: bytes, what: str) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        raise UpstreamError(f"{what}: the registry's answer is not JSON ({len(body)} bytes)") from None


def parse_pypi_simple(name: str, page_url: str, body: bytes) -> list[Dist]:
    """PEP 691 JSON -> the files that carry a sha256 (a file without one cannot be checked)."""
    host = urllib.parse.urlsplit(page_url).hostname
    doc = _json(body, f"{host} simple page of {name}")
    files = doc.get("files") if isinstance(doc, dict) else None
    if not isinstance(files, list):
        raise UpstreamError(f"{host} simple page of {name}: no 'files' list (not PEP 691 JSON)")
    out: list[Dist] = []
    for f in files:
        if (
            not isinstance(f, dict)
            or not isinstance(f.get("filename"), str)
            or not isinstance(f.get("url"), str)
        ):
            continue
        sha = (f.get("hashes") or {}).get("sha256") if isinstance(f.get("hashes"), dict) else None
        parsed = pypi_name_version(f["filename"])
        if not isinstance(sha, str) or len(sha) != 64 or parsed is None:
            continue
        rp = f.get("requires-python")
        out.append(
            Dist(
                "pypi",
                parsed[0],
                parsed[1],
                f["filename"],
                "upstream",
                sha.lower(),
                f.get("size"),
                requires_python=rp if isinstance(rp, str) and rp else None,
                yanked=bool(f.get("yanked")),
                upstream_url=urllib.parse.urljoin(page_url, f["url"]).split("#", 1)[0],
            )  # fmt: skip
        )
    return out


def parse_npm_packument(name: str, url: str, body: bytes) -> tuple[list[Dist], dict[str, str]]:
    """An (abbreviated or full) packument -> one Dist per version with a checkable tarball."""
    host = urllib.parse.urlsplit(url).hostname
    doc = _json(body, f"{host} packument of {name}")
    versions = doc.get("versions") if isinstance(doc, dict) else None
    if not isinstance(versions, dict):
        raise UpstreamError(f"{host} packument of {name}: no 'versions' object")
    out: list[Dist] = []
    for ver, entry in versions.items():
        dist = entry.get("dist") if isinstance(entry, dict) else None
        if not isinstance(dist, dict) or not isinstance(dist.get("tarball"), str):
            continue
        integrity = dist.get("integrity") if isinstance(dist.get("integrity"), str) else None
        shasum = dist.get("shasum") if isinstance(dist.get("shasum"), str) else None
        if integrity is None and shasum is None:
            continue
        fields = npm_version_fields(entry)
        if "hasInstallScript" in entry:
            fields["hasInstallScript"] = bool(entry["hasInstallScript"])
        tarball = dist["tarball"]
        out.append(
            Dist(
                "npm",
                str(entry.get("name") or name),
                str(ver),
                urllib.parse.urlsplit(tarball).path.rsplit("/", 1)[-1],
                "upstream",
                integrity=integrity,
                shasum=shasum,
                upstream_url=tarball,
                manifest=fields,
            )  # fmt: skip
        )
    tags = doc.get("dist-tags") if isinstance(doc.get("dist-tags"), dict) else {}
    return out, {str(k): str(v) for k, v in tags.items()}


def verify(dist: Dist, data: bytes) -> None:
    """UpstreamError unless `data` matches the digest the registry published."""
    if not data:
        raise UpstreamError(f"{dist.filename}: the registry sent an empty file")
    if dist.ecosystem != "npm":  # a sha256 (PyPI, crates.io, RubyGems) or a sha1 (Packagist)
        _verify_digest(dist, data)
        return
    sha512 = next((p[7:] for p in (dist.integrity or "").split() if p.startswith("sha512-")), None)
    if sha512 is not None:
        got = base64.b64encode(hashlib.sha512(data).digest()).decode()
        if got != sha512:
            raise UpstreamError(f"{dist.filename}: sha512 integrity does not match the registry's")
        return
    if dist.shasum and hashlib.sha1(data).hexdigest() != dist.shasum.lower():  # noqa: S324 - npm's shasum
        raise UpstreamError(f"{dist.filename}: shasum does not match the registry's")
    if not dist.shasum:
        raise UpstreamError(f"{dist.filename}: the registry published no sha512 or sha1 to check it against")


def _verify_digest(dist: Dist, data: bytes) -> None:
    if dist.sha256:
        got = hashlib.sha256(data).hexdigest()
        if got != dist.sha256:
            raise UpstreamError(
                f"{dist.filename}: sha256 {got[:16]}... does not match the registry's {dist.sha256[:16]}..."
            )
    elif dist.shasum:
        if hashlib.sha1(data).hexdigest() != dist.shasum.lower():  # noqa: S324 - Composer's shasum
            raise UpstreamError(f"{dist.filename}: sha1 does not match the registry's shasum")
    elif dist.ecosystem != "packagist":  # Packagist's GitHub zipballs carry none; Composer checks none
        raise UpstreamError(f"{dist.filename}: the registry published no digest to check it against")
