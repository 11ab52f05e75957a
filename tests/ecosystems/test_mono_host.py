"""The Mono host the NuGet harnesses run NuGet.exe, xbuild and their own programs through.

Mono 6.8's runtime shutdown can spin under `strace -f --seccomp-bpf` (seen in 5 of 15 xbuild
runs) until the phase timeout; the host leaves with _exit(2) once the program is done. These
runs are of the test's own project, outside the sandbox: no package code is involved.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from builders import require_toolchain

HARNESS = Path(__file__).parents[2] / "src" / "osptrack" / "ecosystems" / "harness"
XBUILD = "/usr/lib/mono/xbuild/14.0/bin/xbuild.exe"
# Exec'ing a child and reading its output leaves thread-pool workers alive at exit: the case
# whose teardown spins under the tracer.
PROJECT = """<Project DefaultTargets="Build" xmlns="http://schemas.microsoft.com/developer/msbuild/2003">
  <Target Name="Build"><Exec Command="echo osptrack-host-ran" /><Exec Command="exit {code}" /></Target>
</Project>
"""


def mcs(source: Path, exe: Path) -> Path:
    """Compile the test's own C# (or the host) with mcs; returns the .exe."""
    exe.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mcs", "-nologo", f"-out:{exe}", str(source)], check=True)
    return exe


def program(tmp_path: Path, name: str, code: str, folder: str = ".") -> Path:
    source = tmp_path / f"{name}.cs"
    source.write_text(code)
    return mcs(source, tmp_path / folder / f"{name}.exe")


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_toolchain("nuget")
    return mcs(HARNESS / "mono_host.cs", tmp_path_factory.mktemp("host") / "mono_host.exe")


def traced_xbuild(host: Path, project: Path) -> subprocess.CompletedProcess:
    strace = ["strace", "-f", "--seccomp-bpf", "-e", "trace=execve,openat", "-o", "/dev/null"]
    return subprocess.run(
        [*strace, "mono", str(host), XBUILD, "/nologo", str(project)],
        capture_output=True,
        text=True,
        timeout=20,  # a clean run takes ~1 s; the spin lasted 30 s to past 240 s
    )


@pytest.mark.sandbox
def test_traced_xbuild_ends_every_time_and_keeps_its_output(host: Path, tmp_path: Path) -> None:
    assert shutil.which("strace")
    project = tmp_path / "ok.proj"
    project.write_text(PROJECT.format(code=0))
    for attempt in range(8):
        done = traced_xbuild(host, project)  # a spin raises TimeoutExpired
        assert done.returncode == 0, (attempt, done.stdout[-2000:], done.stderr[-2000:])
        assert "osptrack-host-ran" in done.stdout and "Build succeeded." in done.stdout


@pytest.mark.sandbox
def test_the_programs_exit_code_comes_through(host: Path, tmp_path: Path) -> None:
    project = tmp_path / "fails.proj"
    project.write_text(PROJECT.format(code=3))
    done = traced_xbuild(host, project)
    assert done.returncode == 1, done.stdout[-2000:]  # xbuild's own code for a failed build
    assert "Build FAILED." in done.stdout


@pytest.mark.sandbox
def test_the_programs_process_exit_handlers_still_run(host: Path, tmp_path: Path) -> None:
    # Code that waits for exit to act is a known evasion; skipping it would hide behaviour.
    late = program(
        tmp_path,
        "late",
        "public static class Late { public static int Main() {"
        ' System.AppDomain.CurrentDomain.ProcessExit += (s, e) => System.Console.WriteLine("late-handler-ran");'
        ' System.Console.WriteLine("main-ran"); return 5; } }',
    )
    done = subprocess.run(["mono", str(host), str(late)], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout.split()) == (5, ["main-ran", "late-handler-ran"])


@pytest.mark.sandbox
def test_the_program_sees_what_bare_mono_shows_it(host: Path, tmp_path: Path) -> None:
    # Tools find their files from these (`BaseDirectory + "x.config"`); only the runtime's own
    # command line (Environment.GetCommandLineArgs) also names the host, as the docs say.
    where = program(
        tmp_path,
        "where",
        "using System; using System.Reflection; public static class Where { public static void Main(string[] a) {"
        " Console.WriteLine(Assembly.GetEntryAssembly().GetName().Name);"
        " Console.WriteLine(AppDomain.CurrentDomain.BaseDirectory);"
        " Console.WriteLine(AppDomain.CurrentDomain.FriendlyName);"
        ' Console.WriteLine(string.Join("|", a)); } }',
        folder="bin",
    )
    args = [str(where), "a b", "--c"]
    bare = subprocess.run(["mono", *args], capture_output=True, text=True, timeout=60, check=True)
    hosted = subprocess.run(
        ["mono", str(host), *args], capture_output=True, text=True, timeout=60, check=True
    )
    assert hosted.stdout == bare.stdout
    assert bare.stdout.splitlines() == ["where", f"{where.parent}/", "where.exe", "a b|--c"]
