"""RubyGems in the sandbox: an extconf.rb, a required file and an executable each look up a
name, connect and run a command, and each shows up in its own phase of result.json."""

from __future__ import annotations

import base64
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from builders import analyze_all_phases, assert_phase_behaviour, require_toolchain
from osptrack.ecosystems import get
from osptrack.ecosystems.rubygems import gemspec_yaml, pack_gem
from osptrack.run import AnalyzeOptions, analyze
from osptrack.target import PackageRef

PORT = 8080


def ruby_behaviour(host: str) -> str:
    """DNS lookup, TCP connect and exec, harmless: the fake network sinkholes the connect."""
    return f"""
require "socket"
begin
  ip = Addrinfo.getaddrinfo("{host}", {PORT}, :INET, :STREAM).first.ip_address
  s = Socket.tcp(ip, {PORT}, connect_timeout: 3)
  s.write("GET /{host} HTTP/1.0\\r\\nHost: {host}\\r\\n\\r\\n")
  s.close
rescue StandardError => e
  puts "osptrack-test: network failed: #{{e}}"
end
system("sh", "-c", "echo {host.split(".")[0]}-ran; id")
"""


def build_gem(dest: Path) -> Path:
    files = {
        "ext/osptrack_gemhook/extconf.rb": ruby_behaviour("gem-install.osptrack-test.example.com")
        + 'File.write("Makefile", "all:\\n\\ttrue\\ninstall:\\n\\ttrue\\nclean:\\n\\ttrue\\n")\n',
        "lib/osptrack-gemhook.rb": ruby_behaviour("gem-import.osptrack-test.example.com")
        + "module OsptrackGemhook; end\n",
        "bin/osptrack-gemhook": "#!/usr/bin/env ruby\n"
        + ruby_behaviour("gem-execute.osptrack-test.example.com"),
    }
    meta = gemspec_yaml(
        "osptrack-gemhook",
        "1.0.0",
        sorted(files),
        executables=("osptrack-gemhook",),
        extensions=("ext/osptrack_gemhook/extconf.rb",),
    )
    return pack_gem(dest, meta, {k: v.encode() for k, v in files.items()})


def test_gem_metadata_round_trips(tmp_path: Path) -> None:
    gem = build_gem(tmp_path)
    meta = get("rubygems").read_metadata(gem)
    assert (meta.name, meta.version) == ("osptrack-gemhook", "1.0.0")
    assert get("rubygems").find_archive("OSPTRACK-gemhook", None, (tmp_path,)) == gem


def test_not_a_gem_is_bad_input(tmp_path: Path) -> None:
    from osptrack.errors import BadInput

    junk = tmp_path / "x-1.0.gem"
    junk.write_bytes(b"not a tar")
    with pytest.raises(BadInput):
        get("rubygems").read_metadata(junk)


@pytest.fixture(scope="module")
def gem_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    require_toolchain("rubygems")
    base = tmp_path_factory.mktemp("gem")
    gem = build_gem(base)
    return analyze_all_phases("rubygems", gem, base / "run", 120)


@pytest.mark.sandbox
@pytest.mark.parametrize(
    ("phase", "host"),
    [
        ("install", "gem-install.osptrack-test.example.com"),
        ("import", "gem-import.osptrack-test.example.com"),
        ("execute", "gem-execute.osptrack-test.example.com"),
    ],
)
def test_each_phase_records_dns_connect_exec(gem_run: dict, phase: str, host: str) -> None:
    assert gem_run["Analysis"][phase]["Status"] == "completed"
    assert_phase_behaviour(gem_run, phase, host, PORT)


@pytest.mark.sandbox
def test_phases_do_not_leak_into_each_other(gem_run: dict) -> None:
    install_names = {q["Hostname"] for d in gem_run["Analysis"]["install"]["DNS"] or [] for q in d["Queries"]}
    assert "gem-execute.osptrack-test.example.com" not in install_names
    import_names = {q["Hostname"] for d in gem_run["Analysis"]["import"]["DNS"] or [] for q in d["Queries"]}
    assert "gem-execute.osptrack-test.example.com" not in import_names


@pytest.fixture
def readable_dir() -> Iterator[Path]:
    """A --deps-dir the sandbox's host uid (nobody) can reach; pytest's tmp_path is 0700."""
    path = Path(tempfile.mkdtemp(prefix="osptrack-gemdeps-", dir="/var/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.mark.sandbox
def test_offline_dependencies_resolve_from_deps_dir(readable_dir: Path, tmp_path: Path) -> None:
    lib_files = {"lib/osptrack_gemdep_lib.rb": b"module OsptrackGemdepLib; end\n"}
    pack_gem(readable_dir, gemspec_yaml("osptrack-gemdep-lib", "1.2.0", sorted(lib_files)), lib_files)
    app_files = {"lib/osptrack_gemdep_app.rb": b"require 'osptrack_gemdep_lib'\n"}
    app_meta = gemspec_yaml(
        "osptrack-gemdep-app", "1.0.0", sorted(app_files), dependencies=(("osptrack-gemdep-lib", ">= 1.0"),)
    )
    app = pack_gem(tmp_path, app_meta, app_files)
    ref = PackageRef("rubygems", "osptrack-gemdep-app", None, app)
    with_deps = analyze(ref, AnalyzeOptions(timeout_s=120, deps_dirs=(readable_dir,)), tmp_path / "with")
    assert with_deps.statuses == {"install": "completed", "import": "completed"}
    stdout = base64.b64decode(
        json.loads((tmp_path / "with" / "result.json").read_text())["Analysis"]["install"]["Stdout"]
    )
    assert b"Successfully installed osptrack-gemdep-lib-1.2.0" in stdout
    without = analyze(ref, AnalyzeOptions(phases=("install",), timeout_s=120), tmp_path / "without")
    assert without.statuses == {"install": "error_analysis"}  # offline, nothing else to resolve from
