"""Whether npm installing a closure can run package code (registry/npm_code.py), and what the
install phase then traces: its probes only when some package's code can run there."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from builders import _add, make_npm, require_toolchain, targz_writer
from osptrack.registry import npm_code
from osptrack.registry.service import RegistryConfig, RegistryService


def service(tmp_path: Path, deps: tuple[Path, ...], online: bool = False) -> RegistryService:
    return RegistryService("npm", deps, online, RegistryConfig(cache_root=tmp_path / "cache"))


def tarball(path: Path, members: dict[str, str]) -> Path:
    with targz_writer(path) as tf:
        for name, text in members.items():
            _add(tf, name, text.encode())
    return path


def manifest(**fields: object) -> str:
    return json.dumps({"name": "osptrack-x", "version": "1.0.0", **fields})


def test_a_plain_tarball_runs_nothing_and_lists_its_dependency_names(tmp_path: Path) -> None:
    deps = {"a": "^1.0.0", "B": "~2", "c": "latest", "d": "", "e": "1.x || >=3 <4"}
    path = tarball(tmp_path / "x.tgz", {"package/package.json": manifest(dependencies=deps,
                   optionalDependencies={"f": "*"}, peerDependencies={"g": ">=1"},
                   devDependencies={"git-only": "github:u/r"})})  # fmt: skip
    why, names = npm_code.scan(path)
    assert why is None
    assert sorted(names) == ["a", "b", "c", "d", "e", "f", "g"]  # devDependencies are not installed


@pytest.mark.parametrize(
    "members, reason",
    [
        ({"package/package.json": manifest(scripts={"postinstall": "node x.js"})}, "scripts.postinstall"),
        ({"package/package.json": manifest(scripts={"preinstall": "x"})}, "scripts.preinstall"),
        ({"package/package.json": manifest(scripts={"install": "x"})}, "scripts.install"),
        ({"package/package.json": manifest(scripts={"prepare": "x"})}, "scripts.prepare"),
        ({"package/package.json": manifest(), "package/binding.gyp": "{}"}, "node-gyp"),
        ({"package/package.json": manifest(), "package/src/deep/binding.gyp": "{}"}, "node-gyp"),
        ({"package/package.json": manifest(gypfile=True)}, "gypfile"),
        # a bundled dependency's own install script runs too
        (
            {
                "package/package.json": manifest(),
                "package/node_modules/b/package.json": manifest(scripts={"install": "x"}),
            },
            "node_modules/b",
        ),  # fmt: skip
        (
            {"package/package.json": manifest(dependencies={"d": "git+https://e.example/d.git"})},
            "registry range",
        ),
        ({"package/package.json": manifest(dependencies={"d": "github:user/d"})}, "registry range"),
        ({"package/package.json": manifest(dependencies={"d": "user/d"})}, "registry range"),
        ({"package/package.json": manifest(dependencies={"d": "file:../d"})}, "registry range"),
        ({"package/package.json": manifest(dependencies={"d": "https://e.example/d.tgz"})}, "registry range"),
        ({"package/package.json": manifest(dependencies={"d": 1})}, "registry range"),
        ({"package/package.json": manifest(dependencies=["d"])}, "not an object"),
        ({"package/package.json": manifest(scripts="postinstall")}, "not an object"),
        ({"package/package.json": "{not json"}, "not JSON"),
        ({"package/index.js": ""}, "no package.json"),
    ],
)
def test_what_counts_as_code(tmp_path: Path, members: dict[str, str], reason: str) -> None:
    why, _ = npm_code.scan(tarball(tmp_path / "x.tgz", members))
    assert why is not None and reason in why, why


def test_a_manifest_that_is_a_link_counts_as_code(tmp_path: Path) -> None:
    import tarfile

    path = tmp_path / "x.tgz"
    with targz_writer(path) as tf:
        _add(tf, "package/package.json", manifest().encode())
        _add(tf, "package/scripted.json", manifest(scripts={"postinstall": "x"}).encode())
        link = tarfile.TarInfo("package/node_modules/b/package.json")
        link.type, link.linkname = tarfile.LNKTYPE, "package/scripted.json"
        tf.addfile(link)
    why, _ = npm_code.scan(path)
    assert why is not None and "not a regular file" in why, why


def test_every_manifest_s_dependencies_are_walked(tmp_path: Path) -> None:
    """A bundled dependency's own dependencies, and a duplicate top manifest (extraction keeps
    the last), name packages npm may fetch."""
    path = tarball(tmp_path / "x.tgz", {
        "package/package.json": manifest(dependencies={"a": "1"}),
        "package/node_modules/b/package.json": manifest(dependencies={"c": "^2"}),
    })  # fmt: skip
    assert sorted(npm_code.scan(path)[1]) == ["a", "c"]
    twice = tmp_path / "twice.tgz"
    with targz_writer(twice) as tf:
        _add(tf, "package/package.json", manifest(dependencies={"a": "1"}).encode())
        _add(tf, "package/package.json", manifest(dependencies={"d": "1"}).encode())
    assert sorted(npm_code.scan(twice)[1]) == ["a", "d"]


def test_a_file_that_is_no_tarball_counts_as_code(tmp_path: Path) -> None:
    junk = tmp_path / "x.tgz"
    junk.write_bytes(b"\x1f\x8bnot really gzip")
    assert npm_code.scan(junk)[0] is not None
    assert npm_code.scan(tmp_path / "missing.tgz")[0] is not None


def test_too_many_members_counts_as_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from osptrack.ecosystems import archives

    monkeypatch.setattr(archives, "MAX_MEMBERS_SCANNED", 3)
    members = {"package/package.json": manifest(), **{f"package/{i}.js": "" for i in range(3)}}
    why, _ = npm_code.scan(tarball(tmp_path / "x.tgz", members))
    assert why is not None and "members" in why


def test_an_alias_is_followed_to_the_name_it_installs(tmp_path: Path) -> None:
    path = tarball(tmp_path / "x.tgz", {"package/package.json": manifest(
        dependencies={"local": "npm:@scope/Real@^1.0.0", "plain": "npm:other"})})  # fmt: skip
    assert sorted(npm_code.scan(path)[1]) == ["@scope/real", "other"]


def test_the_closure_is_walked_by_name_through_every_served_version(tmp_path: Path) -> None:
    deps = tmp_path / "deps"
    deps.mkdir()
    make_npm(deps, "osptrack-mid", "1.0.0", {"index.js": ""}, extra={"dependencies": {"osptrack-leaf": "^1"}})
    make_npm(deps, "osptrack-leaf", "1.0.0", {"index.js": ""})
    make_npm(deps, "osptrack-unrelated", "1.0.0", {"index.js": ""}, scripts={"postinstall": "node -e 1"})
    top = make_npm(
        tmp_path, "osptrack-top", "1.0.0", {"index.js": ""}, extra={"dependencies": {"osptrack-mid": "1"}}
    )
    assert service(tmp_path, (deps,)).npm_install_code(top, "osptrack-top") is None  # unreachable scripts
    # any served version of a reachable name may be chosen: one with a script is enough
    make_npm(deps, "osptrack-leaf", "2.0.0", {"index.js": ""}, scripts={"install": "node -e 1"})
    why = service(tmp_path, (deps,)).npm_install_code(top, "osptrack-top")
    assert why is not None and "scripts.install" in why
    # by name (no archive): the served versions of the package itself are the roots
    assert service(tmp_path, (deps,)).npm_install_code(None, "osptrack-unrelated") is not None
    assert service(tmp_path, (deps,)).npm_install_code(None, "osptrack-mid") is not None  # via leaf 2.0.0


def test_online_or_another_ecosystem_is_never_judged_free_of_code(tmp_path: Path) -> None:
    top = make_npm(tmp_path, "osptrack-top", "1.0.0", {"index.js": ""})
    assert service(tmp_path, ()).npm_install_code(top, "osptrack-top") is None
    assert service(tmp_path, (), online=True).npm_install_code(top, "osptrack-top") is not None
    pypi = RegistryService("pypi", (), False, RegistryConfig(cache_root=tmp_path / "cache"))
    assert pypi.npm_install_code(top, "osptrack-top") is not None


def test_npm_probes_are_left_out_only_of_an_install_that_can_run_no_package_code() -> None:
    from osptrack.ecosystems.base import Layout
    from osptrack.ecosystems.npm import Npm

    layout = Layout("x", "1.0.0", "/input/pkg/x-1.0.0.tgz", ())
    npm = Npm()
    assert not npm.probes_needed("install", layout, True)
    assert npm.probes_needed("install", layout, False)
    assert npm.probes_needed("import", layout, True) and npm.probes_needed("execute", layout, True)


@pytest.mark.sandbox
def test_an_npm_install_traces_probes_exactly_when_a_script_can_run(tmp_path: Path) -> None:
    """Through analyze(): a script-free closure's install phase goes without probes (and npm's
    records are the same); a dependency's postinstall turns them on, and what it looks for is seen."""
    require_toolchain("npm")
    from osptrack.run import AnalyzeOptions, analyze
    from osptrack.target import parse_target

    deps = tmp_path / "deps"
    deps.mkdir()
    home = "require('os').homedir()"
    probe = f"const fs = require('fs'); fs.existsSync({home} + '/.aws/credentials'); fs.existsSync({home} + '/.ssh/id_rsa');\n"
    make_npm(
        deps,
        "osptrack-check",
        "1.0.0",
        {"check.js": probe, "index.js": ""},
        scripts={"postinstall": "node check.js"},
    )
    make_npm(deps, "osptrack-quiet", "1.0.0", {"index.js": ""})
    config = RegistryConfig(cache_root=tmp_path / "cache")

    def install(name: str, dep: str) -> tuple[dict, list[dict]]:
        top = make_npm(tmp_path, name, "1.0.0", {"index.js": ""}, extra={"dependencies": {dep: "^1.0.0"}})
        out = tmp_path / f"run-{name}"
        options = AnalyzeOptions(timeout_s=180, deps_dirs=(deps,), phases=("install",), registry=config)
        outcome = analyze(parse_target("npm", str(top)), options, out)
        assert outcome.statuses == {"install": "completed"}
        info = json.loads((out / "run.json").read_text())["phases"]["install"]
        return info, [json.loads(x) for x in (out / "events.jsonl").read_text().splitlines()]

    info, events = install("osptrack-top-quiet", "osptrack-quiet")
    assert info["probes_traced"] is False and "probes_missed_by" not in info, info
    assert any(e.get("path", "").endswith("/node_modules/osptrack-quiet/package.json") for e in events)
    info, events = install("osptrack-top-check", "osptrack-check")
    assert info["probes_traced"] is True, info
    probes = {e["probe"] for e in events if e.get("probe") and e.get("op") in ("stat", "access")}
    assert {"cloud", "ssh"} <= probes, sorted(probes)
