"""The persona's global npm prefix: pinned, consistent (`npm root -g`, NODE_PATH, PATH), read-only,
and quiet (a null package's record gains nothing from it)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from builders import make_npm
from osptrack.sandbox import persona_node


def test_pins_are_exact_versions_with_sha512_integrity() -> None:
    pins = persona_node.read_pins()
    assert {p.name for p in pins} >= {"yarn", "pnpm", "typescript"}
    for pin in pins:
        assert pin.version[0].isdigit() and not any(c in pin.version for c in "^~<>*x ")
        assert pin.integrity.startswith("sha512-") and len(base64.b64decode(pin.integrity[7:])) == 64
    assert persona_node.stamp().startswith(".pins-")


def test_bad_pin_line_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "pins.txt"
    bad.write_text("yarn ^1.22 sha1-abc\n")
    with pytest.raises(ValueError, match="not `name@version sha512-...`"):
        persona_node.read_pins(bad)


def test_without_the_prefix_folder_nothing_is_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OSPTRACK_CACHE", str(tmp_path / "empty"))
    home = tmp_path / "home"
    home.mkdir()
    (home / ".npmrc").write_text("//registry.npmjs.org/:_authToken=x\n")
    assert persona_node.binds("/home/alex") == () and persona_node.env("/home/alex", "/usr/bin") == {}
    persona_node.seed_home(home, "/home/alex", -1, -1)
    assert (home / ".npmrc").read_text() == "//registry.npmjs.org/:_authToken=x\n"
    assert not (home / ".npm-global").exists()


def test_with_the_prefix_folder_env_binds_and_npmrc_agree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OSPTRACK_CACHE", str(tmp_path))
    (tmp_path / "persona-node" / "lib" / "node_modules").mkdir(parents=True)
    home = tmp_path / "home"
    home.mkdir()
    (home / ".npmrc").write_text("//registry.npmjs.org/:_authToken=x\n")
    (home / ".profile").write_text("# ~/.profile\n")
    persona_node.seed_home(home, "/home/alex", -1, -1)
    env = persona_node.env("/home/alex", "/usr/bin:/bin")
    assert env == {"PATH": "/home/alex/.npm-global/bin:/usr/bin:/bin",
                   "NODE_PATH": "/home/alex/.npm-global/lib/node_modules"}  # fmt: skip
    assert persona_node.binds("/home/alex") == ((str(tmp_path / "persona-node"), "/home/alex/.npm-global"),)
    npmrc = (home / ".npmrc").read_text().splitlines()
    assert npmrc == ["prefix=/home/alex/.npm-global", "//registry.npmjs.org/:_authToken=x"]
    assert "export PATH=~/.npm-global/bin:$PATH" in (home / ".profile").read_text()
    assert (home / ".npm-global").is_dir()


# What a probe of the machine's Node side reports; harmless: it only reads and tries one write.
PROBE = r"""
const { execSync } = require('child_process');
const fs = require('fs');
const sh = (c) => { try { return execSync(c, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim(); } catch (e) { return 'ERR ' + e.status; } };
let writable = true;
try { fs.writeFileSync(sh('npm root -g') + '/osptrack-probe', 'x'); } catch (e) { writable = e.code; }
let resolved = null;
try { resolved = require.resolve('typescript', { paths: ['/tmp'] }); } catch (e) { resolved = 'ERR ' + e.code; }
console.log('NODEPROBE ' + JSON.stringify({
  root: sh('npm root -g'), prefix: sh('npm prefix -g'), node_path: process.env.NODE_PATH || null,
  path: process.env.PATH, which_yarn: sh('command -v yarn'), yarn: sh('yarn --version'),
  tsc: sh('tsc --version'), pnpm: sh('pnpm --version'), resolved, writable, home: process.env.HOME,
}));
"""


@pytest.mark.sandbox
def test_global_packages_are_there_and_npm_root_g_node_path_and_path_agree(tmp_path: Path) -> None:
    from osptrack.run import AnalyzeOptions, analyze
    from osptrack.target import parse_target

    if persona_node.host_dir() is None:
        pytest.fail("the persona's global npm packages are missing: run scripts/setup.sh")
    tgz = make_npm(tmp_path, "osptrack-node-probe", "1.0.0", {"probe.js": PROBE, "index.js": ""},
                   scripts={"postinstall": "node probe.js"})  # fmt: skip
    out = tmp_path / "run"
    outcome = analyze(parse_target("npm", str(tgz)), AnalyzeOptions(phases=("install",), timeout_s=180), out)
    result = json.loads((out / "result.json").read_text())
    stdout = base64.b64decode(result["Analysis"]["install"]["Stdout"]).decode(errors="replace")
    assert outcome.statuses["install"] == "completed", stdout[-2000:]
    probe = json.loads(next(x for x in stdout.splitlines() if x.startswith("NODEPROBE ")).split(" ", 1)[1])
    home = json.loads((out / "run.json").read_text())["persona"]["home"]
    root = f"{home}/.npm-global/lib/node_modules"
    assert (probe["root"], probe["prefix"], probe["node_path"]) == (root, f"{home}/.npm-global", root), probe
    # npm puts its .bin folders first in a lifecycle script's PATH; the login PATH follows
    assert f":{home}/.npm-global/bin:/usr/local/bin:" in probe["path"], probe["path"]
    assert probe["which_yarn"] == f"{home}/.npm-global/bin/yarn"
    pins = {p.name: p.version for p in persona_node.read_pins()}
    assert probe["yarn"] == pins["yarn"] and probe["pnpm"] == pins["pnpm"]
    assert probe["tsc"] == f"Version {pins['typescript']}"
    assert probe["resolved"] == f"{root}/typescript/lib/typescript.js"  # through NODE_PATH
    assert probe["writable"] in ("EROFS", "EACCES"), probe  # a package cannot change the machine


@pytest.mark.sandbox
def test_null_package_record_gains_nothing_from_the_global_prefix(tmp_path: Path) -> None:
    """The persona's Node side is part of the baseline: a null npm package run names none of it."""
    from osptrack.dataset.baseline import build_null_npm
    from osptrack.run import AnalyzeOptions, analyze
    from osptrack.target import parse_target

    if persona_node.host_dir() is None:
        pytest.fail("the persona's global npm packages are missing: run scripts/setup.sh")
    tgz = build_null_npm(tmp_path)
    out = tmp_path / "run"
    outcome = analyze(parse_target("npm", str(tgz)), AnalyzeOptions(timeout_s=180), out)
    assert set(outcome.statuses.values()) == {"completed"}, outcome.stderr_tails
    assert ".npm-global" not in json.dumps(outcome.notable), outcome.notable
    assert not any(outcome.notable.get(k) for k in ("commands", "dns", "connections")), outcome.notable
