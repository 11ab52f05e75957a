"""registry/local.py's file-name parser without packaging.utils gives what packaging gives, or
leaves the name to packaging: over real corpus names, built names and malformed ones."""

from __future__ import annotations

import itertools
from pathlib import Path

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion

from osptrack.registry.local import plain_name_version, pypi_name_version

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus" / "pypi"


def _packaging(filename: str) -> tuple[str, str] | None:
    try:
        if filename.endswith(".whl"):
            name, ver, _, _ = parse_wheel_filename(filename)
        else:
            name, ver = parse_sdist_filename(filename)
    except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
        return None
    return str(name), str(ver)


NAMES = ["six", "Six", "zope.interface", "typing_extensions", "a__b", "_x", "名前", "a-b", "", "x y", " six"]
VERSIONS = ["1.16.0", "1.0.post1", "2!1.0", "1.0-1", "v1.0", "1.0rc1", "latest", "", "1.0.0.dev0+local.7"]
TAGS = [
    "py3-none-any", "py2.py3-none-any", "cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64",
    "3py-none-any", "py3-none", "py3--any", "py3.-none-any", "py3-none-any-x", "py3-none-any.",
]  # fmt: skip
BUILDS = ["", "-1", "-1a", "-a1", "-"]


def _filenames() -> list[str]:
    names = []
    for name, ver, tag, build in itertools.product(NAMES, VERSIONS, TAGS, BUILDS):
        names.append(f"{name}-{ver}{build}-{tag}.whl")
    for name, ver in itertools.product(NAMES, VERSIONS):
        names += [f"{name}-{ver}.tar.gz", f"{name}-{ver}.zip", f"{name}-{ver}.zip.tar.gz"]
    names += ["six.whl", "six-1.0.tar.bz2", "six-1.0.egg", "-1.0.tar.gz", "six-.tar.gz"]
    if CORPUS.is_dir():
        names += [p.name for p in CORPUS.rglob("*") if p.is_file()]
    return names


def test_the_fast_path_agrees_with_packaging_or_defers() -> None:
    taken = 0
    for filename in _filenames():
        fast = plain_name_version(filename)
        if fast is not None:
            taken += 1
            assert fast == _packaging(filename), filename
        if not filename.endswith(".tar.bz2"):
            assert pypi_name_version(filename) == _packaging(filename), filename
    assert taken > 500  # the fast path is the common one, not a path that always defers


def test_every_plain_wheel_and_sdist_takes_the_fast_path() -> None:
    for filename in (
        "six-1.16.0-py2.py3-none-any.whl",
        "docopt-0.6.2.tar.gz",
        "Foo_Bar-2.0-1-cp311-abi3-linux_x86_64.whl",
    ):
        assert plain_name_version(filename) is not None, filename


def test_the_pypi_ecosystems_file_name_fallback_agrees_with_packaging() -> None:
    # ecosystems/pypi.py names a misnamed or metadata-less archive by its file name the same way
    from osptrack.ecosystems.pypi import PyPI

    for filename in _filenames():
        got = PyPI._from_filename(Path(filename))
        want = _packaging(filename)
        assert (None if got is None else (got.name, got.version)) == want, filename
