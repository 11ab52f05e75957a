"""Restore a .nupkg into a project and build it with xbuild (inside the sandbox, Mono).

Usage: nuget_install.py offline|online ID VERSION [ARCHIVE] [--deps DIR...]

1. `nuget install` (NuGet 2.8.7 on Mono) restores the package and its dependencies from the
   archive's folder and the --deps-dir folders into /root/packages, as a packages.config
   restore does.
2. A project is generated that imports each restored package's build/*.props at the top and
   build/*.targets at the bottom (build/<id>.props|targets, the best net4x/netstandard
   subfolder, and buildTransitive/), as NuGet's generated nuget.g.props/targets do, and
   references its lib/ assemblies. xbuild evaluates it and runs the Build target, so MSBuild
   `Exec` tasks and inline logic in those files run: NuGet's install-time attack path.
3. tools/install.ps1 and tools/init.ps1 are listed; they run only if PowerShell (`pwsh`) exists.
"""

import os
import re
import shutil
import subprocess
import sys
from xml.sax.saxutils import quoteattr

import _install_args  # sibling modules: the harness folder is this script's sys.path[0]
from mono_host import mono_argv

HOME = os.environ.get("HOME", "/root")
PACKAGES = f"{HOME}/packages"
PROJECT = f"{HOME}/project"
NUGET = "/usr/lib/nuget/NuGet.exe"
XBUILD = "/usr/lib/mono/xbuild/14.0/bin/xbuild.exe"
TFM_ORDER = [
    "net48",
    "net472",
    "net471",
    "net47",
    "net462",
    "net461",
    "net46",
    "net452",
    "net451",
    "net45",
    "net40",
    "net35",
    "net20",
    "netstandard2.0",
    "netstandard1.6",
    "netstandard1.3",
    "netstandard1.0",
]


def best_tfm_dir(folder):
    """The subfolder a net4x project would pick: nearest .NET Framework, then netstandard."""
    if not os.path.isdir(folder):
        return None
    subs = {d.lower(): d for d in os.listdir(folder) if os.path.isdir(os.path.join(folder, d))}
    for tfm in TFM_ORDER:
        for key, real in subs.items():
            if key == tfm or key == tfm.replace(".", "") or key.startswith(tfm + "-"):
                return os.path.join(folder, real)
    return None


def package_dirs(package_id, version):
    """The restored package folders (`Id.Version`, as nuget install names them); the analysed one first."""
    if not os.path.isdir(PACKAGES):
        return []
    dirs = sorted(
        os.path.join(PACKAGES, d) for d in os.listdir(PACKAGES) if os.path.isdir(os.path.join(PACKAGES, d))
    )
    own = f"{package_id}.{version}".lower()
    return sorted(dirs, key=lambda d: 0 if os.path.basename(d).lower() == own else 1)


def own_dir(package_id, version):
    dirs = package_dirs(package_id, version)
    return (
        dirs[0] if dirs and os.path.basename(dirs[0]).lower() == f"{package_id}.{version}".lower() else None
    )


def build_imports(pkg_dir, package_id_of_dir):
    props, targets, refs = [], [], []
    for kind in ("build", "buildTransitive"):
        base = os.path.join(pkg_dir, kind)
        for folder in [base, best_tfm_dir(base)]:
            if not folder or not os.path.isdir(folder):
                continue
            for entry in sorted(os.listdir(folder)):
                low = entry.lower()
                if low == package_id_of_dir.lower() + ".props":
                    props.append(os.path.join(folder, entry))
                elif low == package_id_of_dir.lower() + ".targets":
                    targets.append(os.path.join(folder, entry))
    lib = best_tfm_dir(os.path.join(pkg_dir, "lib")) or os.path.join(pkg_dir, "lib")
    if os.path.isdir(lib):
        refs = [os.path.join(lib, f) for f in sorted(os.listdir(lib)) if f.lower().endswith(".dll")]
    return props, targets, refs


def id_of(pkg_dir):
    """Package id from a restored folder name `Id.1.2.3` (its .nuspec names it exactly)."""
    for entry in os.listdir(pkg_dir):
        if entry.lower().endswith(".nuspec"):
            return entry[: -len(".nuspec")]
    return re.sub(r"\.\d+(\.\d+)*(-[\w.]+)?$", "", os.path.basename(pkg_dir))


