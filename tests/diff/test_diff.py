"""`osptrack diff`: behaviour B has that A lacks (added) and the reverse (removed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from osptrack.diff.behaviour import diff_runs
from osptrack.errors import BadInput
from synthetic_runs import SITE, dns_flow, make_run, tcp_flow

OSPTRACK = [sys.executable, "-m", "osptrack.cli"]


def _pair(tmp_path: Path) -> tuple[Path, Path]:
    common = {"install": ["pypi.org"]}
    a = make_run(
        tmp_path / "a",
        "wobble",
        "1.2.0",
        dns=common,
        files={"install": [(f"{SITE}/wobble-1.2.0.dist-info/RECORD", "w"), ("/etc/hosts", "r")]},
        commands={"install": [["python3", "-m", "pip", "install", "/input/pkg/wobble-1.2.0.tar.gz"]]},
    )
    b = make_run(
        tmp_path / "b",
        "wobble",
        "1.3.0",
        dns={"install": ["pypi.org", "drop.evil-diff.example"]},
        files={"install": [(f"{SITE}/wobble-1.3.0.dist-info/RECORD", "w"), ("/root/.ssh/id_rsa", "r")]},
        commands={
            "install": [
                ["python3", "-m", "pip", "install", "/input/pkg/wobble-1.3.0.tar.gz"],
                ["sh", "-c", "id"],
            ]
        },
        sockets={"install": [("198.18.0.3", 443, ["drop.evil-diff.example"])]},
        flows=[dns_flow("drop.evil-diff.example"), tcp_flow("drop.evil-diff.example")],
        verdict={
            "level": "malicious",
            "score": 8,
            "findings": [
                {
                    "rule": "non-registry-host",
                    "title": "contacted drop.evil-diff.example",
                    "severity": "medium",
                    "phase": "install",
                }
            ],
        },
    )
    return a, b


def test_added_dns_name_and_the_rest(tmp_path: Path) -> None:
    a, b = _pair(tmp_path)
    d = diff_runs(a, b)
    assert d.added["dns"] == [{"phase": "install", "hostname": "drop.evil-diff.example"}]
    assert d.removed["dns"] == []
    # Version bumps are templated away; the real file changes remain.
    assert d.added["files"] == [{"phase": "install", "path": "<HOME>/.ssh/id_rsa", "access": "r"}]
    assert d.removed["files"] == [{"phase": "install", "path": "/etc/hosts", "access": "r"}]
    assert d.added["commands"] == [{"phase": "install", "command": "sh -c id"}]
    assert d.added["sockets"] == [{"phase": "install", "host": "drop.evil-diff.example", "port": 443}]
    assert {f["kind"] for f in d.added["flows"]} == {"dns", "tcp"}
    assert [f["rule"] for f in d.added["findings"]] == ["non-registry-host"]
    # The reverse diff swaps the sides exactly.
    r = diff_runs(b, a)
    assert r.added == d.removed and r.removed == d.added


def test_identical_runs_have_no_difference(tmp_path: Path) -> None:
    a, _ = _pair(tmp_path)
    again = make_run(
        tmp_path / "again",
        "wobble",
        "1.2.0",
        dns={"install": ["pypi.org"]},
        files={"install": [(f"{SITE}/wobble-1.2.0.dist-info/RECORD", "w"), ("/etc/hosts", "r")]},
        commands={"install": [["python3", "-m", "pip", "install", "/input/pkg/wobble-1.2.0.tar.gz"]]},
    )
    d = diff_runs(a, again)
    assert all(not v for v in d.added.values()) and all(not v for v in d.removed.values())


def test_cli_json_and_table(tmp_path: Path) -> None:
    a, b = _pair(tmp_path)
    out = subprocess.run(
        [*OSPTRACK, "diff", str(a), str(b), "--format", "json"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert {"phase": "install", "hostname": "drop.evil-diff.example"} in doc["added"]["dns"]
    assert doc["removed"]["files"] == [{"phase": "install", "path": "/etc/hosts", "access": "r"}]
    assert doc["b"]["verdict"] == "malicious"
    table = subprocess.run([*OSPTRACK, "diff", str(a), str(b)], capture_output=True, text=True, timeout=60)
    assert table.returncode == 0 and "drop.evil-diff.example" in table.stdout


def test_bad_input(tmp_path: Path) -> None:
    a, _ = _pair(tmp_path)
    with pytest.raises(BadInput, match="not a run folder"):
        diff_runs(a, tmp_path)
    out = subprocess.run(
        [*OSPTRACK, "diff", str(a), str(tmp_path / "nope")], capture_output=True, text=True, timeout=60
    )
    assert (
        out.returncode == 2 and "not a run folder" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    )
