"""Name and version come from archive metadata alone; junk archives are bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from builders import make_npm, make_sdist, make_wheel, suspicious_sdist
from osptrack import ecosystems
from osptrack.errors import BadInput
from shared_data import CORPUS, CORPUS_MANIFEST, needs


def test_sdist_metadata_is_read_without_running_setup(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    archive = make_sdist(tmp_path, "Marker-Pkg", "2.0", f"open({str(marker)!r}, 'w').write('x')\n")
    meta = ecosystems.get("pypi").read_metadata(archive)
    assert (meta.name, meta.version) == ("Marker-Pkg", "2.0")
    assert not marker.exists()


def test_wheel_and_npm_metadata(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "demo-pkg", "0.3.1", {"demo_pkg/__init__.py": ""})
    assert ecosystems.get("pypi").read_metadata(wheel).version == "0.3.1"
    tgz = make_npm(tmp_path, "@scope/demo", "1.2.3", {"index.js": ""})
    meta = ecosystems.get("npm").read_metadata(tgz)
    assert (meta.name, meta.version) == ("@scope/demo", "1.2.3")


@pytest.mark.parametrize("content", [b"", b"\x1f\x8b\x08garbage", b"PK\x03\x04broken"])
def test_corrupt_archives_are_bad_input(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "x-1.0.tar.gz"
    path.write_bytes(content)
    with pytest.raises(BadInput):
        ecosystems.get("pypi").read_metadata(path)


def test_npm_manifest_with_hostile_name(tmp_path: Path) -> None:
    bad = make_npm(tmp_path, "$(id);rm", "1.0.0", {"index.js": ""})
    with pytest.raises(BadInput, match="invalid npm package name"):
        ecosystems.get("npm").read_metadata(bad)


def test_find_archive_in_deps_dirs(tmp_path: Path) -> None:
    suspicious_sdist(tmp_path, "finder", "1.0")
    make_wheel(tmp_path, "finder", "1.0", {"finder.py": ""})
    make_wheel(tmp_path, "finder", "0.9", {"finder.py": ""})
    pypi = ecosystems.get("pypi")
    assert pypi.find_archive("Finder", "1.0", (tmp_path,)).name.endswith(".whl")  # wheels first, like pip
    assert "0.9" in pypi.find_archive("finder", "0.9", (tmp_path,)).name
    assert pypi.find_archive("finder", None, (tmp_path,)).name == "finder-1.0-py3-none-any.whl"
    assert pypi.find_archive("absent", None, (tmp_path,)) is None


@needs(CORPUS_MANIFEST)
def test_corpus_metadata_matches_manifest() -> None:
    manifest = json.loads((CORPUS / "manifest.json").read_text())
    for entry in manifest["packages"]:
        meta = ecosystems.get(entry["ecosystem"]).read_metadata(CORPUS / entry["archive"])
        assert meta.version == entry["version"], entry["archive"]
