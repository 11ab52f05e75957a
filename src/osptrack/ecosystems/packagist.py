"""Packagist: `composer install` in a fresh project with packagist.org disabled, then include.

Debian's php-cli and composer live under /usr. The install harness writes the project's
composer.json inside the sandbox: the archive as an inline `package` repository with a local
zip dist (a zipball may carry no version), and the registry service's Composer repository
(`registry/packagist.py`), which serves the --deps-dir zips, the host's cache and, with
--online, what osptrack fetched from repo.packagist.org on the host; plugins allowed. Composer
plugins (type `composer-plugin`) run their activate() during install, as on a user's machine;
a dependency's own `scripts` never run in Composer (only the root project's do), so plugins are
the install-time path that matters.
"""

from __future__ import annotations

import io
import json
import os
import re
import zipfile
from pathlib import Path

from osptrack.ecosystems.archives import not_a, read_member, staged_name
from osptrack.ecosystems.base import (
    Ecosystem,
    Layout,
    Metadata,
    install_harness_argv,
    lenient_version_key,
)
from osptrack.errors import BadInput
from osptrack.jsonio import atomic_write_bytes
from osptrack.registry.packagist import REPOSITORY_URL as COMPOSER_REPOSITORY_URL
from osptrack.target import validate_name, validate_version
from osptrack.trace.roles import SHELLS, Role, Rule, installed

PROJECT = "~/project"
_VERSION_IN_FILENAME = re.compile(r"-v?(\d[\w.+-]*?)\.[A-Za-z][A-Za-z0-9]*$")  # any suffix: by content
_COMPOSER_PROBES = tuple(
    re.compile(p)
    for p in (
        r"stty -a \| grep columns",
        r"lsmod \| grep vboxguest",
        r"exec 'git' 'branch' '-a' '--no-color' '--no-abbrev' '-v'",
        r"git describe --exact-match --tags",
        r"git --version",
        r'git log --pretty="%H" -n1 HEAD --no-show-signature',
        r"hg branch",
        r"fossil (branch|tag) list",
        r"svn info --xml",
        r"command -v -- '[\w.+-]+'",
        r"'/usr/bin/unzip' -qq '(?:/root|/home/[^/]+)/project/vendor/composer/tmp-[0-9a-f]+\.zip' -d '(?:/root|/home/[^/]+)/project/vendor/composer/[0-9a-f]+'",
    )
)


def _is_composer_probe(argv: list[str]) -> bool:
    return len(argv) == 3 and argv[1] == "-c" and any(p.fullmatch(argv[2]) for p in _COMPOSER_PROBES)


