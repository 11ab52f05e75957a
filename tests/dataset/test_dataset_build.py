"""`dataset build` and `dataset stats` end to end on hand-made inputs (no sandbox)."""

from __future__ import annotations

import ast
import csv
import subprocess
import sys
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest
from dataset_helpers import TOOL_FILES, phase, result_doc, write_labels, write_run

from osptrack.dataset.build import CSV_COLUMNS, BuildOptions, build
from osptrack.dataset.model import PHASES
from osptrack.dataset.stats import compute_stats, write_plots
from osptrack.errors import BadInput

SSH = {"Path": "/root/.ssh/id_rsa", "Read": True, "Write": False, "Delete": False}
OSPTRACK_COLUMNS = [
    "Ecosystem", "Version", "Name", "import_Files", "import_Sockets", "import_Commands", "import_DNS",
    "install_Files", "install_Sockets", "install_Commands", "install_DNS", "Label", "Sub_Label",
]  # fmt: skip
V2_COLUMNS = ["Simulation_Source", "Analysis_Status", "Trace_Valid", "Timed_Out", "Local_Archive"]


def make_inputs(root: Path) -> tuple[list[Path], Path, Path]:
    """Local runs, an OpenSSF results file with old variants, and an OSPtrack CSV."""
    runs = root / "runs"
    write_run(runs / "evil", "pypi", "Evil_Pkg", "1.0.0",
              {"install": phase(TOOL_FILES + [SSH]), "import": phase(TOOL_FILES)})  # fmt: skip
    write_run(
        runs / "good", "pypi", "good", "2.0", {"install": phase(TOOL_FILES), "import": phase(TOOL_FILES)}
    )
    write_run(runs / "slow", "npm", "slowpoke", "1.0.0", {"install": phase(status="error_timeout")},
              timed_out=("install",))  # fmt: skip
    write_run(runs / "withdrawn", "npm", "fine", "3.0.0", {"install": phase()})
    results = root / "openssf.json"
    results.write_bytes(orjson.dumps([
        result_doc("npm", "@Evil/Thing", "v0.1.0", {"install": phase([SSH])}),
        result_doc("pypi", "noanalysis", "1.0", None),
    ]))  # fmt: skip
    table = root / "label_data.csv"
    with table.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(OSPTRACK_COLUMNS)
        w.writerow(
            ["pypi", "0.1", "old-evil", "[]", "[]", "[]", "[]", str([SSH]), "[]", "[]", "[]", "1", "C2"]
        )
    baseline = root / "baseline"
    write_run(baseline / "pypi-null", "pypi", "osptrack-null", "0.0.0",
              {"install": phase(TOOL_FILES), "import": phase(TOOL_FILES)})  # fmt: skip
    labels = write_labels(root / "labels.parquet", [
        {"id": "MAL-1", "ecosystem": "pypi", "name": "evil-pkg", "versions": ["1.0"], "sub_labels": ["c2"]},
        {"id": "MAL-2", "ecosystem": "npm", "name": "@evil/thing", "all_versions": True,
         "sub_labels": ["command_exec"], "source": "osv"},
        {"id": "MAL-3", "ecosystem": "npm", "name": "fine", "versions": ["3.0.0"], "withdrawn": True},
    ])  # fmt: skip
    return [runs, results, table], labels, baseline


