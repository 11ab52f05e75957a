from __future__ import annotations

from pathlib import Path

import pytest

from osptrack.errors import BadInput
from osptrack.target import normalise_ecosystem, normalise_name, normalise_version, parse_target


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("PyPI", "pypi"),
        ("crates-io", "crates.io"),
        ("crates.io", "crates.io"),
        ("RubyGems", "rubygems"),
        ("NuGet", "nuget"),
        ("Packagist", "packagist"),
        ("npm", "npm"),
    ],
)
def test_ecosystem_spellings(given: str, expected: str) -> None:
    assert normalise_ecosystem(given) == expected


def test_unknown_ecosystem_is_bad_input() -> None:
    with pytest.raises(BadInput, match="unknown ecosystem"):
        normalise_ecosystem("maven-central-ish")


@pytest.mark.parametrize(
    ("eco", "name", "expected"),
    [
        ("pypi", "Foo.Bar_baz", "foo-bar-baz"),
        ("npm", "@Scope/Pkg", "@scope/pkg"),
        ("crates.io", "Serde_JSON", "serde-json"),
        ("nuget", "Newtonsoft.Json", "newtonsoft.json"),
    ],
)
def test_name_normalisation(eco: str, name: str, expected: str) -> None:
    assert normalise_name(eco, name) == expected


def test_version_normalisation() -> None:
    assert normalise_version("pypi", "1.0.0-RC1") == "1.0.0rc1"
    assert normalise_version("npm", "v1.2.3") == "1.2.3"


@pytest.mark.parametrize(
    ("eco", "spec", "name", "version"),
    [
        ("pypi", "requests==2.32.3", "requests", "2.32.3"),
        ("npm", "@types/node@20.1.0", "@types/node", "20.1.0"),
        ("npm", "left-pad@1.3.0", "left-pad", "1.3.0"),
        ("pypi", "pkg:pypi/six@1.16.0", "six", "1.16.0"),
        ("npm", "pkg:npm/%40babel/core@7.0.0", "@babel/core", "7.0.0"),
        ("pypi", "six", "six", None),
    ],
)
def test_spec_parsing(eco: str, spec: str, name: str, version: str | None) -> None:
    ref = parse_target(eco, spec)
    assert (ref.name, ref.version, ref.archive) == (name, version, None)


@pytest.mark.parametrize(
    "spec", ["bad name==1.0", "x==1.0;rm -rf /", "x==../../etc", "x==1.0\nfoo", "$(id)==1"]
)
def test_hostile_specs_are_rejected(spec: str) -> None:
    with pytest.raises(BadInput):
        parse_target("pypi", spec)


def test_archive_path(tmp_path: Path) -> None:
    archive = tmp_path / "x-1.0.tar.gz"
    archive.write_bytes(b"not really")
    assert parse_target("pypi", str(archive)).archive == archive.resolve()
    with pytest.raises(BadInput, match="archive not found"):
        parse_target("pypi", str(tmp_path / "missing-1.0.tar.gz"))
