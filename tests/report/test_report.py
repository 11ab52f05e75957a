"""`osptrack report`: SARIF against the official schema, Markdown, JSON, HTML, and where it may write."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from osptrack.report import render
from osptrack.report.index import write_index
from synth_runs import SETUP_ARGV, Run

SCHEMA = json.loads((Path(__file__).parent / "sarif-schema-2.1.0.json").read_text())
OSPTRACK = [sys.executable, "-m", "osptrack.cli"]


def malicious_run(folder: Path) -> Path:
    r = Run()
    r.exec(10, SETUP_ARGV)
    r.bait_read(10, "/root/.ssh/id_rsa")
    r.dns("c2.example")
    r.connect(10, "198.18.1.1", 443)
    r.open(10, "/root/.bashrc", op="write")
    r.exec(11, ["sh", "-c", "echo aWQK | base64 -d | sh <script>alert(1)</script>"], ppid=10)
    r.flow(
        dst="198.18.1.1",
        dst_port=443,
        bytes=12,
        hostname="c2.example",
        first_bytes="PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
        http={"method": "POST", "path": "/<img src=x>", "host": "c2.example"},
    )
    return r.write(folder)


def benign_run(folder: Path) -> Path:
    r = Run()
    r.exec(10, ["/usr/bin/python3", "-m", "pip", "install", "x"], by="/usr/bin/bwrap")
    return r.write(folder)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*OSPTRACK, *args], capture_output=True, text=True, timeout=120)


def test_sarif_validates_against_the_official_schema(tmp_path: Path) -> None:
    sarif = json.loads(render(malicious_run(tmp_path / "run"), "sarif"))
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    jsonschema.validate(sarif, SCHEMA, cls=jsonschema.Draft7Validator)
    run = sarif["runs"][0]
    results = run["results"]
    rule_ids = [d["id"] for d in run["tool"]["driver"]["rules"]]
    assert {"persistence-write", "encoded-command", "bait-read-then-connect"} <= {
        r["ruleId"] for r in results
    }
    for res in results:
        assert res["level"] in ("error", "warning", "note") and res["message"]["text"]
        assert rule_ids[res["ruleIndex"]] == res["ruleId"]
    assert next(r for r in results if r["ruleId"] == "persistence-write")["level"] == "error"
    assert next(r for r in results if r["ruleId"] == "bait-credential-read")["level"] == "warning"


def test_sarif_schema_rejects_what_it_should(tmp_path: Path) -> None:
    """The vendored schema really constrains: a wrong level fails validation."""
    sarif = json.loads(render(malicious_run(tmp_path / "run"), "sarif"))
    sarif["runs"][0]["results"][0]["level"] = "fatal"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(sarif, SCHEMA, cls=jsonschema.Draft7Validator)


def test_benign_sarif_has_no_results(tmp_path: Path) -> None:
    sarif = json.loads(render(benign_run(tmp_path / "run"), "sarif"))
    jsonschema.validate(sarif, SCHEMA, cls=jsonschema.Draft7Validator)
    assert sarif["runs"][0]["results"] == [] and sarif["runs"][0]["tool"]["driver"]["rules"]


def test_markdown_and_json(tmp_path: Path) -> None:
    folder = malicious_run(tmp_path / "run")
    md = render(folder, "markdown").decode()
    assert md.startswith("# osptrack: pypi synthetic 1.0.0") and "**Verdict: 🔴 malicious**" in md
    assert "`persistence-write`" in md and "write /root/.bashrc" in md
    data = json.loads(render(folder, "json"))
    assert set(data) == {"summary", "verdict"} and data["verdict"]["level"] == "malicious"
    assert data["summary"]["package"]["name"] == "synthetic"


def test_html_escapes_and_links_every_finding_to_its_evidence(tmp_path: Path) -> None:
    page = render(malicious_run(tmp_path / "run"), "html").decode()
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<img src=x>" not in page
    assert 'http-equiv="Content-Security-Policy"' in page and "default-src 'none'" in page
    assert "http://" not in page.replace("http-equiv", "") and "https://" not in page  # nothing to fetch
    import re

    targets = set(re.findall(r'id="((?:event|flow|fact)-[^"]+)"', page))
    links = re.findall(r'<a href="#((?:event|flow|fact)-[^"]+)"', page)
    assert links and set(links) <= targets  # every evidence link lands on a row


def test_report_cli_writes_refuses_and_exits_2(tmp_path: Path) -> None:
    folder = malicious_run(tmp_path / "run")
    out = tmp_path / "r.sarif"
    done = cli("report", str(folder), "--format", "sarif", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert json.loads(out.read_text())["version"] == "2.1.0"
    assert cli("report", str(folder), "--format", "sarif", "--out", str(out)).returncode == 0  # its own file
    mine = tmp_path / "notes.txt"
    mine.write_text("my notes")
    refused = cli("report", str(folder), "--format", "html", "--out", str(mine))
    assert (
        refused.returncode == 2
        and "not an osptrack report" in refused.stderr
        and mine.read_text() == "my notes"
    )
    assert cli("report", str(tmp_path / "nope"), "--format", "json").returncode == 2
    assert cli("report", str(folder), "--format", "pdf").returncode == 2
    shown = cli("report", str(folder), "--format", "json")
    assert shown.returncode == 0 and json.loads(shown.stdout)["verdict"]["level"] == "malicious"


def test_batch_index_lists_runs_worst_first(tmp_path: Path) -> None:
    benign_run(tmp_path / "pypi" / "a" / "1.0")
    malicious_run(tmp_path / "pypi" / "b" / "1.0")
    (tmp_path / ".tmp" / "x").mkdir(parents=True)
    index = write_index(tmp_path)
    page = index.read_text()
    assert page.index("lvl-malicious") < page.index("lvl-benign")
    assert 'href="reports/pypi/b/1.0.html"' in page and (tmp_path / "reports/pypi/b/1.0.html").is_file()
    assert (tmp_path / "reports/pypi/a/1.0.html").is_file()
    assert "https://" not in page
