"""Reading OSV from folders, GitHub zips and tarballs; bad input; row semantics; IOC table."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest
from labels_fixtures import GHSA_TEMPLATE, all_versions_range, make_record

from osptrack.errors import BadInput
from osptrack.labels.build import build_labels
from osptrack.labels.table import LABEL_SCHEMA, iocs_path_for

FORMATS_COLUMNS = [
    "id", "source", "ecosystem", "name", "raw_name", "versions", "all_versions", "ranges", "withdrawn",
    "sub_labels", "sub_label_rules", "osptrack_sub_label", "summary", "published", "modified",
]  # fmt: skip


def _records() -> list[tuple[str, dict]]:
    return [
        ("malicious", make_record("MAL-1", "PyPI", "Evil_Pkg.Two", versions=["1.0", "01.0.0"])),
        (
            "malicious",
            make_record("MAL-2", "npm", "@Evil/Pkg", ranges=all_versions_range(), details=GHSA_TEMPLATE),
        ),
        ("malicious", make_record("MAL-3", "RubyGems", "Bad_Gem", versions=["0.1.3"])),
        ("malicious", make_record("MAL-4", "NuGet", "Bad.Package", versions=["1.0.0"])),
        ("malicious", make_record("MAL-5", "crates.io", "Bad_Crate", versions=["0.1.0"])),
        ("malicious", make_record("MAL-6", "Go", "github.com/Evil/Mod", ranges=all_versions_range())),
        ("malicious", make_record("MAL-7", "Maven", "io.github.x:Core", ranges=all_versions_range())),
        (
            "malicious",
            make_record(
                "MAL-8",
                "npm",
                "ranged",
                ranges=[{"type": "SEMVER", "events": [{"introduced": "1.0.0"}, {"fixed": "1.0.5"}]}],
                database_specific={
                    "iocs": {
                        "urls": ["https://evil.example/p.exe"],
                        "domains": ["c2.example"],
                        "strings": ["x"],
                    },
                    "malicious-packages-origins": [{"source": "ghsa-malware"}, {"source": "reversing-labs"}],
                },
            ),
        ),
        ("withdrawn", make_record("MAL-9", "PyPI", "was-fine", ranges=all_versions_range())),
        (
            "malicious",
            make_record("MAL-10", "PyPI", "marked", versions=["1"], withdrawn="2024-05-01T00:00:00Z"),
        ),
    ]


def _rows(out: Path) -> dict[str, dict]:
    return {r["id"]: r for r in pq.read_table(out).to_pylist()}


def _zip_bytes(records: list[tuple[str, dict]], top: str = "malicious-packages-main/") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(top, "")
        zf.writestr(f"{top}README.md", "# not a record")
        for kind, rec in records:
            name = rec["affected"][0]["package"]["name"]
            zf.writestr(f"{top}osv/{kind}/x/{name}/{rec['id']}.json", json.dumps(rec))
    return buf.getvalue()


def test_folder_rows_follow_formats_md(osv_tree, tmp_path: Path) -> None:
    out = tmp_path / "labels.parquet"
    _, _, report = build_labels([osv_tree(_records())], out=out)
    table = pq.read_table(out)
    assert table.column_names[: len(FORMATS_COLUMNS)] == FORMATS_COLUMNS
    assert table.schema.equals(LABEL_SCHEMA)
    rows = _rows(out)
    assert (report.records, report.withdrawn, report.skipped) == (10, 2, 0)

    assert (rows["MAL-1"]["ecosystem"], rows["MAL-1"]["name"]) == ("pypi", "evil-pkg-two")
    assert rows["MAL-1"]["raw_name"] == "Evil_Pkg.Two"
    assert rows["MAL-1"]["versions"] == ["1.0", "1.0.0"]  # normalise_version: 01.0.0 -> 1.0.0
    assert rows["MAL-1"]["all_versions"] is False and rows["MAL-1"]["ranges"] == "[]"
    assert (rows["MAL-2"]["name"], rows["MAL-2"]["all_versions"]) == ("@evil/pkg", True)
    assert rows["MAL-2"]["sub_labels"] == ["full_compromise"]
    assert rows["MAL-2"]["osptrack_sub_label"] == "root shell"
    assert [rows[i]["ecosystem"] for i in ("MAL-3", "MAL-4", "MAL-5", "MAL-6", "MAL-7")] == [
        "rubygems", "nuget", "crates.io", "go", "maven",
    ]  # fmt: skip
    assert [rows[i]["name"] for i in ("MAL-3", "MAL-4", "MAL-5", "MAL-6", "MAL-7")] == [
        "bad_gem", "bad.package", "bad-crate", "github.com/Evil/Mod", "io.github.x:Core",
    ]  # fmt: skip
    assert orjson.loads(rows["MAL-8"]["ranges"]) == [
        {"type": "SEMVER", "events": [{"introduced": "1.0.0"}, {"fixed": "1.0.5"}]}
    ]
    assert rows["MAL-8"]["origins"] == ["ghsa-malware", "reversing-labs"]
    assert rows["MAL-9"]["withdrawn"] is True and rows["MAL-10"]["withdrawn"] is True
    assert not any(rows[i]["withdrawn"] for i in rows if i not in ("MAL-9", "MAL-10"))


def test_pypi_versions_deduplicated_after_normalisation(osv_tree, tmp_path: Path) -> None:
    root = osv_tree([("malicious", make_record("MAL-1", "PyPI", "p", versions=["1.0", "1.0", "2.0.0-RC1"]))])
    out = tmp_path / "labels.parquet"
    build_labels([root], out=out)
    assert _rows(out)["MAL-1"]["versions"] == ["1.0", "2.0.0rc1"]


def test_iocs_table(osv_tree, tmp_path: Path) -> None:
    out = tmp_path / "labels.parquet"
    build_labels([osv_tree(_records())], out=out)
    iocs = pq.read_table(iocs_path_for(out)).to_pylist()
    assert iocs_path_for(out).name == "labels.iocs.parquet"
    got = sorted(
        (r["id"], r["ecosystem"], r["name"], r["kind"], r["value"], r["source"], r["host"]) for r in iocs
    )
    assert got == [
        ("MAL-8", "npm", "ranged", "domain", "c2.example", "osv", "c2.example"),
        ("MAL-8", "npm", "ranged", "url", "https://evil.example/p.exe", "osv", "evil.example"),
    ]


def test_zip_in_github_layout_matches_folder(osv_tree, tmp_path: Path) -> None:
    zpath = tmp_path / "malicious-packages-main.zip"
    zpath.write_bytes(_zip_bytes(_records()))
    from_zip, from_dir = tmp_path / "z" / "labels.parquet", tmp_path / "d" / "labels.parquet"
    _, _, report = build_labels([zpath], out=from_zip)
    build_labels([osv_tree(_records())], out=from_dir)
    strip = ("file",)
    zrows = {k: {c: v for c, v in r.items() if c not in strip} for k, r in _rows(from_zip).items()}
    drows = {k: {c: v for c, v in r.items() if c not in strip} for k, r in _rows(from_dir).items()}
    assert zrows == drows
    assert report.ignored_files == 1  # README.md


@pytest.mark.parametrize("suffix,mode", [(".tar.gz", "w:gz"), (".tar", "w"), (".tgz", "w:gz")])
def test_tarball(tmp_path: Path, suffix: str, mode: str) -> None:
    tpath = tmp_path / f"osv{suffix}"
    with tarfile.open(tpath, mode) as tf:
        for kind, rec in _records():
            data = json.dumps(rec).encode()
            info = tarfile.TarInfo(f"malicious-packages-main/osv/{kind}/{rec['id']}.json")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    out = tmp_path / "labels.parquet"
    _, _, report = build_labels([tpath], out=out)
    assert (report.records, report.withdrawn) == (10, 2)
    assert _rows(out)["MAL-9"]["withdrawn"] is True


def test_bad_record_is_skipped_with_a_named_warning(tmp_path: Path) -> None:
    recs = _records()[:2]
    zpath = tmp_path / "osv.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for kind, rec in recs:
            zf.writestr(f"top/osv/{kind}/{rec['id']}.json", json.dumps(rec))
        zf.writestr("top/osv/malicious/BROKEN.json", "{not json")
        zf.writestr("top/osv/malicious/NOAFFECTED.json", json.dumps({"id": "MAL-X", "affected": []}))
        zf.writestr("top/osv/malicious/LIST.json", "[1, 2]")
    out = tmp_path / "labels.parquet"
    _, _, report = build_labels([zpath], out=out)
    assert set(_rows(out)) == {"MAL-1", "MAL-2"}  # the good ones survive
    assert report.skipped == 3
    joined = "\n".join(report.messages)
    assert "BROKEN.json: malformed JSON" in joined
    assert "NOAFFECTED.json: unusable OSV record" in joined
    assert "LIST.json: not a JSON object" in joined


def test_corrupt_archive_is_bad_input_and_nothing_written(tmp_path: Path) -> None:
    bad = tmp_path / "broken.zip"
    bad.write_bytes(_zip_bytes(_records())[:100])
    out = tmp_path / "out" / "labels.parquet"
    with pytest.raises(BadInput, match="broken.zip"):
        build_labels([bad], out=out)
    assert not out.parent.exists() or not any(out.parent.iterdir())
    badtar = tmp_path / "broken.tar.gz"
    badtar.write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(BadInput, match="broken.tar.gz"):
        build_labels([badtar], out=out)


def test_unknown_file_and_missing_path(tmp_path: Path) -> None:
    odd = tmp_path / "records.7z"
    odd.write_bytes(b"x")
    with pytest.raises(BadInput, match="records.7z"):
        build_labels([odd], out=tmp_path / "l.parquet")
    with pytest.raises(BadInput, match="nowhere"):
        build_labels([tmp_path / "nowhere"], out=tmp_path / "l.parquet")
    with pytest.raises(BadInput, match="no label sources"):
        build_labels([], out=tmp_path / "l.parquet")


def test_empty_source_is_an_error_not_an_empty_table(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadInput, match="no label records"):
        build_labels([tmp_path / "empty"], out=tmp_path / "l.parquet")
    assert not (tmp_path / "l.parquet").exists()


def test_existing_output_survives_a_failed_build(osv_tree, tmp_path: Path) -> None:
    out = tmp_path / "labels.parquet"
    build_labels([osv_tree(_records())], out=out)
    before = out.read_bytes()
    with pytest.raises(BadInput):
        build_labels([tmp_path / "missing.zip"], out=out)
    assert out.read_bytes() == before


def test_multiple_affected_packages_give_one_row_each(osv_tree, tmp_path: Path) -> None:
    rec = make_record("MAL-1", "npm", "a", versions=["1.0.0"])
    rec["affected"].append({"package": {"ecosystem": "npm", "name": "b"}, "versions": ["2.0.0"]})
    rec["affected"].append({"package": {"ecosystem": "npm", "name": "A"}, "versions": ["1.0.1"]})  # same as a
    out = tmp_path / "labels.parquet"
    build_labels([osv_tree([("malicious", rec)])], out=out)
    rows = sorted((r["name"], r["versions"]) for r in pq.read_table(out).to_pylist())
    assert rows == [("a", ["1.0.0", "1.0.1"]), ("b", ["2.0.0"])]


def test_corrupt_member_in_a_good_zip_is_skipped_not_fatal(tmp_path: Path) -> None:
    recs = _records()[:3]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for kind, rec in recs:
            zf.writestr(f"top/osv/{kind}/{rec['id']}.json", json.dumps(rec))
    blob = bytearray(buf.getvalue())
    at = blob.index(b'"MAL-2"')
    blob[at + 1 : at + 6] = b"XXX-2"  # same length, wrong CRC
    zpath = tmp_path / "osv.zip"
    zpath.write_bytes(bytes(blob))
    out = tmp_path / "labels.parquet"
    _, _, report = build_labels([zpath], out=out)
    assert set(_rows(out)) == {"MAL-1", "MAL-3"}
    assert report.skipped == 1 and "MAL-2.json: corrupt member" in report.messages[0]


def test_withdrawn_folder_passed_directly_is_still_withdrawn(osv_tree, tmp_path: Path, monkeypatch) -> None:
    root = osv_tree([("withdrawn", make_record("MAL-W", "npm", "w", versions=["1.0.0"]))])
    monkeypatch.chdir(root / "osv" / "withdrawn")
    out = tmp_path / "labels.parquet"
    build_labels([Path(".")], out=out)
    assert _rows(out)["MAL-W"]["withdrawn"] is True


def test_malformed_ioc_url_does_not_lose_the_record(osv_tree, tmp_path: Path) -> None:
    rec = make_record(
        "MAL-U",
        "npm",
        "u",
        versions=["1.0.0"],
        database_specific={"iocs": {"urls": ["http://[::1/broken", "https://ok.example/x.sh"]}},
    )
    out = tmp_path / "labels.parquet"
    _, _, report = build_labels([osv_tree([("malicious", rec)])], out=out)
    assert report.skipped == 0
    assert _rows(out)["MAL-U"]["sub_labels"] == ["dropper"]
    hosts = sorted(r["host"] for r in pq.read_table(iocs_path_for(out)).to_pylist())
    assert hosts == ["", "ok.example"]
