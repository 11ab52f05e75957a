"""npm: `npm install` of the tarball in a fresh project with lifecycle scripts on, then require it.

The project's `.npmrc` names the registry service of the fake network, which serves the
`--deps-dir` tarballs and the host's cache (and, online, what registry.npmjs.org has, fetched on
the host), so npm resolves and places nested and conflicting versions itself.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from osptrack.ecosystems.archives import container_of, depth, not_a, staged_name
from osptrack.ecosystems.base import Ecosystem, Layout, Metadata
from osptrack.errors import BadInput
from osptrack.registry import NPM_REGISTRY_URL
from osptrack.registry.npm_code import top_manifest
from osptrack.target import normalise_name, validate_name, validate_version
from osptrack.trace.roles import SHELLS, Role, Rule, installed

if TYPE_CHECKING:
    import semantic_version

PROJECT = "~/project"


class Npm(Ecosystem):
    name = "npm"
    registry_hosts = ("registry.npmjs.org", "registry.npmjs.com")
    suffixes = (".tgz", ".tar.gz")
    toolchain = (("node", "nodejs"), ("npm", "npm"))
    phases = ("install", "import", "execute")

    def read_metadata(self, archive: Path) -> Metadata:
        # read with the scan of what installing it runs (registry/npm_code.py), which a run needs next
        found = top_manifest(archive, lambda n: depth(n) == 1 and n.endswith("/package.json"))
        if found is None:
            raise not_a(archive, "an npm package (no package.json)", self.name)
        try:
            meta = json.loads(found[1])
            name, version = str(meta["name"]).strip(), str(meta["version"]).strip()
        except (ValueError, KeyError, TypeError):
            raise BadInput(f"{archive.name}: package.json lacks a valid name and version") from None
        validate_name("npm", name)
        validate_version(version)
        return Metadata(name, version)

    def find_archive(self, name: str, version: str | None, dirs: tuple[Path, ...]) -> Path | None:
        import semantic_version  # only a named package looked up in --deps-dir compares versions

        want = normalise_name("npm", name)
        best: tuple[semantic_version.Version, Path] | None = None
        for folder in dirs:
            for path in sorted(folder.glob("*.tgz")) if folder.is_dir() else ():
                try:
                    meta = self.read_metadata(path)
                except BadInput:
                    continue
                if normalise_name("npm", meta.name) != want:
                    continue
                if version is not None and meta.version != version.lstrip("=v"):
                    continue
                try:
                    ver = semantic_version.Version(meta.version)
                except ValueError:
                    continue
                if best is None or ver > best[0]:
                    best = (ver, path)
        return best[1] if best else None

    def staged_name(self, archive: Path, meta: Metadata) -> str:
        # npm takes a file for a tarball only by its suffix (else it is a folder or a name).
        suffix = ".tar" if container_of(archive) == "tar" else ".tgz"
        flat = meta.name.replace("@", "").replace("/", "-")
        return staged_name(archive, (".tgz", ".tar.gz", ".tar"), f"{flat}-{meta.version}{suffix}")

    def prepare_home(self, home: Path, uid: int, gid: int) -> None:
        project = home / "project"
        project.mkdir(mode=0o755)
        manifest = {"name": "osptrack-sandbox-project", "version": "1.0.0", "private": True}
        (project / "package.json").write_text(json.dumps(manifest, indent=2) + "\n")
        (project / ".npmrc").write_text(f"registry={NPM_REGISTRY_URL}\n")
        for path in (project, project / "package.json", project / ".npmrc"):
            os.chown(path, uid, gid)

    def env(self, layout: Layout, online: bool) -> dict[str, str]:
        return {
            "npm_config_cache": "~/.npm",
            "npm_config_update_notifier": "false",  # its DNS lookup was measured toolchain noise
            "npm_config_fund": "false",
            "npm_config_audit": "false",
            "npm_config_loglevel": "warn",
            "NO_UPDATE_NOTIFIER": "1",
        }

    def command(self, phase: str, layout: Layout, online: bool) -> list[str] | None:
        if phase == "install":
            argv = ["npm", "install", "--foreground-scripts", "--no-package-lock"]
            argv.append(layout.archive or f"{layout.name}@{layout.version}")
            return argv
        if phase == "import":
            return ["node", f"{layout.harness}/npm_import.js", layout.name, PROJECT]
        if phase == "execute":
            return ["node", f"{layout.harness}/npm_execute.js", layout.name, PROJECT]
        return None

    def probes_needed(self, phase: str, layout: Layout, runs_no_package_code: bool) -> bool:
        """Whether the phase must trace the probe syscalls (stat/access/readlink): it can run code
        of a package. npm installing a closure with no lifecycle script, no binding.gyp and only
        registry dependencies runs none (registry/npm_code.py); its ~4,400 statx are npm's own
        module loading, most of what strace costs on an npm install."""
        return not (phase == "install" and runs_no_package_code)

    def chdir(self) -> str:
        return PROJECT

    def toolchain_rules(self) -> tuple[Rule, ...]:
        node = installed("/usr/bin/node")
        harness = Layout.harness
        return (
            Rule("npm", installed("/usr/bin/npm"), Role.DRIVER),
            Rule("npm", node, Role.DRIVER, ("npm",)),  # /usr/bin/npm is `#!/usr/bin/env node`
            # npm runs lifecycle scripts (preinstall, install, postinstall) with `sh -c`.
            Rule("npm-script", SHELLS, Role.HOST, ("npm",)),
            Rule("harness", node, Role.HOST, args=(f"{harness}/npm_import.js",)),
            Rule("harness", node, Role.HOST, args=(f"{harness}/npm_execute.js",)),
        )

    def expected_bait_reader(self, path: str, rule: str | None) -> bool:
        return path.endswith("/.npmrc") and rule == "npm"
