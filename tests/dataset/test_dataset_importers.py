"""Every input kind becomes the same RunRecord: run folders, package-analysis JSON, OSPtrack CSV."""

from __future__ import annotations

import csv
from pathlib import Path

import orjson
import pytest
from dataset_helpers import phase, result_doc, write_run

from osptrack.dataset.importers import (
    UNIT_CSV,
    UNIT_JSON,
    UNIT_RUN,
    discover,
    read_osptrack_csv,
    read_result_json,
    read_run_folder,
)
from osptrack.dataset.model import SOURCE_LOCAL, SOURCE_OPENSSF, SOURCE_OSPTRACK_CSV, status_of
from osptrack.errors import BadInput

FILE = {"Path": "/etc/passwd", "Read": True, "Write": False, "Delete": False}


def test_result_json_variants(tmp_path: Path) -> None:
    # Older package-analysis results: base64 Stdout, Analysis null or missing, phases missing.
    docs = [
        result_doc("pypi", "a", "1.0", {"install": phase([FILE], stdout="hello"), "import": None}),
        result_doc("npm", "b", "2.0", None),
        {"Package": {"Ecosystem": "PyPI", "Name": "c", "Version": "3.0"}, "CreatedTimestamp": 1},
        result_doc("pypi", "d", "4.0", {"install": phase(status="error_timeout")}),
    ]
    path = tmp_path / "results.json"
    path.write_bytes(orjson.dumps(docs))
    a, b, c, d = read_result_json(path)
    assert a.simulation_source == SOURCE_OPENSSF
    assert list(a.phases) == ["install"]  # a null phase is a phase that did not run
    assert a.phases["install"].Files is not None and a.phases["install"].Files[0].Path == "/etc/passwd"
    assert b.analysis_missing and status_of(b) == "missing"
    assert c.ecosystem == "pypi" and c.analysis_missing
    assert d.timed_out_phases == ("install",) and status_of(d) == "error_timeout"
    assert a.process is None and a.phase_wall_s is None  # results carry no events or timings


def test_result_jsonl_and_single_object(tmp_path: Path) -> None:
    lines = tmp_path / "r.jsonl"
    lines.write_bytes(b"\n".join(orjson.dumps(result_doc("npm", f"p{i}", "1.0.0", {})) for i in range(3)))
    assert [r.name for r in read_result_json(lines)] == ["p0", "p1", "p2"]
    single = tmp_path / "one.json"
    single.write_bytes(orjson.dumps(result_doc("npm", "x", "1", {"install": phase()})))
    assert [r.name for r in read_result_json(single)] == ["x"]


def test_result_json_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_bytes(b'{"nope": 1}')
    with pytest.raises(BadInput, match="bad.json"):
        list(read_result_json(bad))
    eco = tmp_path / "eco.json"
    eco.write_bytes(orjson.dumps(result_doc("cobol", "x", "1", {})))
    with pytest.raises(BadInput, match="unknown ecosystem"):
        list(read_result_json(eco))


def test_run_folder_reads_run_json_events_and_network(tmp_path: Path) -> None:
    events = [
        {"t": 1, "pid": 1, "ppid": None, "kind": "process", "op": "clone", "child_pid": 2},
        {"t": 2, "pid": 2, "ppid": 1, "kind": "process", "op": "clone", "child_pid": 3},
        {
            "t": 3,
            "pid": 3,
            "ppid": 2,
            "kind": "file",
            "op": "chmod",
            "errno": None,
            "args": ['"/tmp/x"', "0755"],
        },
        {
            "t": 4,
            "pid": 3,
            "ppid": 2,
            "kind": "file",
            "op": "chmod",
            "errno": None,
            "args": ['"/tmp/y"', "0644"],
        },
        {"t": 5, "pid": 1, "ppid": None, "kind": "process", "op": "exit"},
        {"t": 6, "pid": 2, "ppid": 1, "kind": "process", "op": "exit"},
        {"t": 7, "pid": 3, "ppid": 2, "kind": "process", "op": "exit"},
    ]
    folder = write_run(
        tmp_path / "run",
        "pypi",
        "pkg",
        "1.0",
        {"install": phase([FILE]), "import": phase(status="error_timeout")},
        events=events,
        network=[{"kind": "dns", "qname": "x.example"}],
        honeytokens=["TOKEN"],
        walls={"install": 3.0, "import": 1.0},
        timed_out=("import",),
        trace_valid=False,
    )
    r = read_run_folder(folder)
    assert r.simulation_source == SOURCE_LOCAL
    assert r.timed_out_phases == ("import",)
    assert r.trace_valid is False
    assert r.local_archive == "pkg-1.0.tar.gz"
    assert r.honeytokens == ["TOKEN"]
    assert r.phase_wall_s == {"install": 3.0, "import": 1.0}
    assert r.network_payloads == [b"x.example"]
    assert r.process is not None
    assert (r.process.depth_max, r.process.processes, r.process.detached, r.process.chmod_exec) == (
        3,
        3,
        2,
        1,
    )


