"""DataDog manifests and OSPtrack's data_metrics.csv."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from osptrack.errors import BadInput
from osptrack.labels.build import build_labels
from osptrack.labels.match import LabelIndex

METRICS_HEADER = "pkg_type,name,version,location,function,attack_type,trigger_mechanism,hide\n"


def _rows(out: Path) -> dict[tuple[str, str], dict]:
    return {(r["source"], r["name"]): r for r in pq.read_table(out).to_pylist()}


def test_datadog_manifest_null_means_all_versions(tmp_path: Path) -> None:
    manifest = tmp_path / "samples" / "pypi" / "manifest.json"
    manifest.parent.mkdir(parents=True)
    manifest.write_text(json.dumps({"Evil_Pkg": None, "pinned": ["1.0", "1.0", "2.0"]}))
    out = tmp_path / "labels.parquet"
    build_labels(datadog=[str(manifest)], out=out)
    rows = _rows(out)
    assert rows[("datadog", "evil-pkg")]["all_versions"] is True
    assert rows[("datadog", "pinned")]["versions"] == ["1.0", "2.0"]
    assert rows[("datadog", "pinned")]["ecosystem"] == "pypi"  # from the folder name
    index = LabelIndex.load(out)
    assert index.is_malicious("pypi", "evil.pkg", "7.7")
    assert index.is_malicious("pypi", "pinned", "2.0") and not index.is_malicious("pypi", "pinned", "3.0")


def test_datadog_ecosystem_explicit_or_error(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"@Scope/Pkg": ["1.0.0"]}))
    with pytest.raises(BadInput, match="ECOSYSTEM=PATH"):
        build_labels(datadog=[str(manifest)], out=tmp_path / "l.parquet")
    out = tmp_path / "labels.parquet"
    build_labels(datadog=[f"npm={manifest}"], out=out)
    assert ("datadog", "@scope/pkg") in _rows(out)


def test_datadog_bad_json_and_bad_entries(tmp_path: Path) -> None:
    bad = tmp_path / "npm" / "manifest.json"
    bad.parent.mkdir()
    bad.write_text("{oops")
    with pytest.raises(BadInput, match="manifest.json: malformed JSON"):
        build_labels(datadog=[str(bad)], out=tmp_path / "l.parquet")
    bad.write_text(json.dumps({"good": None, "bad": "1.0"}))
    _, _, report = build_labels(datadog=[str(bad)], out=tmp_path / "l.parquet")
    assert report.rows == 1 and report.skipped == 1 and "bad" in report.messages[0]


def test_osptrack_metrics(tmp_path: Path) -> None:
    csv = tmp_path / "data_metrics.csv"
    csv.write_text(
        METRICS_HEADER
        + "pypi,Py_Evil,,setup,spyware and information stealing,dropper/malware,execute upon download,base64\n"
        + 'npm,cagov-template-v5,"19.2.0,19.1.0",socket,build communication tunnel with C2,C2 communication,running,N/A\n'
        + "npm,cagov-template-v5,19.3.0,socket,build communication tunnel with C2,C2 communication,running,N/A\n"
        + "npm,ghsa-one,,entrypoint/download,install powerful malware,data exfiltration/root shell,download,N/A\n"
        + ",,,,,,,\n"
    )
    out = tmp_path / "labels.parquet"
    _, _, report = build_labels(osptrack_metrics=[csv], out=out)
    rows = _rows(out)
    assert report.skipped == 1  # the empty row, named in the messages
    evil = rows[("osptrack", "py-evil")]
    assert evil["all_versions"] is True and evil["ecosystem"] == "pypi"
    assert {"dropper", "infostealer"} <= set(evil["sub_labels"])
    cagov = rows[("osptrack", "cagov-template-v5")]
    assert (cagov["versions"], cagov["all_versions"]) == (["19.2.0", "19.1.0", "19.3.0"], False)
    assert cagov["osptrack_sub_label"] == "C2"
    one = rows[("osptrack", "ghsa-one")]
    assert dict(zip(one["sub_labels"], one["sub_label_rules"], strict=True)) == {
        "exfiltration": "kw:exfiltration",
        "full_compromise": "osptrack:attack-type-root-shell",
    }
    assert one["osptrack_sub_label"] == "root shell"


def test_osptrack_metrics_wrong_columns(tmp_path: Path) -> None:
    csv = tmp_path / "other.csv"
    csv.write_text("a,b\n1,2\n")
    with pytest.raises(BadInput, match="other.csv: not an OSPtrack data_metrics.csv"):
        build_labels(osptrack_metrics=[csv], out=tmp_path / "l.parquet")


def test_sources_combine_and_keep_their_source(tmp_path: Path) -> None:
    manifest = tmp_path / "npm" / "manifest.json"
    manifest.parent.mkdir()
    manifest.write_text(json.dumps({"shared": None}))
    csv = tmp_path / "m.csv"
    csv.write_text(METRICS_HEADER + "npm,shared,1.0.0,x,y,C2 communication,z,N/A\n")
    out = tmp_path / "labels.parquet"
    build_labels(datadog=[str(manifest)], osptrack_metrics=[csv], out=out)
    hits = LabelIndex.load(out).match("npm", "shared", "1.0.0")
    assert sorted((h.source, h.id) for h in hits) == [
        ("datadog", "DATADOG-npm-shared"),
        ("osptrack", "OSPTRACK-npm-shared"),
    ]
