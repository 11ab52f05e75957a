"""NuGet on Mono in the sandbox: a build/.targets Exec, an assembly's module initialiser and a
tools/ executable each look up a name, connect and run a command, each in its own phase."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from builders import analyze_all_phases, assert_phase_behaviour, require_toolchain
from osptrack.ecosystems import get
from osptrack.ecosystems.nuget import pack_nupkg
from osptrack.errors import BadInput
from osptrack.run import AnalyzeOptions, analyze
from osptrack.target import PackageRef

PORT = 8080
PACKAGE_ID = "Osptrack.NugetHook"


def il_behaviour(host: str) -> str:
    """IL: connect with TcpClient (a DNS lookup, then a connect), then run a shell command."""
    tag = host.split(".")[0]
    return f"""
  .maxstack 8
  .try {{
    ldstr "{host}"
    ldc.i4 {PORT}
    newobj instance void [System]System.Net.Sockets.TcpClient::.ctor(string, int32)
    callvirt instance void [System]System.Net.Sockets.TcpClient::Close()
    leave.s AFTER
  }} catch [mscorlib]System.Exception {{
    pop
    leave.s AFTER
  }}
AFTER:
  ldstr "/bin/sh"
  ldstr "-c \\"echo {tag}-ran; id\\""
  call class [System]System.Diagnostics.Process [System]System.Diagnostics.Process::Start(string, string)
  callvirt instance void [System]System.Diagnostics.Process::WaitForExit()
  ret
"""


IL_HEADER = """
.assembly extern mscorlib {{ .publickeytoken = (B7 7A 5C 56 19 34 E0 89) .ver 4:0:0:0 }}
.assembly extern System {{ .publickeytoken = (B7 7A 5C 56 19 34 E0 89) .ver 4:0:0:0 }}
.assembly '{name}' {{ .ver 1:0:0:0 }}
.module '{name}.{ext}'
"""


def ilasm(tmp: Path, name: str, kind: str, body: str) -> bytes:
    ext = "dll" if kind == "dll" else "exe"
    source = tmp / f"{name}.il"
    source.write_text(IL_HEADER.format(name=name, ext=ext) + body)
    out = tmp / f"{name}.{ext}"
    # ilasm is the compiler, not package code: it only assembles the test's own IL.
    subprocess.run(
        ["ilasm", "/quiet", f"/{ext}", f"/output:{out}", str(source)], check=True, capture_output=True
    )
    return out.read_bytes()


def build_nupkg(dest: Path) -> Path:
    work = dest / "il"
    work.mkdir()
    dll = ilasm(
        work,
        "OsptrackNugetHook",
        "dll",
        ".method private hidebysig specialname rtspecialname static void .cctor() cil managed {"
        + il_behaviour("nuget-import.osptrack-test.example.com")
        + "}\n.class public auto ansi beforefieldinit OsptrackNugetHook.Marker extends [mscorlib]System.Object { }\n",
    )
    exe = ilasm(
        work,
        "osptrack-nuget-tool",
        "exe",
        ".method public static void Main(string[] args) cil managed { .entrypoint"
        + il_behaviour("nuget-execute.osptrack-test.example.com")
        + "}\n",
    )
    host = "nuget-install.osptrack-test.example.com"
    shell = f"exec 3&lt;&gt;/dev/tcp/{host}/{PORT}; echo nuget-install-ran; id"
    targets = f"""<?xml version="1.0" encoding="utf-8"?>
<Project xmlns="http://schemas.microsoft.com/developer/msbuild/2003">
  <PropertyGroup>
    <BuildDependsOn>OsptrackHook;$(BuildDependsOn)</BuildDependsOn>
  </PropertyGroup>
  <Target Name="OsptrackHook">
    <Exec Command="bash -c '{shell}'" ContinueOnError="true" />
  </Target>