def test_build_outputs_every_column(tmp_path: Path) -> None:
    inputs, labels, baseline = make_inputs(tmp_path)
    out = tmp_path / "out"
    summary = build(inputs, BuildOptions(labels=labels, out=out, baseline=baseline, workers=1))
    assert summary.reports == 7
    rows = pq.read_table(out / "dataset.parquet").to_pylist()
    by_name = {r["Name"]: r for r in rows}
    assert [r["Row"] for r in rows] == list(range(7))
    for p in PHASES:
        for kind in ("Files", "Sockets", "Commands", "DNS"):
            assert f"{p}_{kind}" in rows[0]

    evil = by_name["Evil_Pkg"]
    assert (evil["Label"], evil["Sub_Label"], evil["Sub_Labels"], evil["Label_Source"], evil["Label_Ids"]) == (
        1, "C2", ["c2"], "osv", ["MAL-1"]
    )  # fmt: skip
    assert evil["Simulation_Source"] == "osptrack" and evil["Trace_Valid"] is True
    assert evil["Name_Normalised"] == "evil-pkg" and evil["execute_Files"] is None
    assert [f["Noise"] for f in evil["install_Files"]] == [True] * len(TOOL_FILES) + [False]
    assert evil["install_Files"][-1]["Template"] == "<HOME>/.ssh/id_rsa"

    scoped = by_name["@Evil/Thing"]
    assert (scoped["Label"], scoped["Sub_Label"], scoped["Simulation_Source"]) == (
        1,
        "command exec",
        "openssf",
    )
    assert scoped["Trace_Valid"] is None and scoped["Created_Timestamp"] == 1764169200

    assert by_name["fine"]["Label"] == 0  # a withdrawn record never labels
    assert by_name["good"]["Label"] == 0 and by_name["good"]["Sub_Label"] == "na"
    slow = by_name["slowpoke"]
    assert (slow["Timed_Out"], slow["Analysis_Status"], slow["install_Status"], slow["import_Status"]) == (
        True, "error_timeout", "error_timeout", None
    )  # fmt: skip
    missing = by_name["noanalysis"]
    assert missing["Analysis_Status"] == "missing" and all(missing[f"{p}_Files"] is None for p in PHASES)
    old = by_name["old-evil"]
    assert (old["Label"], old["Sub_Label"], old["Label_Source"], old["Simulation_Source"]) == (
        1, "C2", "input", "osptrack_csv"
    )  # fmt: skip

    feats = pq.read_table(out / "features.parquet").to_pylist()
    assert [f["Name"] for f in feats] == [r["Name"] for r in rows]
    assert {f["Name"] for f in feats if f["install_read_ssh_n"]} == {"Evil_Pkg", "@Evil/Thing", "old-evil"}

    with (out / "label_data.csv").open(newline="") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == OSPTRACK_COLUMNS + V2_COLUMNS == CSV_COLUMNS
        csv_rows = list(reader)
    first = next(r for r in csv_rows if r["Name"] == "Evil_Pkg")
    files = ast.literal_eval(first["install_Files"])  # what the paper's notebooks do with a cell
    assert files[-1] == SSH and len(files) == len(TOOL_FILES) + 1  # raw records, noise included
    assert (first["Label"], first["Sub_Label"], first["Timed_Out"], first["Trace_Valid"]) == (
        "1",
        "C2",
        "False",
        "True",
    )
    assert next(r for r in csv_rows if r["Name"] == "noanalysis")["Analysis_Status"] == "missing"

    stats = orjson.loads((out / "build_stats.json").read_bytes())
    assert stats["reports"] == 7 and stats["by_label"] == {"0": 4, "1": 3}


def test_csv_output_reads_back_as_input(tmp_path: Path) -> None:
    inputs, labels, baseline = make_inputs(tmp_path)
    build(inputs, BuildOptions(labels=labels, out=tmp_path / "a", workers=1))
    build([tmp_path / "a" / "label_data.csv"], BuildOptions(labels=labels, out=tmp_path / "b", workers=1))
    a = pq.read_table(tmp_path / "a" / "features.parquet").to_pylist()
    b = pq.read_table(tmp_path / "b" / "features.parquet").to_pylist()
    for x, y in zip(a, b, strict=True):
        assert (x["Name"], x["Label"], x["install_files_raw_n"], x["install_read_ssh_n"]) == (
            y["Name"], y["Label"], y["install_files_raw_n"], y["install_read_ssh_n"]
        )  # fmt: skip


