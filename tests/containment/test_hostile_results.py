"""Hostile result files read by the dataset importers: huge, deeply nested, wrong types, bad UTF-8.

A result file is as untrusted as a package: run folders come from sandboxes, OpenSSF results
and OSPtrack CSVs come from elsewhere. Each hostile record must be rejected (BadInput, one line)
or skipped, never crash the reader with another exception, and never take down the records
next to it. The twelve failures this suite first found (wrong types, bad UTF-8, non-object lines, a build
that stopped at the first bad unit) were fixed in the importers in 721a324.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from osptrack.dataset.build import BuildOptions, build
from osptrack.dataset.importers import (
    InputUnit,
    read_network_payloads,
    read_osptrack_csv,
    read_process_info,
    read_result_json,
    read_run_folder,
)
from osptrack.errors import BadInput

DEEP = 100_000  # nesting levels: past every JSON decoder's recursion limit
SLOW_S = 30.0


def good_result(name: str = "good") -> dict[str, Any]:
    phase = {
        "Status": "completed",
        "Stdout": "",
        "Stderr": "",
        "Files": [{"Path": "/root/x", "Read": True, "Write": False, "Delete": False}],
        "Sockets": [],
        "Commands": [],
        "DNS": [],
    }
    return {"Package": {"Ecosystem": "pypi", "Name": name, "Version": "1.0"}, "CreatedTimestamp": 1764169200,
            "Analysis": {"install": phase}}  # fmt: skip


def good_run_json(name: str = "good") -> dict[str, Any]:
    return {
        "tool": {"name": "osptrack", "version": "0.1.0"},
        "package": {"ecosystem": "pypi", "name": name, "version": "1.0", "archive": f"{name}-1.0.whl"},
        "honeytokens": [{"kind": "aws_secret_access_key", "value": "AKIAHONEY", "planted": []}],
        "phases": {"install": {"status": "completed", "wall_s": 1.0, "timed_out": False}},
        "exfiltration": [],
        "bait_reads": [],
        "trace": {"valid": True, "events": 0},
    }


def write_run(folder: Path, result: bytes | None = None, run: bytes | None = None, events: bytes = b"",
              network: bytes = b"") -> Path:  # fmt: skip
    folder.mkdir(parents=True)
    (folder / "result.json").write_bytes(
        result if result is not None else orjson.dumps(good_result(folder.name))
    )
    (folder / "events.jsonl").write_bytes(events)
    (folder / "network.jsonl").write_bytes(network)
    (folder / "run.json").write_bytes(run if run is not None else orjson.dumps(good_run_json(folder.name)))
    return folder


def replace_in(doc: dict[str, Any], path: str, value: Any) -> bytes:
    """`doc` with the value at dotted `path` replaced, as JSON bytes."""
    node = doc
    keys = path.split(".")
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = value
    return orjson.dumps(doc)


def deep(n: int = DEEP) -> str:
    return "[" * n + "]" * n


def outcome(fn: Callable[[], Any]) -> str:
    """'ok', 'rejected' (BadInput, one line) or 'crash: <exception>'."""
    t0 = time.monotonic()
    try:
        value = fn()
        if hasattr(value, "__next__"):
            list(value)
        result = "ok"
    except BadInput as exc:
        result = "rejected" if "\n" not in str(exc) else f"crash: multi-line BadInput {exc!r}"
    except Exception as exc:  # noqa: BLE001 - any other exception is the finding
        result = f"crash: {type(exc).__name__}: {str(exc)[:200]}"
    assert time.monotonic() - t0 < SLOW_S, "the reader took too long"
    return result


HUGE_STDOUT = base64.b64encode(b"x" * (30 << 20)).decode()  # a 40 MB result.json

RESULT_CASES = [
    pytest.param("huge_stdout", lambda: replace_in(good_result(), "Analysis.install.Stdout", HUGE_STDOUT), id="huge"),
    pytest.param("huge_files", lambda: replace_in(good_result(), "Analysis.install.Files", [
        {"Path": f"/f/{i}", "Read": True, "Write": False, "Delete": False} for i in range(300_000)]), id="huge-files"),
    pytest.param("deep", lambda: orjson.dumps(good_result()).replace(b'"Files":[', b'"Files":[' + deep().encode() + b","),
                 id="deep"),
    pytest.param("files_string", lambda: replace_in(good_result(), "Analysis.install.Files", "x"), id="files-str"),
    pytest.param("status_int", lambda: replace_in(good_result(), "Analysis.install.Status", 5), id="status-int"),
    pytest.param("name_list", lambda: replace_in(good_result(), "Package.Name", [1]), id="name-list"),
    pytest.param("analysis_list", lambda: replace_in(good_result(), "Analysis", [1, 2]), id="analysis-list"),
    pytest.param("timestamp_str", lambda: replace_in(good_result(), "CreatedTimestamp", "soon"), id="ts-str"),
    pytest.param("bad_utf8", lambda: orjson.dumps(good_result()).replace(b"/root/x", b"/root/\xff\xfe"), id="utf8"),
    pytest.param("not_json", lambda: b"\x00\x01garbage", id="garbage"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "make"), RESULT_CASES)
def test_hostile_result_json_in_a_run_folder(tmp_path: Path, case: str, make: Callable[[], bytes]) -> None:
    folder = write_run(tmp_path / "run", result=make())
    assert outcome(lambda: read_run_folder(folder)) in ("ok", "rejected")


@pytest.mark.parametrize(("case", "make"), RESULT_CASES)
def test_hostile_openssf_result_file(tmp_path: Path, case: str, make: Callable[[], bytes]) -> None:
    path = tmp_path / "result.json"
    path.write_bytes(make())
    assert outcome(lambda: read_result_json(path)) in ("ok", "rejected")


RUN_JSON_CASES = [
    pytest.param(deep().encode(), id="deep"),
    pytest.param(b'{"package": {"name": "\xff"}}', id="utf8"),
    pytest.param(replace_in(good_run_json(), "trace", [1]), id="trace-list"),
    pytest.param(replace_in(good_run_json(), "phases", [1, 2]), id="phases-list"),
    pytest.param(replace_in(good_run_json(), "package", "pypi"), id="package-str"),
    pytest.param(replace_in(good_run_json(), "honeytokens", "AKIA"), id="honeytokens-str"),
    pytest.param(replace_in(good_run_json(), "phases.install.wall_s", "slow"), id="wall-str"),
    pytest.param(b"[]", id="top-list"),
]  # fmt: skip


@pytest.mark.parametrize("run_json", RUN_JSON_CASES)
def test_hostile_run_json(tmp_path: Path, run_json: bytes) -> None:
    folder = write_run(tmp_path / "run", run=run_json)
    assert outcome(lambda: read_run_folder(folder)) in ("ok", "rejected")


EVENT_LINES = [
    pytest.param(b"[1, 2]\n", id="list-line"),
    pytest.param(b'"process"\n', id="string-line"),
    pytest.param(deep(5000).encode().replace(b"[", b'["process",', 1) + b"\n", id="deep"),
    pytest.param(b'{"kind": "process", "pid": "1", "op": "exec", "t": "x"}\n', id="wrong-types"),
    pytest.param(b'{"kind": "process", "pid": 1, "op": "clone", "child_pid": 2, "t": 1}\n' * 3 +
                 b'{"kind": "process", "pid": 2, "ppid": 1, "op": "exit", "t": 2}\n', id="ok-lines"),
    pytest.param(b'{"kind": "process", "pid": 1, "op": "\xff\xfe"}\n', id="utf8"),
    pytest.param(b'{"kind": "file", "op": "chmod", "args": [["0755"]], "errno": null, "pid": 1}\n', id="chmod-args"),
]  # fmt: skip


@pytest.mark.parametrize("lines", EVENT_LINES)
def test_hostile_events_jsonl(tmp_path: Path, lines: bytes) -> None:
    path = tmp_path / "events.jsonl"
    good = b'{"kind": "process", "pid": 7, "op": "exec", "t": 1.0}\n'
    path.write_bytes(good + lines + good)
    assert outcome(lambda: read_process_info(path)) in ("ok", "rejected")


NETWORK_LINES = [
    pytest.param(b'{"first_bytes": 12345}\n', id="first-bytes-int"),
    pytest.param(b"[1]\n", id="list-line"),
    pytest.param(b'{"kind": "dns", "qname": {"a": 1}}\n', id="qname-dict"),
    pytest.param(b'{"http": {"path": 5, "host": null}}\n', id="http-types"),
    pytest.param(b'{"first_bytes": "\xff\xfe"}\n', id="utf8"),
    pytest.param(deep(5000).encode() + b"\n", id="deep"),
]  # fmt: skip


@pytest.mark.parametrize("lines", NETWORK_LINES)
def test_hostile_network_jsonl(tmp_path: Path, lines: bytes) -> None:
    path = tmp_path / "network.jsonl"
    good = orjson.dumps({"kind": "tcp", "first_bytes": base64.b64encode(b"GET /").decode()}) + b"\n"
    path.write_bytes(good + lines + good)
    assert outcome(lambda: read_network_payloads(path)) in ("ok", "rejected")


CSV_HEADER = "Ecosystem,Name,Version,install_Files,install_Sockets,install_Commands,install_DNS,Label\n"

CSV_ROWS = [
    pytest.param(b'pypi,x,1.0,"' + deep(3000).encode() + b'",[],[],[],1\n', id="deep-cell"),
    pytest.param(b'pypi,x,1.0,"[1, 2]",[],[],[],1\n', id="wrong-types"),
    pytest.param(b'pypi,x,1.0,"{\'a\': 1}",[],[],[],1\n', id="dict-cell"),
    pytest.param(b"pypi,x\xff\xfe,1.0,[],[],[],[],1\n", id="utf8"),
    pytest.param(b'pypi,x,1.0,"' + b"[" + b"0," * 2_000_000 + b'0]",[],[],[],1\n', id="huge-cell"),
]  # fmt: skip


@pytest.mark.parametrize("row", CSV_ROWS)
def test_hostile_osptrack_csv(tmp_path: Path, row: bytes) -> None:
    path = tmp_path / "label_data.csv"
    path.write_bytes(CSV_HEADER.encode() + b"pypi,ok,1.0,[],[],[],[],0\n" + row)
    assert outcome(lambda: list(read_osptrack_csv(path))) in ("ok", "rejected")


# ---------------------------------------------------------------- the others survive, with a count


def test_hostile_units_are_counted_and_the_good_ones_survive(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from osptrack.labels.table import LABEL_SCHEMA  # a valid, empty labels table

    labels = tmp_path / "labels.parquet"
    pq.write_table(
        pa.table({f.name: pa.array([], type=f.type) for f in LABEL_SCHEMA}, schema=LABEL_SCHEMA), labels
    )
    runs = tmp_path / "runs"
    write_run(runs / "a-good")
    write_run(runs / "b-good")
    write_run(runs / "c-deep", result=deep().encode())
    write_run(runs / "d-types", result=replace_in(good_result(), "Analysis.install.Files", "x"))
    write_run(runs / "e-utf8", run=b'{"package": "\xff"}')
    (runs / "f-results.jsonl").write_bytes(
        orjson.dumps(good_result("f1"))
        + b"\n"
        + b'{"Package": 5}\n'
        + orjson.dumps(good_result("f2"))
        + b"\n"
    )
    # Default: a bad input stops the build (nothing half-written); --skip-bad counts and goes on.
    with pytest.raises(BadInput):
        build([runs], BuildOptions(labels=labels, out=tmp_path / "strict", workers=1))
    summary = build([runs], BuildOptions(labels=labels, out=tmp_path / "out", workers=1, skip_bad=True))
    stats = json.loads((tmp_path / "out" / "build_stats.json").read_text())
    assert summary.reports == 4  # a-good, b-good, f1, f2
    assert stats["rejected"] == 4  # c-deep, d-types, e-utf8, the bad line of f-results.jsonl


def test_input_unit_kinds_are_stable() -> None:
    """The API this suite was written against (guards against a silent rename)."""
    assert InputUnit("x", "run").kind == "run"