</Project>
"""
    files = {
        f"build/{PACKAGE_ID}.targets": targets.encode(),
        "lib/net45/OsptrackNugetHook.dll": dll,
        "tools/osptrack-nuget-tool.exe": exe,
    }
    return pack_nupkg(dest, PACKAGE_ID, "1.0.0", files)


def test_nuspec_metadata_and_lookup(tmp_path: Path) -> None:
    path = pack_nupkg(tmp_path, PACKAGE_ID, "2.3.4", {"lib/net45/x.txt": b""})
    eco = get("nuget")
    meta = eco.read_metadata(path)
    assert (meta.name, meta.version) == (PACKAGE_ID, "2.3.4")
    assert eco.find_archive(PACKAGE_ID.lower(), None, (tmp_path,)) == path
    assert eco.find_archive(PACKAGE_ID, "1.0.0", (tmp_path,)) is None


def test_zip_without_nuspec_is_bad_input(tmp_path: Path) -> None:
    import zipfile

    path = tmp_path / "x.1.0.0.nupkg"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("lib/net45/x.dll", b"MZ")
    with pytest.raises(BadInput, match="no .nuspec"):
        get("nuget").read_metadata(path)


@pytest.fixture(scope="module")
def nuget_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    require_toolchain("nuget")
    assert shutil.which("ilasm"), "ilasm (mono-devel, part of mono-complete) builds the test assembly"
    base = tmp_path_factory.mktemp("nuget")
    archive = build_nupkg(base)
    return analyze_all_phases("nuget", archive, base / "run", 240)


@pytest.mark.sandbox
@pytest.mark.parametrize(
    ("phase", "host"),
    [
        ("install", "nuget-install.osptrack-test.example.com"),
        ("import", "nuget-import.osptrack-test.example.com"),
        ("execute", "nuget-execute.osptrack-test.example.com"),
    ],
)
def test_each_phase_records_dns_connect_exec(nuget_run: dict, phase: str, host: str) -> None:
    assert nuget_run["Analysis"][phase]["Status"] == "completed"
    assert_phase_behaviour(nuget_run, phase, host, PORT)


@pytest.mark.sandbox
def test_notable_keeps_the_hooks_and_drops_the_toolchain(nuget_run: dict) -> None:
    commands = json.loads((Path(nuget_run["_run_dir"]) / "run.json").read_text())["notable"]["commands"]
    assert any("nuget-install-ran" in c for c in commands), commands
    assert any("nuget-import-ran" in c for c in commands), commands
    assert not any(tool in c for c in commands for tool in ("xbuild", "NuGet.exe", "mcs ")), commands


@pytest.mark.sandbox
def test_dependency_restores_from_deps_dir_and_its_targets_run(tmp_path: Path) -> None:
    require_toolchain("nuget")
    # A --deps-dir the sandbox's host uid (nobody) can reach; pytest's tmp_path is 0700.
    deps = Path(tempfile.mkdtemp(prefix="osptrack-nugetdeps-", dir="/var/tmp"))
    deps.chmod(0o755)
    try:
        dep_targets = (
            '<Project xmlns="http://schemas.microsoft.com/developer/msbuild/2003">'
            "<PropertyGroup><BuildDependsOn>DepHook;$(BuildDependsOn)</BuildDependsOn></PropertyGroup>"
            '<Target Name="DepHook"><Exec Command="echo nuget-dep-targets-ran" /></Target></Project>'
        )
        pack_nupkg(deps, "Osptrack.Dep", "2.0.0", {"build/Osptrack.Dep.targets": dep_targets.encode()})
        app = pack_nupkg(
            tmp_path, "Osptrack.App", "1.0.0", {"lib/net45/readme.txt": b"x"}, (("Osptrack.Dep", "2.0.0"),)
        )
        ref = PackageRef("nuget", "Osptrack.App", None, app)
        outcome = analyze(
            ref, AnalyzeOptions(phases=("install",), timeout_s=240, deps_dirs=(deps,)), tmp_path / "run"
        )
        assert outcome.statuses == {"install": "completed"}
        result = json.loads((tmp_path / "run" / "result.json").read_text())
        stdout = base64.b64decode(result["Analysis"]["install"]["Stdout"])
        assert b"nuget-dep-targets-ran" in stdout
    finally:
        shutil.rmtree(deps, ignore_errors=True)
