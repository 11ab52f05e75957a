"""End to end through the real sandbox: the null-package baseline, corpus packages and a
synthetic suspicious package (harmless: its "exfiltration" goes to the fake network), then
`dataset build`. Features that flag theft, persistence and shell use must fire for the
suspicious package only, and the baseline must remove most of the corpus packages' records.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest
from dataset_helpers import write_labels

from osptrack.dataset.baseline import run_baseline
from osptrack.dataset.build import BuildOptions, build

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from builders import suspicious_sdist  # noqa: E402  (the shared test-package builders)

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
CORPUS = ("six", "idna")  # wheels without dependencies

pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.skipif(
        shutil.which("bwrap") is None or shutil.which("strace") is None or os.geteuid() != 0,
        reason="needs bubblewrap, strace and root",
    ),
    pytest.mark.skipif(not (SHARED / "corpus" / "manifest.json").is_file(), reason="no ../shared corpus"),
]


def _corpus_archive(name: str) -> Path:
    manifest = orjson.loads((SHARED / "corpus" / "manifest.json").read_bytes())
    entry = next(p for p in manifest["packages"] if p["ecosystem"] == "pypi" and p["name"] == name)
    return SHARED / "corpus" / entry["archive"]


def test_baseline_corpus_and_suspicious_package(tmp_path: Path) -> None:
    from osptrack.run import AnalyzeOptions, analyze
    from osptrack.target import parse_target

    baseline = tmp_path / "baseline"
    assert len(run_baseline("pypi", baseline, timeout_s=120)) == 2
    runs = tmp_path / "runs"
    options = AnalyzeOptions(phases=("install", "import"), timeout_s=120)
    for name in CORPUS:
        analyze(parse_target("pypi", str(_corpus_archive(name))), options, runs / name)
    evil_archive = suspicious_sdist(tmp_path, name="osptrack-evil", version="1.0.0")
    analyze(parse_target("pypi", str(evil_archive)), options, runs / "evil")
    labels = write_labels(
        tmp_path / "labels.parquet",
        [{"id": "MAL-TEST", "ecosystem": "pypi", "name": "osptrack-evil", "versions": ["1.0.0"]}],
    )
    out = tmp_path / "dataset"
    build([runs], BuildOptions(labels=labels, out=out, baseline=baseline, workers=1))
    rows = {r["Name"].lower(): r for r in pq.read_table(out / "features.parquet").to_pylist()}
    assert set(rows) == {"six", "idna", "osptrack-evil"}
    evil = rows.pop("osptrack-evil")
    assert evil["Label"] == 1
    only_evil = [
        "install_read_ssh_n",
        "install_write_shell_rc_n",
        "install_cmd_shell_n",
        "install_dns_nonregistry_n",
    ]
    for feature in only_evil:
        assert evil[feature] >= 1, feature
        for name, row in rows.items():
            assert row[feature] == 0, (name, feature)
    assert evil["bait_in_payload_n"] >= 1  # the AWS secret went over the (fake) wire
    for name, row in rows.items():
        assert row["bait_in_payload_n"] == 0, name
        assert row["Label"] == 0
        # Most of a benign wheel's records are the toolchain's own.
        assert row["install_files_n"] < 0.5 * row["install_files_raw_n"], name
    print({n: (r["install_files_raw_n"], r["install_files_n"]) for n, r in {**rows, "evil": evil}.items()})