def test_unlabelled_as_unknown(tmp_path: Path) -> None:
    inputs, labels, _ = make_inputs(tmp_path)
    build(inputs, BuildOptions(labels=labels, out=tmp_path / "out", unlabelled_as="unknown", workers=1))
    rows = pq.read_table(tmp_path / "out" / "dataset.parquet", columns=["Name", "Label"]).to_pylist()
    assert {r["Name"]: r["Label"] for r in rows}["good"] is None
    assert {r["Name"]: r["Label"] for r in rows}["Evil_Pkg"] == 1
    stats = compute_stats(tmp_path / "out")
    assert ("pypi", "unknown", "na", 2) in stats.table2  # good and noanalysis


def test_build_is_idempotent_and_worker_count_does_not_matter(tmp_path: Path) -> None:
    inputs, labels, baseline = make_inputs(tmp_path)
    for run_dir in ("a", "b"):
        build(inputs, BuildOptions(labels=labels, out=tmp_path / run_dir, baseline=baseline, workers=1))
    build(list(reversed(inputs)),
          BuildOptions(labels=labels, out=tmp_path / "c", baseline=baseline, workers=2, chunk_size=2))  # fmt: skip
    for name in ("dataset.parquet", "features.parquet", "label_data.csv", "build_stats.json"):
        a = (tmp_path / "a" / name).read_bytes()
        assert a == (tmp_path / "b" / name).read_bytes(), name
        if name.endswith(".parquet"):  # chunking changes row groups, not content or order
            # (compared as JSON: NaN features would make Table.equals false even for equal tables)
            assert orjson.dumps(pq.read_table(tmp_path / "a" / name).to_pylist()) == orjson.dumps(
                pq.read_table(tmp_path / "c" / name).to_pylist()
            ), name
        else:
            assert a == (tmp_path / "c" / name).read_bytes(), name


def test_bad_input_writes_nothing(tmp_path: Path) -> None:
    inputs, labels, _ = make_inputs(tmp_path)
    (tmp_path / "runs" / "zz-broken").mkdir()
    (tmp_path / "runs" / "zz-broken" / "run.json").write_text("{not json")
    out = tmp_path / "out"
    with pytest.raises(BadInput, match="zz-broken"):
        build(inputs, BuildOptions(labels=labels, out=out, workers=1))
    assert not out.exists() or list(out.iterdir()) == []
    with pytest.raises(BadInput, match="labels file not found"):
        build(inputs, BuildOptions(labels=tmp_path / "nope.parquet", out=out))
    (tmp_path / "labels.txt").write_text("x")
    with pytest.raises(BadInput, match="labels"):
        build(inputs, BuildOptions(labels=tmp_path / "labels.txt", out=out))


def test_cli_build_and_stats(tmp_path: Path) -> None:
    inputs, labels, baseline = make_inputs(tmp_path)
    out = tmp_path / "out"

    def osptrack(*args: str) -> subprocess.CompletedProcess[str]:
        code = "from osptrack.cli import main; main()"
        return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)

    done = osptrack("dataset", "build", *map(str, inputs), "--labels", str(labels), "--out", str(out),
                    "--baseline", str(baseline), "--format", "parquet")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (out / "dataset.parquet").is_file() and not (out / "label_data.csv").exists()
    done = osptrack("dataset", "stats", str(out), "--plots", str(tmp_path / "plots"))
    assert done.returncode == 0, done.stderr
    assert "Table II" in done.stdout and "Noise reduction" in done.stdout
    assert sorted(p.name for p in (tmp_path / "plots").iterdir() if p.name != ".osptrack.json") == [
        "events_by_ecosystem.png", "events_by_label.png", "events_per_report.png", "noise_reduction.png",
        "table2.png",
    ]  # fmt: skip
    bad = osptrack("dataset", "build", str(tmp_path / "nowhere"), "--labels", str(labels), "--out", str(out))
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "input not found" in bad.stderr
    bad = osptrack("dataset", "build", *map(str, inputs), "--labels", str(labels), "--out", str(out),
                   "--unlabelled-as", "maybe")  # fmt: skip
    assert bad.returncode == 2 and "--unlabelled-as" in bad.stderr


