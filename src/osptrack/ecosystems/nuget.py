"""NuGet on Mono: restore into a project, build it with xbuild, load the assemblies.

There is no .NET SDK or PowerShell package here; Debian's mono-complete 6.8, mono-xbuild and
nuget 2.8.7 are the most faithful option that installs (see docs/ecosystems.md for what that
can and cannot run):
- install: `nuget install` restores the package (and its dependencies from --deps-dir), then
  xbuild builds a generated project that imports the package's build/*.props and
  build/*.targets the way NuGet's generated nuget.g.props/targets do. MSBuild `Exec` tasks,
  the NuGet install-time attack path, run. tools/install.ps1 and init.ps1 are listed and run
  only if `pwsh` exists.
- import: each lib/ assembly is loaded and its module initialiser run.
- execute: tools/*.exe with --help under mono.

Every Mono program the harnesses start runs under harness/mono_host.cs, which leaves with
_exit(2) once the program has finished: Mono 6.8's own shutdown can spin under strace
--seccomp-bpf until the phase timeout.

Mono reads its configuration from /etc/mono, which the sandbox's minimal /etc lacks; it is
bound read-only elsewhere and named by MONO_CFG_DIR.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Callable
from pathlib import Path
from xml.sax.saxutils import escape

from osptrack.ecosystems.archives import depth, not_a, read_member, staged_name
from osptrack.ecosystems.base import (
    Ecosystem,
    Layout,
    Metadata,
    home_relative,
    install_harness_argv,
    lenient_version_key,
)
from osptrack.errors import BadInput
from osptrack.jsonio import atomic_write_bytes
from osptrack.target import validate_name, validate_version
from osptrack.trace.roles import SHELLS, Role, Rule, installed

MONO_CFG = "/opt/osptrack/mono-cfg"
MONO_HOST = "/tmp/osptrack-mono-host-"  # harness/mono_host.py compiles it there ($TMPDIR)
PACKAGES = "~/packages/"  # the install harness's $HOME/packages
_ID = re.compile(rb"<id>\s*([^<\s]+)\s*</id>", re.IGNORECASE)
_VERSION = re.compile(rb"<version>\s*([^<\s]+)\s*</version>", re.IGNORECASE)


class NuGet(Ecosystem):
    name = "nuget"
    registry_hosts = ("api.nuget.org", "www.nuget.org", "globalcdn.nuget.org")
    suffixes = (".nupkg",)
    toolchain = (
        ("mono", "mono-complete"),
        ("xbuild", "mono-xbuild"),
        ("mcs", "mono-complete"),
        ("nuget", "nuget"),
    )
    phases = ("install", "import", "execute")

    def read_metadata(self, archive: Path) -> Metadata:
        found = read_member(archive, lambda n: depth(n) == 0 and n.lower().endswith(".nuspec"))
        if found is None:
            raise not_a(archive, "a NuGet package (no .nuspec)", self.name)
        metadata = found[1].split(b"</metadata>", 1)[0]
        pid, ver = _ID.search(metadata), _VERSION.search(metadata)
        if pid is None or ver is None:
            raise BadInput(f"{archive.name}: .nuspec lacks id or version")
        meta = Metadata(pid.group(1).decode(errors="replace"), ver.group(1).decode(errors="replace"))
        validate_name("nuget", meta.name)
        validate_version(meta.version)
        return meta

    def staged_name(self, archive: Path, meta: Metadata) -> str:
        return staged_name(archive, (".nupkg",), f"{meta.name.lower()}.{meta.version.lower()}.nupkg")

    def find_archive(self, name: str, version: str | None, dirs: tuple[Path, ...]) -> Path | None:
        return self.highest_matching(
            name, version, dirs, "*.nupkg", lenient_version_key, lambda a, b: a.lower() == b.lower()
        )

    def ro_binds(self) -> tuple[tuple[str, str], ...]:
        return (("/etc/mono", f"{MONO_CFG}/mono"),) if Path("/etc/mono").is_dir() else ()

    def env(self, layout: Layout, online: bool) -> dict[str, str]:
        return {
            "MONO_CFG_DIR": MONO_CFG,
            "MONO_REGISTRY_PATH": "~/.mono/registry",
            "XDG_CONFIG_HOME": "~/.config",
            "EnableNuGetPackageRestore": "true",
        }

    def command(self, phase: str, layout: Layout, online: bool) -> list[str] | None:
        h = layout.harness
        if phase == "install":
            return install_harness_argv("nuget_install.py", layout, online)
        if phase == "import":
            return ["/bin/sh", f"{h}/nuget_import.sh", layout.name, layout.version]
        if phase == "execute":
            return ["python3", f"{h}/nuget_execute.py", layout.name, layout.version]
        return None

    def toolchain_rules(self) -> tuple[Rule, ...]:
        harness = Layout.harness
        python = ("/usr/bin/python3",)
        mono = installed("/usr/bin/mono")
        harnesses = ("install", "import", "execute")

        def hosted(program: str) -> Callable[[list[str]], bool]:
            # `mono /tmp/osptrack-mono-host-N.exe PROGRAM ...`: the harnesses' Mono host.
            return lambda argv: (
                len(argv) > 2 and argv[1].startswith(MONO_HOST) and home_relative(argv[2]).startswith(program)
            )

        return (
            Rule("install", python, Role.DRIVER, args=(f"{harness}/nuget_install.py",)),
            Rule("import", SHELLS, Role.DRIVER, args=(f"{harness}/nuget_import.sh",)),
            Rule("execute", python, Role.DRIVER, args=(f"{harness}/nuget_execute.py",)),
            # Compiling the harness's own C# (mcs is a shell script running mono), its helpers.
            Rule("compile", ("/usr/bin/mcs",), Role.HELPER, (*harnesses, "mono-host")),
            Rule("helper", ("/usr/bin/dirname",), Role.HELPER, ("import",)),
            Rule("mono-host", python, Role.DRIVER, ("import",), args=(f"{harness}/mono_host.py",)),
            Rule("helper", python, Role.HELPER, ("import",), args=("-", harness)),
            # NuGet restoring (it runs none of the package's code); xbuild building the project
            # that imports the package's .targets: its Exec tasks are `sh` on a temp script.
            Rule("nuget", mono, Role.DRIVER, ("install",), argv_test=hosted("/usr/lib/nuget/NuGet.exe")),
            Rule("xbuild", mono, Role.DRIVER, ("install",), argv_test=hosted("/usr/lib/mono/xbuild/")),
            Rule("compile", mono, Role.HELPER, ("xbuild",), args=("/usr/lib/mono/4.5/mcs.exe",)),
            Rule("msbuild-exec", SHELLS, Role.HOST, ("xbuild",)),
            # The import program loading the package's assemblies, the execute harness running
            # its tools: what they do is kept.
            Rule("harness", mono, Role.HOST, ("import",), argv_test=hosted("/tmp/osptrack-nuget-import-")),
            Rule("harness", mono, Role.HOST, ("execute",), argv_test=hosted(PACKAGES)),
        )


def pack_nupkg(
    dest: Path,
    package_id: str,
    version: str,
    files: dict[str, bytes],
    dependencies: tuple[tuple[str, str], ...] = (),
    description: str = "osptrack package",
) -> Path:
    """A .nupkg (OPC zip: .nuspec, [Content_Types].xml, _rels/.rels), as `nuget pack` lays it out."""
    deps = "".join(f'<dependency id="{escape(d)}" version="{escape(v)}" />' for d, v in dependencies)
    nuspec = (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<package xmlns="http://schemas.microsoft.com/packaging/2013/05/nuspec.xsd">\n  <metadata>\n'
        f"    <id>{escape(package_id)}</id>\n    <version>{escape(version)}</version>\n"
        f"    <authors>osptrack</authors>\n    <description>{escape(description)}</description>\n"
        f"    <dependencies>{deps}</dependencies>\n  </metadata>\n</package>\n"
    )
    extensions = sorted(
        {Path(f).suffix.lstrip(".").lower() for f in files if Path(f).suffix} | {"nuspec", "rels"}
    )
    content_types = (
        '<?xml version="1.0" encoding="utf-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        + "".join(f'<Default Extension="{escape(e)}" ContentType="application/octet" />' for e in extensions)
        + "</Types>"
    )
    rels = (
        '<?xml version="1.0" encoding="utf-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        f'<Relationship Type="http://schemas.microsoft.com/packaging/2010/07/manifest" Target="/{escape(package_id)}.nuspec" Id="R1" />'
        "</Relationships>"
    )
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("_rels/.rels", rels)
        zf.writestr(f"{package_id}.nuspec", nuspec)
        for rel, data in sorted(files.items()):
            zf.writestr(rel, data)
        zf.writestr("[Content_Types].xml", content_types)
    path = dest / f"{package_id}.{version}.nupkg"
    atomic_write_bytes(path, buf.getvalue())
    path.chmod(0o644)  # mkstemp's 0600 would hide it from the sandbox's host uid in a --deps-dir
    return path
