"""Integration: the real OpenSSF snapshot in ../shared (read-only, ~33k records, a few seconds)."""

from __future__ import annotations

import zipfile
from collections import Counter
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest
from labels_fixtures import SHARED_ZIP

from osptrack.labels.build import build_labels
from osptrack.labels.match import LabelIndex
from osptrack.labels.table import iocs_path_for

pytestmark = pytest.mark.skipif(
    not SHARED_ZIP.is_file(), reason="needs ../shared/data/malicious-packages-main.zip (absent)"
)

# From ../shared/README.md, which counts the malicious (not withdrawn) records per folder.
README_COUNTS = {
    "npm": 22241,
    "pypi": 9207,
    "rubygems": 815,
    "nuget": 746,
    "go": 8,
    "crates.io": 2,
    "maven": 1,
}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("real") / "labels.parquet"
    _, _, report = build_labels([SHARED_ZIP], out=out)
    return out, report


@pytest.mark.slow
def test_every_record_read_and_counts_match_readme(built) -> None:
    out, report = built
    assert report.skipped == 0 and report.records == 33076
    rows = pq.read_table(out, columns=["ecosystem", "withdrawn"]).to_pylist()
    live = Counter(r["ecosystem"] for r in rows if not r["withdrawn"])
    assert dict(live) == README_COUNTS
    with zipfile.ZipFile(SHARED_ZIP) as zf:
        withdrawn_files = [n for n in zf.namelist() if "/osv/withdrawn/" in n and n.endswith(".json")]
    assert report.withdrawn == len(withdrawn_files) == sum(r["withdrawn"] for r in rows)


@pytest.mark.slow
def test_records_match_their_own_json(built) -> None:
    out, _ = built
    index = LabelIndex.load(out)
    with zipfile.ZipFile(SHARED_ZIP) as zf:
        names = sorted(n for n in zf.namelist() if "/osv/malicious/" in n and n.endswith(".json"))
        # Every 500th record: its own first explicit version (or any version if all) must match it.
        for member in names[::500]:
            rec = orjson.loads(zf.read(member))
            pkg = rec["affected"][0]["package"]
            versions = rec["affected"][0].get("versions") or ["0.0.1-any"]
            hits = index.match(pkg["ecosystem"], pkg["name"], versions[0])
            assert rec["id"] in {h.id for h in hits}, member


@pytest.mark.slow
def test_template_sub_labels_on_real_text(built) -> None:
    out, _ = built
    rows = pq.read_table(out, columns=["origins", "withdrawn", "sub_labels"]).to_pylist()
    ghsa = [r for r in rows if "ghsa-malware" in r["origins"] and not r["withdrawn"]]
    assert ghsa and sum("full_compromise" in r["sub_labels"] for r in ghsa) / len(ghsa) > 0.99
    # GHSA's boilerplate mentions "secrets and keys"; it must not make GHSA-only records credential theft.
    only_ghsa = [r for r in ghsa if r["origins"] == ["ghsa-malware"]]
    assert sum("credential_theft" in r["sub_labels"] for r in only_ghsa) / len(only_ghsa) < 0.01
    iocs = pq.read_table(iocs_path_for(out)).to_pylist()
    assert {r["kind"] for r in iocs} == {"url", "domain", "ip"}
