"""Archives are recognised by what they hold: each kind of package, saved under a wrong name, is
still read (and staged under a name its toolchain accepts); only an archive that is none of them
is refused, and the error says what it was."""

from __future__ import annotations

import shutil
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from builders import make_npm, make_sdist, make_wheel
from osptrack.ecosystems import get
from osptrack.ecosystems.archives import identify, list_members
from osptrack.ecosystems.cratesio import pack_crate
from osptrack.ecosystems.packagist import pack_composer_zip
from osptrack.ecosystems.rubygems import gemspec_yaml, pack_gem
from osptrack.errors import BadInput


def _nupkg(dest: Path) -> Path:
    path = dest / "osptrack.nugetkind.1.2.0.nupkg"
    nuspec = (
        '<?xml version="1.0"?><package><metadata><id>Osptrack.NugetKind</id><version>1.2.0</version>'
        "<authors>t</authors><description>t</description></metadata></package>"
    )
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("Osptrack.NugetKind.nuspec", nuspec)
        zf.writestr("[Content_Types].xml", "<Types/>")
    return path


# ecosystem, builder, expected (name, version), kind, the wrong name, the name staged in the sandbox
KINDS: list[tuple[str, Callable[[Path], Path], tuple[str, str], str, str, str]] = [
    (
        "pypi",
        lambda d: make_wheel(d, "kind-wheel", "1.0", {"kind_wheel/__init__.py": ""}),
        ("kind-wheel", "1.0"),
        "wheel",
        "kind_wheel-1.0.zip",
        "kind_wheel-1.0-py3-none-any.whl",
    ),
    (
        "pypi",
        lambda d: make_sdist(d, "kind-sdist", "2.0", "from setuptools import setup\nsetup()\n"),
        ("kind-sdist", "2.0"),
        "sdist",
        "kind-sdist-2.0.whl",
        "kind_sdist-2.0.tar.gz",
    ),
    (
        "npm",
        lambda d: make_npm(d, "@scope/kind-npm", "3.0.0", {"index.js": ""}),
        ("@scope/kind-npm", "3.0.0"),
        "npm",
        "kind-npm-3.0.0.zip",
        "scope-kind-npm-3.0.0.tgz",
    ),
    (
        "rubygems",
        lambda d: pack_gem(
            d, gemspec_yaml("kind-gem", "4.0.0", ["lib/kind-gem.rb"]), {"lib/kind-gem.rb": b""}
        ),
        ("kind-gem", "4.0.0"),
        "gem",
        "kind-gem-4.0.0.tar",
        "kind-gem-4.0.0.gem",
    ),
    (
        "packagist",
        lambda d: pack_composer_zip(
            d, {"name": "osptrack/kind", "version": "5.0.0"}, {"src/A.php": b"<?php\n"}
        ),
        ("osptrack/kind", "5.0.0"),
        "composer",
        "kind-5.0.0.tar.gz",
        "osptrack-kind-5.0.0.zip",
    ),
    (
        "crates.io",
        lambda d: pack_crate(d, "kind-crate", "0.6.0", {"src/lib.rs": b""}),
        ("kind-crate", "0.6.0"),
        "crate",
        "kind-crate-0.6.0.tgz",
        "kind-crate-0.6.0.crate",
    ),
    (
        "nuget",
        _nupkg,
        ("Osptrack.NugetKind", "1.2.0"),
        "nupkg",
        "nugetkind.zip",
        "osptrack.nugetkind.1.2.0.nupkg",
    ),
]


@pytest.mark.parametrize(
    ("eco", "build", "expected", "kind", "wrong", "staged"), KINDS, ids=[k[3] for k in KINDS]
)
def test_misnamed_archive_is_read_by_content(
    tmp_path: Path,
    eco: str,
    build: Callable[[Path], Path],
    expected: tuple[str, str],
    kind: str,
    wrong: str,
    staged: str,
) -> None:
    built = build(tmp_path)
    assert kind in identify(list_members(built))
    misnamed = tmp_path / "misnamed" / wrong
    misnamed.parent.mkdir()
    shutil.copyfile(built, misnamed)
    ecosystem = get(eco)
    meta = ecosystem.read_metadata(misnamed)
    assert (meta.name, meta.version) == expected
    assert ecosystem.staged_name(misnamed, meta) == staged
    assert ecosystem.staged_name(built, meta) == built.name  # a right name is kept as it is


@pytest.mark.parametrize(
    ("eco", "other", "found"),
    [
        ("pypi", 2, "an npm tarball; analyse it as npm"),
        ("npm", 0, "a Python wheel; analyse it as pypi"),
        ("rubygems", 4, "a Composer zip; analyse it as packagist"),
        ("packagist", 3, "a RubyGems gem; analyse it as rubygems"),
        ("crates.io", 6, "a NuGet package; analyse it as nuget"),
        ("nuget", 5, "a crate; analyse it as crates.io"),
    ],
)
def test_another_ecosystems_package_is_named_in_the_error(
    tmp_path: Path, eco: str, other: int, found: str
) -> None:
    archive = KINDS[other][1](tmp_path)
    with pytest.raises(BadInput) as err:
        get(eco).read_metadata(archive)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{archive.name}: not ")
    assert message.endswith(f"it is {found}")


def test_archive_that_is_no_package_says_what_it_holds(tmp_path: Path) -> None:
    path = tmp_path / "thing.whl"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("notes/readme.txt", "hi")
        zf.writestr("data.bin", "x")
    with pytest.raises(
        BadInput,
        match=r"thing\.whl: not a Python package .*: it is a zip archive of 2 files \(data\.bin, notes/readme\.txt\)$",
    ):
        get("pypi").read_metadata(path)
    plain = tmp_path / "plain.tgz"
    plain.write_bytes(b"just text, no archive at all\n" * 40)
    with pytest.raises(BadInput, match="plain.tgz: not a readable archive|plain.tgz: not an archive"):
        get("npm").read_metadata(plain)


def test_uncompressed_npm_tarball_keeps_a_tar_suffix(tmp_path: Path) -> None:
    gz = make_npm(tmp_path, "plain-tar", "1.0.0", {"index.js": ""})
    bare = tmp_path / "plain-tar.bin"
    with tarfile.open(gz) as src, tarfile.open(bare, "w") as out:
        for member in src.getmembers():
            out.addfile(member, src.extractfile(member))
    eco = get("npm")
    assert eco.staged_name(bare, eco.read_metadata(bare)) == "plain-tar-1.0.0.tar"


def test_wheel_named_zip_installs_and_imports_in_the_sandbox(tmp_path: Path) -> None:
    """End to end: pip would take `x.zip` for an sdist and fail; staged as a .whl it installs."""
    import json

    from osptrack.run import AnalyzeOptions, analyze
    from osptrack.target import parse_target

    wheel = make_wheel(
        tmp_path, "zipped-wheel", "1.0", {"zipped_wheel/__init__.py": "import os\nos.getcwd()\n"}
    )
    misnamed = tmp_path / "zipped-wheel.zip"
    wheel.rename(misnamed)
    out = tmp_path / "run"
    outcome = analyze(parse_target("pypi", str(misnamed)), AnalyzeOptions(timeout_s=120), out)
    assert outcome.statuses == {"install": "completed", "import": "completed"}
    run = json.loads((out / "run.json").read_text())
    assert run["package"]["archive"] == "zipped-wheel.zip"  # the record keeps the name it was given
    assert (outcome.ref.name, outcome.ref.version) == ("zipped-wheel", "1.0")
