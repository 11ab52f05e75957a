"""Every real benign package of the shared corpus analyses offline, completed, with no stray DNS."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from osptrack.registry import REGISTRY_HOST
from osptrack.run import AnalyzeOptions, analyze
from osptrack.target import normalise_name, parse_target
from shared_data import CORPUS, CORPUS_MANIFEST, corpus_entries, needs

ENTRIES = corpus_entries()  # [] without ../shared: the module is skipped, collection still works

pytestmark = [pytest.mark.sandbox, pytest.mark.slow, needs(CORPUS_MANIFEST)]


@pytest.mark.parametrize("entry", ENTRIES, ids=[f"{e['ecosystem']}-{e['name']}" for e in ENTRIES])
def test_corpus_package_completes_offline(entry: dict, tmp_path: Path) -> None:
    archive = CORPUS / entry["archive"]
    options = AnalyzeOptions(timeout_s=180, deps_dirs=(archive.parent,))
    outcome = analyze(parse_target(entry["ecosystem"], str(archive)), options, tmp_path / "run")
    result = json.loads((outcome.out / "result.json").read_text())
    package = result["Package"]
    assert (package["Ecosystem"], package["Version"]) == (entry["ecosystem"], entry["version"])
    assert normalise_name(entry["ecosystem"], package["Name"]) == normalise_name(
        entry["ecosystem"], entry["name"]
    )
    for phase in ("install", "import"):
        record = result["Analysis"][phase]
        assert record["Status"] == "completed", (phase, outcome.notable)
        names = {q["Hostname"] for d in record["DNS"] for q in d["Queries"]}
        assert names <= {REGISTRY_HOST}, names  # the package manager asking the registry service
    assert outcome.notable["dns"] == [] and outcome.notable["exfiltration"] == []
    assert outcome.notable["bait_reads"] == []
    # real benign packages are never judged malicious, and here not even suspicious (docs/rules.md)
    assert outcome.verdict is not None and outcome.verdict["level"] == "benign", [
        (f["rule"], f["evidence"][0]["summary"]) for f in (outcome.verdict or {}).get("findings", [])
    ]