def write_project(all_props, all_targets, refs):
    os.makedirs(PROJECT, exist_ok=True)
    lines = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<Project ToolsVersion="14.0" DefaultTargets="Build" xmlns="http://schemas.microsoft.com/developer/msbuild/2003">',
    ]
    lines += [f"  <Import Project={quoteattr(p)} />" for p in all_props]
    lines += [
        "  <PropertyGroup>",
        "    <OutputType>Library</OutputType><AssemblyName>OsptrackSandboxProject</AssemblyName>",
        "    <TargetFrameworkVersion>v4.5</TargetFrameworkVersion><OutputPath>bin/</OutputPath>",
        "    <Configuration>Debug</Configuration><Platform>AnyCPU</Platform>",
        "  </PropertyGroup>",
        "  <ItemGroup>",
        '    <Compile Include="Program.cs" />',
        '    <Reference Include="System" />',
    ]
    for ref in refs:
        name = os.path.basename(ref)[:-4]
        lines.append(f"    <Reference Include={quoteattr(name)}><HintPath>{ref}</HintPath></Reference>")
    lines += ["  </ItemGroup>", '  <Import Project="$(MSBuildToolsPath)/Microsoft.CSharp.targets" />']
    lines += [f"  <Import Project={quoteattr(t)} />" for t in all_targets]
    lines.append("</Project>")
    with open(os.path.join(PROJECT, "Project.csproj"), "w") as fh:
        fh.write("\n".join(lines) + "\n")
    with open(os.path.join(PROJECT, "Program.cs"), "w") as fh:
        fh.write(
            "namespace OsptrackSandbox { public static class Program { public static int Value = 1; } }\n"
        )


def main():
    mode, _, package_id, version, archive, deps = _install_args.parse()
    os.makedirs(PACKAGES, exist_ok=True)
    argv = mono_argv(
        NUGET,
        "install",
        package_id,
        "-Version",
        version,
        "-OutputDirectory",
        PACKAGES,
        "-NonInteractive",
        "-NoCache",
    )
    sources = ([os.path.dirname(archive)] if archive else []) + deps
    if mode == "online":
        sources.append("https://www.nuget.org/api/v2/")  # NuGet 2.8.7 speaks only the v2 feed protocol
    for source in sources:
        argv += ["-Source", source]
    print("osptrack-install:", " ".join(argv), flush=True)
    restored = subprocess.run(argv, stdin=subprocess.DEVNULL)
    if restored.returncode != 0:
        print(f"osptrack-install: nuget install failed ({restored.returncode})", file=sys.stderr, flush=True)
        return restored.returncode or 1
    all_props, all_targets, all_refs = [], [], []
    for pkg_dir in package_dirs(package_id, version):
        props, targets, refs = build_imports(pkg_dir, id_of(pkg_dir))
        all_props += props
        all_targets += targets
        all_refs += refs
        for script in ("install.ps1", "init.ps1"):
            path = os.path.join(pkg_dir, "tools", script)
            if os.path.exists(path):
                print(f"osptrack-install: {path} present", flush=True)
                pwsh = shutil.which("pwsh")
                if pwsh:
                    subprocess.run(
                        [pwsh, "-NoProfile", "-NonInteractive", "-File", path], stdin=subprocess.DEVNULL
                    )
    write_project(all_props, all_targets, all_refs)
    print(
        f"osptrack-install: project imports {len(all_props)} .props, {len(all_targets)} .targets", flush=True
    )
    # /usr/bin/xbuild is `MONO_GC_PARAMS=nursery-size=64m mono xbuild.exe`; the same, through the host.
    env = dict(os.environ, MONO_GC_PARAMS="nursery-size=64m," + os.environ.get("MONO_GC_PARAMS", ""))
    built = subprocess.run(
        mono_argv(XBUILD, "/nologo", "/verbosity:normal", "Project.csproj"),
        cwd=PROJECT,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    return built.returncode


if __name__ == "__main__":
    sys.exit(main())