class Packagist(Ecosystem):
    name = "packagist"
    registry_hosts = ("repo.packagist.org", "packagist.org", "api.github.com", "codeload.github.com")
    suffixes = (".zip",)
    toolchain = (("php", "php-cli"), ("composer", "composer"), ("unzip", "unzip"))
    phases = ("install", "import", "execute")

    def read_metadata(self, archive: Path) -> Metadata:
        found = read_member(
            archive, lambda n: n.strip("/").count("/") <= 1 and n.rsplit("/", 1)[-1] == "composer.json"
        )
        if found is None:
            raise not_a(archive, "a Composer package (no composer.json)", self.name)
        try:
            manifest = json.loads(found[1])
            name = str(manifest["name"]).strip()
        except (ValueError, KeyError, TypeError):
            raise BadInput(f"{archive.name}: composer.json lacks a valid name") from None
        version = str(manifest.get("version") or "").strip()
        if not version:
            # GitHub zipballs (what Packagist serves as dist) carry no version: take the file name's.
            match = _VERSION_IN_FILENAME.search(archive.name)
            if match is None:
                raise BadInput(
                    f"{archive.name}: composer.json has no version; name the file NAME-VERSION.zip"
                )
            version = match.group(1)
        validate_name("packagist", name)
        validate_version(version)
        return Metadata(name, version)

    def staged_name(self, archive: Path, meta: Metadata) -> str:
        # the install harness reads it with zipfile, and Composer's zip dist wants the suffix
        return staged_name(archive, (".zip",), f"{meta.name.replace('/', '-')}-{meta.version}.zip")

    def find_archive(self, name: str, version: str | None, dirs: tuple[Path, ...]) -> Path | None:
        return self.highest_matching(
            name, version, dirs, "*.zip", lenient_version_key, lambda a, b: a.lstrip("v") == b.lstrip("v")
        )

    def prepare_home(self, home: Path, uid: int, gid: int) -> None:
        project = home / "project"
        project.mkdir(mode=0o755)
        os.chown(project, uid, gid)

    def chdir(self) -> str:
        return PROJECT

    def env(self, layout: Layout, online: bool) -> dict[str, str]:
        env = {
            "COMPOSER_HOME": "~/.composer",
            "COMPOSER_CACHE_DIR": "~/.cache/composer",
            "COMPOSER_ALLOW_SUPERUSER": "1",  # uid 0 is only the sandbox's user namespace
            "COMPOSER_NO_INTERACTION": "1",
            "COMPOSER_NO_AUDIT": "1",
            # the install harness adds the registry service's Composer repository
            "OSPTRACK_COMPOSER_REPO": COMPOSER_REPOSITORY_URL,
        }
        return env

    def command(self, phase: str, layout: Layout, online: bool) -> list[str] | None:
        h = layout.harness
        if phase == "install":
            return install_harness_argv("packagist_install.py", layout, online, PROJECT)
        if phase == "import":
            return ["php", f"{h}/packagist_import.php", layout.name.lower(), PROJECT]
        if phase == "execute":
            return ["python3", f"{h}/packagist_execute.py", layout.name, PROJECT]
        return None

    def toolchain_rules(self) -> tuple[Rule, ...]:
        php = installed("/usr/bin/php")
        harness = Layout.harness
        python = ("/usr/bin/python3",)
        return (
            Rule("harness", python, Role.DRIVER, args=(f"{harness}/packagist_install.py",)),
            Rule("composer", ("/usr/bin/composer",), Role.DRIVER, ("harness",)),
            # Composer's own probes, each an exact `sh -c` script started by composer: terminal
            # width, the root project's VCS version (git/hg/fossil/svn), tool lookups, and
            # unpacking a dist it downloaded. Other shells composer starts run the package's
            # scripts. (Composer plugins run inside composer: one running exactly these
            # scripts would be taken for composer.)
            Rule("composer-probe", SHELLS, Role.HELPER, ("composer",), argv_test=_is_composer_probe),
            Rule("composer-script", SHELLS, Role.HOST, ("composer",)),
            # The import harness includes the package's files in a child of itself.
            Rule("import", php, Role.DRIVER, args=(f"{harness}/packagist_import.php",)),
            Rule("harness", php, Role.HOST, ("import",), args=(f"{harness}/packagist_import.php",)),
            Rule("execute", python, Role.DRIVER, args=(f"{harness}/packagist_execute.py",)),
            # The execute harness starting a declared bin: what it does is kept.
            Rule("executable", (f"{PROJECT}/vendor/bin/",), Role.HOST, ("execute",)),
        )


def pack_composer_zip(dest: Path, manifest: dict[str, object], files: dict[str, bytes]) -> Path:
    """A Composer artifact zip (composer.json at the root, version included), written atomically."""
    name, version = str(manifest["name"]), str(manifest["version"])
    path = dest / f"{name.replace('/', '-')}-{version}.zip"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("composer.json", json.dumps(manifest, indent=2))
        for rel, data in sorted(files.items()):
            zf.writestr(rel, data)
    atomic_write_bytes(path, buf.getvalue())
    path.chmod(0o644)  # mkstemp's 0600 would hide it from the sandbox's host uid in a --deps-dir
    return path
