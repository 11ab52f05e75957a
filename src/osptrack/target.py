"""Package coordinates: the one place that parses specs and normalises names.

Every other module (labels, dataset joins, batch resume) compares packages through
`normalise_name` / `normalise_version`, so a coordinate means the same thing everywhere.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass, replace
from pathlib import Path

from packaging.version import InvalidVersion, Version

from osptrack.errors import BadInput

# The result-schema spellings (package-analysis), in the paper's order plus NuGet.
ECOSYSTEMS = ("pypi", "npm", "rubygems", "packagist", "crates.io", "nuget")

_ALIASES = {
    "pypi": "pypi",
    "pip": "pypi",
    "python": "pypi",
    "npm": "npm",
    "node": "npm",
    "rubygems": "rubygems",
    "gem": "rubygems",
    "ruby": "rubygems",
    "packagist": "packagist",
    "composer": "packagist",
    "php": "packagist",
    "crates.io": "crates.io",
    "crates-io": "crates.io",
    "crates": "crates.io",
    "cargo": "crates.io",
    "nuget": "nuget",
}

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".zip", ".whl", ".gem", ".crate", ".nupkg", ".tar.bz2", ".tar")

_PYPI_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)
_NPM_NAME = re.compile(r"^(@[a-z0-9][a-z0-9._~-]*/)?[a-z0-9._~][a-z0-9._~-]*$")
_PACKAGIST_NAME = re.compile(r"^[a-z0-9]([_.-]?[a-z0-9]+)*/[a-z0-9](([_.]|-{1,2})?[a-z0-9]+)*$")
_GENERIC_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+_~!-]{0,127}$")


def normalise_ecosystem(value: str) -> str:
    """Map any common spelling (OSV `PyPI`, folder `crates-io`, ...) to the schema name."""
    key = value.strip().lower()
    if key in _ALIASES:
        return _ALIASES[key]
    raise BadInput(f"unknown ecosystem {value!r}; expected one of {', '.join(ECOSYSTEMS)}")


def normalise_name(ecosystem: str, name: str) -> str:
    """Registry-equivalent spelling of a package name, used for every join."""
    eco = normalise_ecosystem(ecosystem)
    raw = name.strip()
    if eco == "pypi":
        return re.sub(r"[-_.]+", "-", raw).lower()  # PEP 503
    if eco == "crates.io":
        return raw.lower().replace("_", "-")  # crates.io treats - and _ as one
    # npm, packagist, rubygems and nuget resolve names case-insensitively.
    return raw.lower()


def normalise_version(ecosystem: str, version: str) -> str:
    """Canonical version text: PEP 440 for PyPI, no leading `v`/`=` for npm."""
    eco = normalise_ecosystem(ecosystem)
    v = version.strip()
    if eco == "pypi":
        try:
            return str(Version(v))
        except InvalidVersion:
            return v
    if eco == "npm":
        return v.lstrip("=v")
    return v


def validate_name(ecosystem: str, name: str) -> None:
    eco = normalise_ecosystem(ecosystem)
    ok = {
        "pypi": _PYPI_NAME,
        "npm": _NPM_NAME,
        "packagist": _PACKAGIST_NAME,
    }.get(eco, _GENERIC_NAME)
    candidate = name.lower() if eco in ("npm", "packagist") else name
    if not name or len(name) > 214 or not ok.match(candidate):
        raise BadInput(f"invalid {eco} package name {name!r}")


def validate_version(version: str) -> None:
    if not _VERSION.match(version) or ".." in version:
        raise BadInput(f"invalid version {version!r}")


@dataclass(frozen=True)
class PackageRef:
    """One package coordinate, optionally backed by a local archive."""

    ecosystem: str
    name: str
    version: str | None = None
    archive: Path | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        """Normalised (ecosystem, name, version): the join key for labels and resume."""
        version = normalise_version(self.ecosystem, self.version) if self.version else ""
        return (self.ecosystem, normalise_name(self.ecosystem, self.name), version)

    @property
    def slug(self) -> str:
        """A filesystem-safe `<eco>-<name>-<version>`; scopes lose their slash."""
        name = self.name.replace("/", "__").replace("@", "")
        return f"{self.ecosystem}-{name}-{self.version or 'unknown'}"

    def with_version(self, version: str) -> PackageRef:
        validate_version(version)
        return replace(self, version=version)


def looks_like_archive(target: str) -> bool:
    if target.endswith(ARCHIVE_SUFFIXES):
        return True
    try:
        return ("/" in target and Path(target).exists()) or Path(target).is_file()
    except OSError:  # a name too long for the filesystem is no path, just a bad name
        return False


def parse_target(ecosystem: str, target: str, version: str | None = None) -> PackageRef:
    """Parse `name`, `name==1.0`, `name@1.0`, `@scope/name@1.0`, a purl, or an archive path.

    An archive's own metadata supplies name and version later (ecosystem modules);
    here it only has to exist and be readable.
    """
    eco = normalise_ecosystem(ecosystem)
    target = target.strip()
    if not target:
        raise BadInput("empty target")
    if target.startswith("pkg:"):
        return _parse_purl(eco, target, version)
    if looks_like_archive(target) and not target.startswith("@"):
        path = Path(target)
        if not path.is_file():
            raise BadInput(f"archive not found: {target}")
        try:
            with path.open("rb") as fh:
                fh.read(1)
        except OSError as exc:
            raise BadInput(f"archive not readable: {target}: {exc.strerror}") from None
        return PackageRef(eco, "", version, path.resolve())
    name, spec_version = _split_spec(target)
    if spec_version and version and spec_version != version:
        raise BadInput(f"conflicting versions {spec_version!r} and {version!r}")
    final_version = spec_version or version
    validate_name(eco, name)
    if final_version is not None:
        validate_version(final_version)
    return PackageRef(eco, name, final_version)


def _split_spec(target: str) -> tuple[str, str | None]:
    if "==" in target:
        name, _, ver = target.partition("==")
        return name, ver
    at = target.rfind("@")
    if at > 0:
        return target[:at], target[at + 1 :]
    return target, None


def _parse_purl(eco: str, purl: str, version: str | None) -> PackageRef:
    body = purl[4:].split("?", 1)[0].split("#", 1)[0]
    kind, _, rest = body.partition("/")
    purl_eco = {"cargo": "crates.io", "gem": "rubygems", "composer": "packagist"}.get(kind, kind)
    if normalise_ecosystem(purl_eco) != eco:
        raise BadInput(f"purl ecosystem {kind!r} does not match {eco!r}")
    at = rest.rfind("@")
    name, ver = (rest[:at], rest[at + 1 :]) if at > 0 else (rest, version)
    name = urllib.parse.unquote(name)
    validate_name(eco, name)
    if ver is not None:
        ver = urllib.parse.unquote(ver)
        validate_version(ver)
    return PackageRef(eco, name, ver)
