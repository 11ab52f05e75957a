"""RubyGems: `gem install` from the registry service into a private GEM_HOME, then `require` every file.

Debian's ruby (ruby-full) lives under /usr, which the sandbox already mounts. Native
extensions build exactly as on a user's machine: RubyGems runs `extconf.rb`, then make, inside
the sandbox. `gem install --clear-sources --source <registry service>` resolves dependencies
against the registry service's gem source (`registry/rubygems.py`: the --deps-dir gems, the
host's cache and, with --online, what osptrack fetched from rubygems.org on the host).
"""

from __future__ import annotations

import gzip
import io
import json
import re
import tarfile
from pathlib import Path

from osptrack.ecosystems.archives import not_a, read_member, staged_name
from osptrack.ecosystems.base import Ecosystem, Layout, Metadata, lenient_version_key
from osptrack.errors import BadInput
from osptrack.jsonio import atomic_write_bytes
from osptrack.registry import REGISTRY_URL
from osptrack.registry.rubygems import PREFIX as GEM_SOURCE_PREFIX
from osptrack.target import validate_name, validate_version
from osptrack.trace.roles import Role, Rule, installed

GEM_HOME = "~/.gem/osptrack"
GEM_SOURCE_URL = f"{REGISTRY_URL}{GEM_SOURCE_PREFIX}"
MAX_METADATA_BYTES = 4 << 20

# The gemspec YAML is written by RubyGems itself in a fixed shape; two anchored patterns are
# enough and avoid a YAML dependency (and YAML tag handling) on the host.
_NAME = re.compile(rb"^name: ['\"]?([^'\"\s]+)['\"]?\s*$", re.MULTILINE)
_VERSION = re.compile(
    rb"^version: !ruby/object:Gem::Version\s*\n\s+version: ['\"]?([^'\"\s]+)['\"]?\s*$", re.MULTILINE
)


class RubyGems(Ecosystem):
    name = "rubygems"
    registry_hosts = ("rubygems.org", "index.rubygems.org")
    suffixes = (".gem",)
    toolchain = (("ruby", "ruby-full"), ("gem", "ruby-full"), ("make", "make"), ("cc", "gcc"))
    phases = ("install", "import", "execute")

    def read_metadata(self, archive: Path) -> Metadata:
        found = read_member(archive, lambda n: n == "metadata.gz")
        if found is None:
            raise not_a(archive, "a gem (no metadata.gz)", self.name)
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(found[1])) as fh:
                text = fh.read(MAX_METADATA_BYTES + 1)
        except (OSError, EOFError) as exc:
            raise BadInput(f"{archive.name}: unreadable metadata.gz ({exc})") from None
        if len(text) > MAX_METADATA_BYTES:
            raise BadInput(f"{archive.name}: metadata.gz is too large")
        name, version = _NAME.search(text), _VERSION.search(text)
        if name is None or version is None:
            raise BadInput(f"{archive.name}: gem metadata lacks name or version")
        meta = Metadata(name.group(1).decode(errors="replace"), version.group(1).decode(errors="replace"))
        validate_name("rubygems", meta.name)
        validate_version(meta.version)
        return meta

    def staged_name(self, archive: Path, meta: Metadata) -> str:
        return staged_name(
            archive, (".gem",), f"{meta.name}-{meta.version}.gem"
        )  # `gem install FILE` wants .gem

    def find_archive(self, name: str, version: str | None, dirs: tuple[Path, ...]) -> Path | None:
        return self.highest_matching(name, version, dirs, "*.gem", lenient_version_key)

    def env(self, layout: Layout, online: bool) -> dict[str, str]:
        return {
            "GEM_HOME": GEM_HOME,
            "GEM_PATH": GEM_HOME,  # only what this run installed, plus Ruby's default gems
            "GEM_SPEC_CACHE": "~/.gem/specs",
            "PATH": f"{GEM_HOME}/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
            # the install harness's only gem source: the registry service
            "OSPTRACK_GEM_SOURCE": GEM_SOURCE_URL,
        }

    def command(self, phase: str, layout: Layout, online: bool) -> list[str] | None:
        harness = layout.harness
        if phase == "install":
            target = layout.archive or f"{layout.name}:{layout.version}"
            mode = "online" if online else "offline"
            return ["python3", f"{harness}/rubygems_install.py", mode, GEM_HOME, target, *layout.deps]
        if phase == "import":
            return ["ruby", f"{harness}/rubygems_import.rb", layout.name]
        if phase == "execute":
            return ["ruby", f"{harness}/rubygems_execute.rb", layout.name, GEM_HOME]
        return None

    def toolchain_rules(self) -> tuple[Rule, ...]:
        ruby = installed("/usr/bin/ruby")
        harness = Layout.harness
        return (
            Rule("harness", ("/usr/bin/python3",), Role.DRIVER, args=(f"{harness}/rubygems_install.py",)),
            Rule("gem", ("/usr/bin/gem",), Role.DRIVER, ("harness",)),
            Rule("gem", ruby, Role.DRIVER, ("gem",)),  # /usr/bin/gem is `#!/usr/bin/env ruby`
            # gem building a native extension: extconf.rb in ruby, then make on its Makefile.
            Rule("gem-build", (*ruby, "/usr/bin/make"), Role.HOST, ("gem",)),
            Rule("harness", ruby, Role.HOST, args=(f"{harness}/rubygems_import.rb",)),
            Rule("execute", ruby, Role.DRIVER, args=(f"{harness}/rubygems_execute.rb",)),
            # The execute harness starting a declared executable: what it does is kept.
            Rule("executable", (f"{GEM_HOME}/bin/",), Role.HOST, ("execute",)),
        )


