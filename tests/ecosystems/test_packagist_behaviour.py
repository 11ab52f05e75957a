"""Packagist in the sandbox: a composer plugin, an included file and a bin entry each look up
a name, connect and run a command, and each shows up in its own phase of result.json."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from builders import analyze_all_phases, assert_phase_behaviour, require_toolchain
from osptrack.ecosystems import get
from osptrack.ecosystems.packagist import pack_composer_zip
from osptrack.errors import BadInput

PORT = 8080
NAME = "osptrack-test/composer-hook"


def php_behaviour(host: str) -> str:
    """DNS lookup, TCP connect and exec, harmless: the fake network sinkholes the connect."""
    tag = host.split(".")[0]
    return f"""
$ip = gethostbyname("{host}");
$s = @fsockopen($ip, {PORT}, $errno, $errstr, 3);
if ($s) {{ fwrite($s, "GET /{tag} HTTP/1.0\\r\\nHost: {host}\\r\\n\\r\\n"); fclose($s); }}
else {{ echo "osptrack-test: connect failed $errstr\\n"; }}
passthru("sh -c 'echo {tag}-ran; id'");
"""


def build_package(dest: Path, version_in_json: bool = True) -> Path:
    manifest: dict[str, object] = {
        "name": NAME,
        "version": "1.0.0",
        "type": "composer-plugin",
        "require": {"composer-plugin-api": "^2.0"},
        "autoload": {"psr-4": {"OsptrackTest\\": "src/"}},
        "extra": {"class": "OsptrackTest\\Plugin"},
        "bin": ["bin/composer-hook"],
    }
    plugin = (
        "<?php\nnamespace OsptrackTest;\nuse Composer\\Composer;\nuse Composer\\IO\\IOInterface;\n"
        "use Composer\\Plugin\\PluginInterface;\n"
        "class Plugin implements PluginInterface {\n"
        "  public function activate(Composer $composer, IOInterface $io) {"
        + php_behaviour("php-install.osptrack-test.example.com")
        + "}\n  public function deactivate(Composer $composer, IOInterface $io) {}\n"
        "  public function uninstall(Composer $composer, IOInterface $io) {}\n}\n"
    )
    files = {
        "src/Plugin.php": plugin.encode(),
        "src/Loaded.php": (
            "<?php\nnamespace OsptrackTest;\n"
            + php_behaviour("php-import.osptrack-test.example.com")
            + "class Loaded {}\n"
        ).encode(),
        "bin/composer-hook": (
            "#!/usr/bin/env php\n<?php\n" + php_behaviour("php-execute.osptrack-test.example.com")
        ).encode(),
    }
    if not version_in_json:
        del manifest["version"]
        path = pack_composer_zip(dest, {**manifest, "version": "1.0.0"}, files)
        bare = dest / "zipball-2.1.0.zip"
        with zipfile.ZipFile(path) as src, zipfile.ZipFile(bare, "w") as out:
            for info in src.infolist():
                data = json.dumps(manifest).encode() if info.filename == "composer.json" else src.read(info)
                out.writestr(f"top-abc123/{info.filename}", data)
        path.unlink()
        return bare
    return pack_composer_zip(dest, manifest, files)


def test_metadata_from_composer_json_and_file_name(tmp_path: Path) -> None:
    eco = get("packagist")
    meta = eco.read_metadata(build_package(tmp_path))
    assert (meta.name, meta.version) == (NAME, "1.0.0")
    other = tmp_path / "other"
    other.mkdir()
    zipball = build_package(other, version_in_json=False)
    assert eco.read_metadata(zipball).version == "2.1.0"
    assert eco.find_archive(NAME.upper(), "2.1.0", (tmp_path, other)) == zipball


def test_zip_without_composer_json_is_bad_input(tmp_path: Path) -> None:
    path = tmp_path / "x-1.0.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("README", "no manifest")
    with pytest.raises(BadInput, match="no composer.json"):
        get("packagist").read_metadata(path)


@pytest.fixture(scope="module")
def composer_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    require_toolchain("packagist")
    base = tmp_path_factory.mktemp("composer")
    archive = build_package(base)
    return analyze_all_phases("packagist", archive, base / "run", 120)


@pytest.mark.sandbox
@pytest.mark.parametrize(
    ("phase", "host"),
    [
        ("install", "php-install.osptrack-test.example.com"),
        ("import", "php-import.osptrack-test.example.com"),
        ("execute", "php-execute.osptrack-test.example.com"),
    ],
)
def test_each_phase_records_dns_connect_exec(composer_run: dict, phase: str, host: str) -> None:
    assert composer_run["Analysis"][phase]["Status"] == "completed"
    assert_phase_behaviour(composer_run, phase, host, PORT)


@pytest.mark.sandbox
def test_notable_keeps_the_hook_and_drops_toolchain_noise(composer_run: dict) -> None:
    run_dir = Path(composer_run["_run_dir"])
    commands = json.loads((run_dir / "run.json").read_text())["notable"]["commands"]
    assert any("php-install-ran" in c for c in commands), commands
    assert not any("stty -a" in c for c in commands), commands
