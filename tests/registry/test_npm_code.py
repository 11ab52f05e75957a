"""Whether npm installing a closure can run package code (registry/npm_code.py), and what the
install phase then traces: its probes only when some package's code can run there."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from builders import _add, make_npm, require_toolchain, targz_writer
from osptrack.errors import BadInput
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


def _top(name: str) -> bool:
    return name.count("/") == 1 and name.endswith("/package.json")  # Npm.read_metadata's member


def _crafted(tmp_path: Path) -> dict[str, Path]:
    """Tarballs that a one-walk reader could get wrong: the manifest first or last, bundled and
    oversized manifests before it, a link where it should be, two of them, none, a cap, broken
    archives (damaged gzip, a corrupt header, a truncated stream, a zip, not an archive)."""
    import io
    import tarfile
    import zipfile

    from osptrack.ecosystems import archives

    big = b"{" + b" " * (archives.MAX_MEMBER_BYTES + 1) + b"}"
    plain = manifest().encode()
    out: dict[str, Path] = {}

    def tgz(name: str, members: list[tuple[str, bytes | None]]) -> None:
        path = out[name] = tmp_path / f"{name}.tgz"
        with targz_writer(path) as tf:
            for member, data in members:
                if data is None:  # a symlink in its place
                    link = tarfile.TarInfo(member)
                    link.type, link.linkname = tarfile.SYMTYPE, "elsewhere.json"
                    tf.addfile(link)
                else:
                    _add(tf, member, data)

    tgz("first", [("package/package.json", plain), ("package/index.js", b"x")])
    tgz("last", [("package/index.js", b"x"), ("package/binding.gyp", b"{}"), ("package/package.json", plain)])
    tgz("bundled-first", [("package/node_modules/b/package.json", manifest(scripts={"install": "x"}).encode()),
                          ("package/package.json", plain)])  # fmt: skip
    tgz("oversized-nested", [("package/node_modules/b/package.json", big), ("package/package.json", plain)])
    tgz("oversized-top", [("package/package.json", big)])
    tgz("link-then-file", [("package/package.json", None), ("package/package.json", plain)])
    tgz(
        "twice",
        [("package/package.json", plain), ("package/package.json", manifest(version="2.0.0").encode())],
    )
    tgz("none", [("package/index.js", b"x"), ("other/deep/package.json", plain)])
    tgz("many", [*((f"package/{i}.js", b"") for i in range(25)), ("package/package.json", plain)])
    data = out["last"].read_bytes()
    (tmp_path / "cut.tgz").write_bytes(data[: len(data) // 2])
    out["cut"] = tmp_path / "cut.tgz"
    (tmp_path / "damaged.tgz").write_bytes(data[:30] + bytes(b ^ 0x55 for b in data[30:60]) + data[60:])
    out["damaged"] = tmp_path / "damaged.tgz"
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tf:
        for member, body in [("package/a.js", b"x"), ("package/b.js", b"y"), ("package/package.json", plain)]:
            _add(tf, member, body)
    header = bytearray(raw.getvalue())
    header[1024 + 148 : 1024 + 156] = b"0000000\0"  # the second header's checksum: wrong
    (tmp_path / "badsum.tar").write_bytes(bytes(header))
    out["badsum"] = tmp_path / "badsum.tar"
    (tmp_path / "short.tar").write_bytes(raw.getvalue()[:1500])
    out["short"] = tmp_path / "short.tar"
    with zipfile.ZipFile(tmp_path / "zipped.tgz", "w") as zf:
        zf.writestr("package/package.json", plain)
    out["zipped"] = tmp_path / "zipped.tgz"
    (tmp_path / "junk.tgz").write_bytes(b"\x1f\x8bnot really gzip")
    out["junk"] = tmp_path / "junk.tgz"
    return out


def _outcome(read: Any, path: Path) -> Any:
    try:
        return ("found", read(path, _top))
    except BadInput as exc:
        return ("error", str(exc))


def test_the_manifest_read_with_the_scan_is_read_member_s_on_crafted_tarballs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """top_manifest answers what read_member answers (member and bytes, or the same one-line
    error), and leaves behind the scan a fresh scan of the file gives, for each crafted tarball."""
    from osptrack.ecosystems import archives

    monkeypatch.setattr(archives, "MAX_MEMBERS_SCANNED", 20)  # "many" passes the cap
    for name, path in _crafted(tmp_path).items():
        npm_code._memo.clear()
        expected = _outcome(archives.read_member, path)
        assert _outcome(npm_code.top_manifest, path) == expected, name
        remembered = npm_code.scan(path)
        npm_code._memo.clear()
        assert remembered == npm_code.scan(path), name


def test_a_run_walks_its_npm_target_once_for_the_manifest_and_the_scan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Npm.read_metadata (resolve) and then the scan of the staged hard link (the install's
    probes) share one walk of the tarball; a copy, another file, is scanned anew."""
    import os

    from osptrack.ecosystems.npm import Npm

    path = tarball(tmp_path / "x.tgz", {"package/index.js": "", "package/package.json": manifest()})
    walks: list[Path] = []
    walk = npm_code.tar_members

    def counted(archive: Path, want: Any) -> Any:
        walks.append(archive)
        return walk(archive, want)

    npm_code._memo.clear()
    monkeypatch.setattr(npm_code, "tar_members", counted)
    assert Npm().read_metadata(path).name == "osptrack-x"
    staged = tmp_path / "staged.tgz"
    os.link(path, staged)
    assert npm_code.scan(staged) == (None, ())
    assert walks == [path]
    copy = tmp_path / "copy.tgz"
    copy.write_bytes(path.read_bytes())
    assert npm_code.scan(copy) == (None, ())
    assert walks == [path, copy]