def test_stats_figures(tmp_path: Path) -> None:
    inputs, labels, baseline = make_inputs(tmp_path)
    out = tmp_path / "out"
    build(inputs, BuildOptions(labels=labels, out=out, baseline=baseline, workers=1))
    stats = compute_stats(out)
    assert stats.reports == 7
    assert ("pypi", "malicious", "C2", 2) in stats.table2
    assert ("npm", "malicious", "command exec", 1) in stats.table2
    assert sum(n for *_, n in stats.table2) == 7
    files = next(k for k in stats.kinds if k.kind == "files")
    raw_total = (2 * len(TOOL_FILES) + 1) + 2 * len(TOOL_FILES) + 2  # evil, good, and two SSH-only rows
    assert files.mean_raw == pytest.approx((raw_total) / 7)
    per_report = stats.noise["per_report"]["files"]
    # Only the two pypi runs have a baseline: 4 toolchain phases of TOOL_FILES are removed.
    assert per_report["mean_after_baseline_and_templating"] == pytest.approx(
        (raw_total - 4 * len(TOOL_FILES)) / 7
    )
    assert files.mean_denoised == pytest.approx(per_report["mean_after_baseline_and_templating"])
    written = write_plots(stats, tmp_path / "plots")
    assert all(p.stat().st_size > 1000 for p in written)
    with pytest.raises(BadInput, match="dataset build"):
        compute_stats(tmp_path / "runs")


def test_csv_cells_are_exact_python_literals_for_awkward_paths(tmp_path: Path) -> None:
    awkward = ["/tmp/it's", '/tmp/say "hi"', "/tmp/back\\slash", "/tmp/é", "/tmp/tab\there", "/tmp/a,b\nc"]
    files = [
        {"Path": p, "Read": i % 2 == 0, "Write": i % 3 == 0, "Delete": i == 5} for i, p in enumerate(awkward)
    ]
    plain = [{"Path": "/usr/lib/x.py", "Read": True, "Write": False, "Delete": False}]
    write_run(tmp_path / "runs" / "a", "pypi", "a", "1", {"install": phase(files), "import": phase(plain)})
    labels = write_labels(tmp_path / "labels.parquet", [])
    build([tmp_path / "runs"], BuildOptions(labels=labels, out=tmp_path / "out", workers=1))
    with (tmp_path / "out" / "label_data.csv").open(newline="") as fh:
        (row,) = list(csv.DictReader(fh))
    assert row["install_Files"] == str(files) and ast.literal_eval(row["install_Files"]) == files
    assert row["import_Files"] == str(plain)


def test_skip_bad_counts_unreadable_inputs_and_keeps_the_rest(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    write_run(runs / "a-good", "pypi", "a", "1.0", {"install": phase([SSH])})
    write_run(runs / "b-bad-result", "pypi", "b", "1.0", {"install": phase()})
    (runs / "b-bad-result" / "result.json").write_bytes(b'{"Package": {"Name": "/root/\xff\xfe"}}')
    write_run(runs / "c-bad-run", "pypi", "c", "1.0", {"install": phase()})
    (runs / "c-bad-run" / "run.json").write_bytes(b"[]")
    (runs / "d.jsonl").write_bytes(
        orjson.dumps(result_doc("npm", "d1", "1", {}))
        + b'\n{"Package": 5}\n'
        + orjson.dumps(result_doc("npm", "d2", "1", {}))
    )
    labels = write_labels(tmp_path / "labels.parquet", [])
    with pytest.raises(BadInput, match="b-bad-result"):
        build([runs], BuildOptions(labels=labels, out=tmp_path / "strict", workers=1))
    for workers in (1, 2):
        out = tmp_path / f"out{workers}"
        summary = build(
            [runs], BuildOptions(labels=labels, out=out, workers=workers, chunk_size=1, skip_bad=True)
        )
        names = pq.read_table(out / "dataset.parquet", columns=["Name"]).column("Name").to_pylist()
        assert names == ["a", "d1", "d2"]
        stats = orjson.loads((out / "build_stats.json").read_bytes())
        assert summary.reports == 3 and stats["rejected"] == 3
        assert any("d.jsonl:2" in m for m in stats["rejected_examples"])
