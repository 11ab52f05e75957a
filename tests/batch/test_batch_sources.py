"""TARGETS readers (CSV, corpus manifest, labels parquet, collection layouts) and private staging."""

from __future__ import annotations

import io
import json
import stat
import tarfile
import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from collections_builder import (
    backstabber_collection,
    datadog_collection,
    encrypted_zip,
    malregistry_collection,
    npm_tgz,
)

from osptrack.batch.model import DATADOG_ZIP, PLAIN
from osptrack.batch.sources import load_targets
from osptrack.batch.staging import StagingError, stage_archive
from osptrack.errors import BadInput
from osptrack.labels.table import labels_table
from shared_data import SHARED, needs


def keys(listed):  # type: ignore[no-untyped-def]
    return sorted(t.key for t in listed.targets)


def test_csv_with_header_relative_archive_and_duplicates(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x-1.0.0.tgz").write_bytes(npm_tgz("x", "1.0.0"))
    csv_path = tmp_path / "targets.csv"
    csv_path.write_text(
        "ecosystem,name,version,archive\n"
        "npm,x,1.0.0,a/x-1.0.0.tgz\n"
        "PyPI,Foo_Bar,1.0,\n"
        "pypi,foo.bar,1.0\n"  # same coordinate once normalised (PEP 503): dropped as a duplicate
    )
    listed = load_targets(csv_path)
    assert keys(listed) == [("npm", "x", "1.0.0"), ("pypi", "foo-bar", "1.0")]
    x = next(t for t in listed.targets if t.name == "x")
    assert x.archive == str((tmp_path / "a" / "x-1.0.0.tgz").resolve())
    assert any("duplicate" in s for s in listed.skipped)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("npm,x\n", "targets.csv:1: expected ecosystem,name,version"),
        ("cobol,x,1.0\n", "targets.csv:1: unknown ecosystem"),
        ("npm,x,1.0.0,missing.tgz\n", "targets.csv:1: archive not found"),
        ("npm,../../etc,1.0.0\n", "targets.csv:1: invalid npm package name"),
        ("npm,x,../1\n", "targets.csv:1: invalid version"),
    ],
)
def test_csv_bad_rows_name_the_line(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "targets.csv"
    path.write_text(body)
    with pytest.raises(BadInput, match=message.replace(".", r"\.")):
        load_targets(path)


@needs(SHARED / "corpus" / "manifest.json")
def test_corpus_manifest_gives_each_package_its_own_deps_and_build_tools() -> None:
    manifest = SHARED / "corpus" / "manifest.json"
    listed = load_targets(manifest)
    data = json.loads(manifest.read_text())
    assert len(listed.targets) == len(data["packages"])
    by_name = {t.name: t for t in listed.targets}
    requests = by_name["requests"]
    assert Path(requests.archive).is_file()
    build = str((SHARED / "corpus" / "pypi" / "_build").resolve())
    assert str(Path(requests.archive).parent) in requests.deps_dirs
    assert build in requests.deps_dirs
    assert build not in by_name["chalk"].deps_dirs  # npm needs no Python build tools


def test_datadog_layout_lists_coordinates_without_decrypting(tmp_path: Path) -> None:
    datadog_collection(tmp_path / "dd")
    listed = load_targets(tmp_path / "dd")
    assert keys(listed) == [
        ("npm", "@evil/pkg", "1.0.0"),
        ("npm", "tgz-only", "2.0.0"),
        ("pypi", "bad-py", "0.1"),
    ]
    assert {t.packing for t in listed.targets} == {DATADOG_ZIP}
    # Listing must not have unpacked anything beside the collection.
    assert not [p for p in (tmp_path / "dd").rglob("*") if p.is_file() and p.suffix not in (".zip", ".json")]


def test_backstabber_and_malregistry_layouts(tmp_path: Path) -> None:
    backstabber_collection(tmp_path / "bkc")
    listed = load_targets(tmp_path / "bkc")
    assert keys(listed) == [("npm", "bk-one", "1.0.0"), ("pypi", "bk-two", "2.0")]
    assert {t.packing for t in listed.targets} == {PLAIN}

    malregistry_collection(tmp_path / "mr")
    listed = load_targets(tmp_path / "mr")
    assert keys(listed) == [("pypi", "mal-one", "0.0.1"), ("pypi", "mal-two", "1.0")]
    assert any("odd name-1" in s for s in listed.skipped)  # reported, not fatal


def _labels(path: Path, rows: list[dict[str, object]]) -> Path:
    pq.write_table(labels_table([{"id": "MAL-1", "source": "osv", **r} for r in rows]), path)
    return path


def test_labels_parquet_replays_malicious_coordinates_that_have_archives(tmp_path: Path) -> None:
    backstabber_collection(tmp_path / "bkc")
    labels = _labels(
        tmp_path / "labels.parquet",
        [
            {"ecosystem": "npm", "name": "bk-one", "versions": [], "all_versions": True, "withdrawn": False},
            {
                "ecosystem": "pypi",
                "name": "bk-two",
                "versions": ["2.0"],
                "all_versions": False,
                "withdrawn": True,
            },
            {
                "ecosystem": "npm",
                "name": "no-archive",
                "versions": ["1.0.0"],
                "all_versions": False,
                "withdrawn": False,
            },
        ],
    )
    listed = load_targets(labels, archives=tmp_path / "bkc")
    assert keys(listed) == [("npm", "bk-one", "1.0.0")]  # withdrawn never counts; no archive, no replay
    with pytest.raises(BadInput, match="--archives"):
        load_targets(labels)


def test_stage_decrypts_only_into_a_private_folder_and_repacks(tmp_path: Path) -> None:
    datadog_collection(tmp_path / "dd")
    listed = {t.name: t for t in load_targets(tmp_path / "dd").targets}

    stage = tmp_path / "attempt" / "stage"
    stage.parent.mkdir()
    archive = stage_archive(listed["@evil/pkg"], stage)
    assert archive is not None and archive.parent == stage
    assert stat.S_IMODE(stage.stat().st_mode) == 0o700
    with tarfile.open(archive) as tf:
        manifest = json.load(tf.extractfile("package/package.json"))  # type: ignore[arg-type]
    assert manifest["name"] == "@evil/pkg"
    unpacked = [p for p in stage.rglob("*") if p.is_file()]
    assert all(not (p.stat().st_mode & 0o111) for p in unpacked)  # nothing made executable

    stage2 = tmp_path / "attempt" / "stage2"
    sdist = stage_archive(listed["bad-py"], stage2)  # the ZipCrypto one
    assert sdist is not None and sdist.name == "bad-py-0.1.tar.gz"
    with tarfile.open(sdist) as tf:
        assert "bad-py-0.1/setup.py" in tf.getnames()

    stage3 = tmp_path / "attempt" / "stage3"
    tgz = stage_archive(listed["tgz-only"], stage3)
    assert tgz is not None and tgz.read_bytes() == npm_tgz("tgz-only", "2.0.0")  # used as published


@pytest.mark.parametrize("member", ["../escape.txt", "/abs.txt", "a/../../escape.txt"])
def test_stage_rejects_path_traversal(tmp_path: Path, member: str) -> None:
    samples = tmp_path / "dd" / "samples" / "npm" / "malicious_intent" / "x" / "1.0.0"
    encrypted_zip(samples / "2024-01-01-x-v1.0.0.zip", {member: b"boom"})
    target = load_targets(tmp_path / "dd").targets[0]
    (tmp_path / "attempt").mkdir()
    with pytest.raises(StagingError, match="unsafe path"):
        stage_archive(target, tmp_path / "attempt" / "stage")
    assert not (tmp_path / "escape.txt").exists() and not Path("/abs.txt").exists()


def test_stage_rejects_wrong_password_and_symlinks(tmp_path: Path) -> None:
    folder = tmp_path / "dd" / "samples" / "npm" / "malicious_intent" / "x" / "1.0.0"
    folder.mkdir(parents=True)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo("package/link")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    (folder / "2024-01-01-x-v1.0.0.zip").write_bytes(buf.getvalue())
    target = load_targets(tmp_path / "dd").targets[0]
    (tmp_path / "attempt").mkdir()
    with pytest.raises(StagingError, match="not a regular file"):
        stage_archive(target, tmp_path / "attempt" / "stage")


def test_labels_parquet_with_datadog_archives_and_an_archive_column(tmp_path: Path) -> None:
    datadog_collection(tmp_path / "dd")
    labels = _labels(
        tmp_path / "labels.parquet",
        [
            {
                "ecosystem": "npm",
                "name": "@evil/pkg",
                "versions": ["1.0.0"],
                "all_versions": False,
                "withdrawn": False,
            },
            {
                "ecosystem": "npm",
                "name": "tgz-only",
                "versions": ["9.9.9"],
                "all_versions": False,
                "withdrawn": False,
            },
        ],
    )
    listed = load_targets(labels, archives=tmp_path / "dd")
    assert keys(listed) == [("npm", "@evil/pkg", "1.0.0")]  # tgz-only 2.0.0 is not a labelled version
    assert listed.targets[0].packing == DATADOG_ZIP

    (tmp_path / "x-1.0.0.tgz").write_bytes(npm_tgz("x", "1.0.0"))
    with_column = tmp_path / "with-archive.parquet"
    rows = [{"ecosystem": "npm", "name": "x", "versions": ["1.0.0"], "all_versions": False, "withdrawn": False,
             "archive": "x-1.0.0.tgz", "id": "MAL-2"}]  # fmt: skip
    pq.write_table(pa.Table.from_pylist(rows), with_column)
    listed = load_targets(with_column)
    assert keys(listed) == [("npm", "x", "1.0.0")]
    assert listed.targets[0].archive == str(tmp_path / "x-1.0.0.tgz")
