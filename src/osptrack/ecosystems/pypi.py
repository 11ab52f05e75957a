"""PyPI: `pip install --user` with Debian's python3 inside the sandbox, then import every module.

Debian's /usr/bin/python3 is used on purpose: it is clean (no pyenv shims, no site
customisation of the host's) and lives under /usr, which the sandbox already mounts.
The install is the one a developer on this workstation types: `pip install --user` into the
persona's user site (`~/.local/lib/python3.11/site-packages`, on sys.path by default), with
`--break-system-packages` because Debian marks its python3 EXTERNALLY-MANAGED (PEP 668). So pip's
resolver sees the persona's pre-installed packages (/usr/local/lib/python3.11/dist-packages, see
sandbox/persona.py) as installed: `install_requires=["requests"]` is satisfied by the persona's
copy, and a version the persona lacks comes from the registry into the user site.
pip's index is the registry service of the fake network (`PIP_INDEX_URL`), which serves the
`--deps-dir` folders and the host's cache, where scripts/setup.sh put the common build backends;
so sdists build with pip's build isolation as against the real registry, and
`analyze pypi ./x-1.0.tar.gz` works with no flags. That is also where a setup.py runs, inside the sandbox.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from packaging.version import InvalidVersion, Version

from osptrack.ecosystems.archives import (
    CONTAINER_SUFFIX,
    SDIST,
    WHEEL,
    container_of,
    depth,
    kind_of,
    read_member,
    staged_name,
)
from osptrack.ecosystems.base import Ecosystem, Layout, Metadata
from osptrack.errors import BadInput
from osptrack.registry import PYPI_INDEX_URL, REGISTRY_HOST
from osptrack.sandbox.persona import python_pins
from osptrack.target import normalise_name, validate_name, validate_version
from osptrack.trace.roles import Role, Rule

PYTHON = "/usr/bin/python3"
SITE = "~/.local/lib/python3.11/site-packages"  # Debian python3.11's user site (site.USER_SITE)
HARNESS = Layout.harness
PIP_RUNNER = "/usr/lib/python3/dist-packages/pip/__pip-runner__.py"  # Debian python3-pip
BUILD_TOOLS = ("setuptools-", "wheel-")


def build_tools_dir() -> Path | None:
    """setuptools/wheel wheels fetched by scripts/setup.sh (the bare side of benchmarks/overhead.py
    uses them); runs get build backends from the registry cache (registry/backends.py)."""
    env = os.environ.get("OSPTRACK_BUILD_TOOLS")
    candidates = [Path(env)] if env else []
    candidates.append(Path(os.environ.get("OSPTRACK_CACHE", "/var/cache/osptrack")) / "build-tools")
    for path in candidates:
        if path.is_dir() and any(p.name.startswith(BUILD_TOOLS) for p in path.iterdir()):
            return path
    return None


def _same_version(a: str | None, b: str) -> bool:
    try:
        return a is not None and Version(a) == Version(b)
    except InvalidVersion:
        return a == b


# One header line of METADATA/PKG-INFO in the plain form: a name of the characters email's parser
# takes for one, a colon, the value on the same line.
_HEADER_LINE = re.compile(rb"([\x21-\x39\x3b-\x7e]+):[ \t]*(.*)\Z", re.S)


def plain_headers(data: bytes) -> dict[str, str] | None:
    """The first value of each header (by lower-case name) of a metadata file in the plain form,
    as email's BytesHeaderParser (compat32) gives them: ASCII, no carriage return, one line per
    header up to the first blank line. None for anything else (continuation lines, a line that is
    no header, a Unix From line, other bytes), which the caller leaves to email's parser, whose
    import (~5 ms) a run then pays before its first phase."""
    if not data.isascii() or b"\r" in data:
        return None
    lines = data.split(b"\n\n", 1)[0].split(b"\n")
    if lines[-1] == b"":
        lines.pop()  # headers and no body: the last line's newline
    if not lines:
        return None
    fields: dict[str, str] = {}
    for line in lines:
        m = _HEADER_LINE.match(line)
        if m is None or line.startswith(b"From "):
            return None
        fields.setdefault(m[1].decode().lower(), m[2].decode())
    return fields


class PyPI(Ecosystem):
    name = "pypi"
    registry_hosts = ("pypi.org", "files.pythonhosted.org")
    suffixes = (".whl", ".tar.gz", ".zip", ".tar.bz2", ".tgz")
    toolchain = ((PYTHON, "python3-pip python3-venv"),)
    phases = ("install", "import", "execute")

    def read_metadata(self, archive: Path) -> Metadata:
        # By content, not by name: a wheel saved as .zip is a wheel (pip would take it for an sdist).
        found = self._metadata_member(archive)
        if found is None:
            kind_of(archive, (WHEEL, SDIST), "a Python package (no METADATA/PKG-INFO)", self.name)
            # an sdist with a setup.py or pyproject.toml but no PKG-INFO
            fallback = self._from_filename(archive)
            if fallback is None:
                raise BadInput(
                    f"{archive.name}: an sdist without PKG-INFO whose file name is not NAME-VERSION"
                )
            return fallback
        fields = plain_headers(found[1])
        if fields is not None:
            name, version = fields.get("name", "").strip(), fields.get("version", "").strip()
        else:
            import email.parser  # ~5 ms of imports, for what plain_headers leaves to it

            headers = email.parser.BytesHeaderParser().parsebytes(found[1])
            # str(): undecodable bytes come back as an email Header object, not a str.
            name, version = (
                str(headers.get("Name") or "").strip(),
                str(headers.get("Version") or "").strip(),
            )
        if not name or not version:
            raise BadInput(f"{archive.name}: metadata lacks Name or Version")
        validate_name("pypi", name)
        validate_version(version)
        return Metadata(name, version)

    @staticmethod
    def _metadata_member(archive: Path) -> tuple[str, bytes] | None:
        """A wheel's METADATA (zip only), else an sdist's PKG-INFO."""
        if container_of(archive) == "zip":
            found = read_member(archive, lambda n: depth(n) == 1 and n.endswith(".dist-info/METADATA"))
            if found is not None:
                return found
        return read_member(archive, lambda n: depth(n) == 1 and n.endswith("/PKG-INFO"))

    def staged_name(self, archive: Path, meta: Metadata) -> str:
        """pip tells wheels from sdists by the file name, so a misnamed one gets its proper name."""
        container = container_of(archive) or "tar"
        found = self._metadata_member(archive)
        dist = re.sub(r"[-_.]+", "_", meta.name)
        if found is not None and found[0].endswith(".dist-info/METADATA"):
            if self._from_filename(archive) is not None and archive.name.endswith(".whl"):
                return archive.name
            return f"{dist}-{meta.version}-{self._wheel_tags(archive, found[0])}.whl"
        return staged_name(
            archive, (CONTAINER_SUFFIX[container],), f"{dist}-{meta.version}{CONTAINER_SUFFIX[container]}"
        )

    @staticmethod
    def _wheel_tags(archive: Path, metadata_member: str) -> str:
        """The compressed tag set (py2.py3-none-any) from the WHEEL file's Tag lines."""
        wheel_file = metadata_member.rsplit("/", 1)[0] + "/WHEEL"
        found = read_member(archive, lambda n: n == wheel_file)
        import email.parser

        headers = email.parser.BytesHeaderParser().parsebytes(found[1]) if found else None
        tags = (
            [str(t).strip().split("-") for t in (headers.get_all("Tag") or []) if headers] if headers else []
        )
        tags = [t for t in tags if len(t) == 3]
        if not tags:
            return "py3-none-any"
        parts = [list(dict.fromkeys(t[i] for t in tags)) for i in range(3)]
        return "-".join(".".join(p) for p in parts)

    @staticmethod
    def _from_filename(archive: Path) -> Metadata | None:
        # the plain names without packaging.utils, which loads packaging.tags, logging, sysconfig
        from osptrack.registry.local import plain_name_version

        plain = plain_name_version(archive.name)
        if plain is not None:
            return Metadata(*plain)
        from packaging.utils import (
            InvalidSdistFilename,
            InvalidWheelFilename,
            parse_sdist_filename,
            parse_wheel_filename,
        )

        try:
            if archive.name.endswith(".whl"):
                name, ver, _, _ = parse_wheel_filename(archive.name)
            else:
                name, ver = parse_sdist_filename(archive.name)
        except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
            return None
        return Metadata(str(name), str(ver))

    def find_archive(self, name: str, version: str | None, dirs: tuple[Path, ...]) -> Path | None:
        want = normalise_name("pypi", name)
        best: tuple[Version, int, Path] | None = None
        for folder in dirs:
            for path in sorted(folder.iterdir()) if folder.is_dir() else ():
                meta = self._from_filename(path)
                if meta is None or normalise_name("pypi", meta.name) != want:
                    continue
                ver = Version(meta.version)
                if version is not None and ver != Version(version):
                    continue
                rank = (ver, int(path.name.endswith(".whl")), path)  # prefer wheels, like pip
                if best is None or rank[:2] > best[:2]:
                    best = rank
        return best[2] if best else None

    def env(self, layout: Layout, online: bool) -> dict[str, str]:
        return {
            "PIP_CONFIG_FILE": "/dev/null",  # the host's pip.conf (a local index) must not leak in
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "PIP_NO_INPUT": "1",
            "PIP_NO_CACHE_DIR": "1",
            "PIP_ROOT_USER_ACTION": "ignore",
            # The registry service of the fake network, as a company mirror would be configured.
            "PIP_INDEX_URL": PYPI_INDEX_URL,
            "PIP_TRUSTED_HOST": REGISTRY_HOST,
        }

    def command(self, phase: str, layout: Layout, online: bool) -> list[str] | None:
        if phase == "install":
            argv = [PYTHON, "-m", "pip", "install", "--user", "--break-system-packages"]
            # The conflict report after the install parses every installed distribution's
            # metadata (the persona's 45 too: most of pip's time in a small install); it is a
            # warning on stderr, and none of the package's code runs in it.
            argv += ["--no-warn-script-location", "--no-warn-conflicts"]
            if _same_version(python_pins().get(normalise_name("pypi", layout.name)), layout.version):
                # pip keeps an installed copy of the same version ("already satisfied"); the
                # package under analysis must be its own bytes, not the persona's.
                argv.append("--force-reinstall")
            argv.append(layout.archive or f"{layout.name}=={layout.version}")
            return argv
        if phase == "import":
            return [PYTHON, f"{layout.harness}/pypi_import.py", layout.name, SITE]
        if phase == "execute":
            return [PYTHON, f"{layout.harness}/pypi_execute.py", layout.name, SITE]
        return None

    def probes_needed(self, phase: str, layout: Layout, only_wheels_served: bool) -> bool:
        """Whether the phase must trace the probe syscalls (stat/access/readlink): it can run code
        of a package. pip installing wheels runs none (no build, no setup.py, no hook); it is a
        pure toolchain phase whose ~5,000 stats, pip's own, cost more than the rest of the trace."""
        wheel = layout.archive is None or layout.archive.endswith(".whl")
        return not (phase == "install" and wheel and only_wheels_served)

    def toolchain_rules(self) -> tuple[Rule, ...]:
        python = (PYTHON,)
        pips = ("pip", "pip-runner")
        return (
            Rule("pip", python, Role.DRIVER, args=("-m", "pip", "install")),
            Rule("harness", python, Role.HOST, args=(f"{HARNESS}/pypi_import.py",)),
            Rule("harness", python, Role.HOST, args=(f"{HARNESS}/pypi_execute.py",)),
            # pip's user agent asks `distro`, which runs lsb_release (getopt/tr/cut) and uname.
            Rule("pip-probe", ("/usr/bin/lsb_release", "/bin/lsb_release"), Role.HELPER, pips),
            Rule("pip-probe", ("/usr/bin/uname", "/bin/uname"), Role.HELPER, pips),
            # pip installing an sdist's build requirements into its isolated build env.
            Rule("pip-runner", python, Role.DRIVER, pips, args=(PIP_RUNNER,)),
            # Any other python pip starts runs the package: the PEP 517 hook runner, setup.py.
            Rule("pip-build", python, Role.HOST, pips),
        )
