"""The matching API the dataset build relies on: LabelIndex.load(...).match / .is_malicious."""

from __future__ import annotations

from pathlib import Path

import pytest
from labels_fixtures import all_versions_range, make_record

from osptrack.errors import BadInput
from osptrack.labels.build import build_labels
from osptrack.labels.match import LabelIndex


@pytest.fixture
def index(osv_tree, tmp_path: Path) -> LabelIndex:
    root = osv_tree(
        [
            ("malicious", make_record("MAL-1", "PyPI", "Evil_Pkg", versions=["1.0", "2.0.0rc1"])),
            ("malicious", make_record("MAL-2", "npm", "@Scope/Thing", ranges=all_versions_range())),
            (
                "malicious",
                make_record(
                    "MAL-3",
                    "npm",
                    "bounded",
                    ranges=[{"type": "SEMVER", "events": [{"introduced": "1.2.0"}, {"fixed": "1.10.0"}]}],
                ),
            ),
            ("withdrawn", make_record("MAL-4", "PyPI", "innocent", ranges=all_versions_range())),
            ("malicious", make_record("MAL-5", "crates.io", "Bad_Crate", versions=["0.1.0"])),
        ]
    )
    out = tmp_path / "out" / "labels.parquet"
    build_labels([root], out=out)
    return LabelIndex.load(out)


def test_explicit_versions_only(index: LabelIndex) -> None:
    assert index.is_malicious("pypi", "evil-pkg", "1.0")
    assert not index.is_malicious("pypi", "evil-pkg", "1.1")
    hits = index.match("pypi", "evil-pkg", "1.0")
    assert [(h.id, h.matched_by) for h in hits] == [("MAL-1", "version")]


def test_pypi_names_and_versions_normalised_like_pep(index: LabelIndex) -> None:
    # PEP 503 names and PEP 440 equality: 1.0 == 1.0.0, 2.0.0rc1 == 2.0.0-RC1.
    assert index.is_malicious("PyPI", "EVIL.pkg", "1.0.0")
    assert index.is_malicious("pypi", "evil_pkg", "2.0.0-RC1")


def test_all_versions_range_and_npm_scope_case(index: LabelIndex) -> None:
    assert index.is_malicious("npm", "@scope/thing", "99.0.0")
    assert index.match("npm", "@SCOPE/THING", "0.0.1")[0].matched_by == "all_versions"
    assert not index.is_malicious("npm", "thing", "1.0.0")  # the scope is part of the name


def test_bounded_range_uses_semver_not_text_order(index: LabelIndex) -> None:
    assert index.is_malicious("npm", "bounded", "1.2.0")
    assert index.is_malicious("npm", "bounded", "1.9.5")  # "1.9.5" > "1.10.0" as text
    assert not index.is_malicious("npm", "bounded", "1.10.0")
    assert not index.is_malicious("npm", "bounded", "1.2.0-beta.1")
    assert not index.is_malicious("npm", "bounded", "not-a-version")
    assert index.match("npm", "bounded", "1.5.0")[0].matched_by == "range"


def test_withdrawn_never_malicious_but_visible_on_request(index: LabelIndex) -> None:
    assert not index.is_malicious("pypi", "innocent", "1.0")
    assert index.match("pypi", "innocent", "1.0") == []
    shown = index.match("pypi", "innocent", "1.0", include_withdrawn=True)
    assert [(h.id, h.withdrawn) for h in shown] == [("MAL-4", True)]


def test_name_only_lookup_and_crates_folder_spelling(index: LabelIndex) -> None:
    assert index.is_malicious("pypi", "evil-pkg", None)
    assert index.is_malicious("crates-io", "bad-crate", "0.1.0")  # OSV folder spelling, - == _
    assert index.match("crates.io", "BAD_CRATE")[0].matched_by == "name"


def test_load_rejects_non_label_file(tmp_path: Path) -> None:
    bogus = tmp_path / "x.parquet"
    bogus.write_bytes(b"not parquet")
    with pytest.raises(BadInput, match="x.parquet"):
        LabelIndex.load(bogus)
    with pytest.raises(BadInput, match="no such labels file"):
        LabelIndex.load(tmp_path / "missing.parquet")


def test_combined_sub_labels_across_sources(osv_tree, tmp_path: Path) -> None:
    from labels_fixtures import GHSA_TEMPLATE

    root = osv_tree(
        [
            ("malicious", make_record("MAL-A", "npm", "multi", versions=["1.0.0"], details=GHSA_TEMPLATE)),
            (
                "malicious",
                make_record("MAL-B", "npm", "multi", ranges=all_versions_range(), details="a C2 beacon"),
            ),
            (
                "withdrawn",
                make_record("MAL-C", "npm", "multi", ranges=all_versions_range(), details="clipboard"),
            ),
        ]
    )
    out = tmp_path / "labels.parquet"
    build_labels([root], out=out)
    index = LabelIndex.load(out)
    assert index.sub_labels("npm", "multi", "1.0.0") == ("c2", "full_compromise")  # withdrawn MAL-C ignored
    assert index.osptrack_sub_label("npm", "multi", "1.0.0") == "C2"
    assert index.sub_labels("npm", "multi", "2.0.0") == ("c2",)
    assert index.osptrack_sub_label("npm", "unknown", "1.0.0") == "na"