def gemspec_yaml(
    name: str,
    version: str,
    files: list[str],
    executables: tuple[str, ...] = (),
    extensions: tuple[str, ...] = (),
    require_paths: tuple[str, ...] = ("lib",),
    dependencies: tuple[tuple[str, str], ...] = (),
    summary: str = "",
) -> str:
    """The `metadata` YAML RubyGems writes into a .gem, for the fields `gem install` reads.

    Strings are JSON-quoted, which YAML reads as double-quoted scalars.
    """
    q = _quote

    def listing(items: tuple[str, ...] | list[str]) -> str:
        return "".join(f"\n- {q(i)}" for i in items) if items else " []"

    def requirement(op: str, ver: str) -> str:
        return (
            "!ruby/object:Gem::Requirement\n      requirements:\n      - - "
            + q(op)
            + "\n        - !ruby/object:Gem::Version\n          version: "
            + q(ver)
        )

    deps = ""
    for dep_name, req in dependencies:
        op, _, ver = req.strip().partition(" ")
        if not ver:
            op, ver = ">=", op or "0"
        deps += (
            f"\n- !ruby/object:Gem::Dependency\n  name: {q(dep_name)}\n  requirement: {requirement(op, ver)}"
            f"\n  type: :runtime\n  prerelease: false\n  version_requirements: {requirement(op, ver)}"
        )
    any_version = "!ruby/object:Gem::Requirement\n  requirements:\n  - - \">=\"\n    - !ruby/object:Gem::Version\n      version: '0'"
    return (
        "--- !ruby/object:Gem::Specification\n"
        f"name: {q(name)}\nversion: !ruby/object:Gem::Version\n  version: {q(version)}\n"
        "platform: ruby\nauthors:\n- osptrack\nbindir: bin\ncert_chain: []\n"
        "date: 2024-01-01 00:00:00.000000000 Z\n"
        f"dependencies:{deps or ' []'}\n"
        f"description: {q(summary)}\nemail:\nexecutables:{listing(executables)}\n"
        f"extensions:{listing(extensions)}\nextra_rdoc_files: []\nfiles:{listing(files)}\n"
        "homepage:\nlicenses: []\nmetadata: {}\npost_install_message:\nrdoc_options: []\n"
        f"require_paths:{listing(require_paths)}\n"
        f"required_ruby_version: {any_version}\nrequired_rubygems_version: {any_version}\n"
        f"requirements: []\nrubygems_version: 3.3.15\nsigning_key:\nspecification_version: 4\n"
        f"summary: {q(summary or name)}\ntest_files: []\n"
    )


def _quote(text: str) -> str:
    return json.dumps(text)


def pack_gem(
    dest: Path, metadata_yaml: str, files: dict[str, bytes], modes: dict[str, int] | None = None
) -> Path:
    """A .gem (plain tar of metadata.gz + data.tar.gz), written atomically; nothing is executed."""
    name = _NAME.search(metadata_yaml.encode())
    version = _VERSION.search(metadata_yaml.encode())
    if name is None or version is None:
        raise BadInput("gem metadata lacks name or version")
    path = dest / f"{name.group(1).decode()}-{version.group(1).decode()}.gem"
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:gz") as tf:
        for rel, content in sorted(files.items()):
            _tar_add(tf, rel, content, (modes or {}).get(rel, 0o755 if rel.startswith("bin/") else 0o644))
    outer = io.BytesIO()
    with tarfile.open(fileobj=outer, mode="w") as tf:
        _tar_add(tf, "metadata.gz", gzip.compress(metadata_yaml.encode(), mtime=0), 0o444)
        _tar_add(tf, "data.tar.gz", data.getvalue(), 0o444)
    atomic_write_bytes(path, outer.getvalue())
    path.chmod(0o644)  # mkstemp's 0600 would hide it from the sandbox's host uid in a --deps-dir
    return path


def _tar_add(tf: tarfile.TarFile, name: str, data: bytes, mode: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, 1_700_000_000
    tf.addfile(info, io.BytesIO(data))