def test_osptrack_csv_round_trip_of_python_literals(tmp_path: Path) -> None:
    path = tmp_path / "label_data.csv"
    files = str([{"Path": "/root/.ssh/id_rsa", "Read": True, "Write": False, "Delete": False}])
    commands = str([{"Command": ["sh", "-c", "id"], "Environment": ["A=1"]}])
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["Ecosystem", "Version", "Name", "import_Files", "import_Sockets", "import_Commands",
                    "import_DNS", "install_Files", "install_Sockets", "install_Commands", "install_DNS",
                    "Label", "Sub_Label"])  # fmt: skip
        w.writerow(["pypi", "1.0", "evil", "", "", "", "", files, "[]", commands, "[]", "1", "command exec"])
        w.writerow(["npm", "2.0", "good", "[]", "[]", "[]", "[]", "[]", "[]", "[]", "[]", "0", "na"])
    evil, good = read_osptrack_csv(path)
    assert evil.simulation_source == SOURCE_OSPTRACK_CSV
    assert list(evil.phases) == ["install"]  # empty import cells: the phase is absent
    assert evil.phases["install"].Files is not None and evil.phases["install"].Files[0].Read is True
    assert evil.phases["install"].Commands is not None and evil.phases["install"].Commands[0].Command == [
        "sh", "-c", "id"
    ]  # fmt: skip
    assert (evil.given_label, evil.given_sub_label) == (1, "command exec")
    assert sorted(good.phases) == ["import", "install"] and good.given_label == 0


def test_osptrack_csv_bad_cell(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("Ecosystem,Version,Name,install_Files\npypi,1,a,\"[{'Path': \"\n")
    with pytest.raises(BadInput, match="x.csv:2"):
        list(read_osptrack_csv(path))
    path.write_text("Name\nx\n")
    with pytest.raises(BadInput, match="not an OSPtrack"):
        list(read_osptrack_csv(path))


def test_discover_mixes_kinds_in_sorted_order(tmp_path: Path) -> None:
    write_run(tmp_path / "runs" / "b", "pypi", "b", "1", {"install": phase()})
    write_run(tmp_path / "runs" / "a", "pypi", "a", "1", {"install": phase()})
    (tmp_path / "runs" / ".partial").mkdir()  # a run still being written
    (tmp_path / "runs" / "manifest.csv").write_text("timestamp,ecosystem\n")  # osptrack batch's own
    (tmp_path / "runs" / "results.json").write_bytes(orjson.dumps(result_doc("npm", "c", "1", {})))
    (tmp_path / "label_data.csv").write_text("Ecosystem,Version,Name\n")
    units = discover([tmp_path / "label_data.csv", tmp_path / "runs", tmp_path / "runs" / "a"])
    assert [(Path(u.path).name, u.kind) for u in units] == [
        ("label_data.csv", UNIT_CSV),
        ("a", UNIT_RUN),
        ("b", UNIT_RUN),
        ("results.json", UNIT_JSON),
    ]
    with pytest.raises(BadInput, match="not found"):
        discover([tmp_path / "missing"])
    (tmp_path / "x.txt").write_text("")
    with pytest.raises(BadInput, match="unsupported input"):
        discover([tmp_path / "x.txt"])
