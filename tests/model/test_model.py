"""`osptrack model train | evaluate` and the model-score finding, on small synthetic datasets."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from osptrack.classifier.finding import model_finding
from osptrack.classifier.train import train
from osptrack.dataset.build import BuildOptions, build
from osptrack.errors import BadInput
from osptrack.labels.table import labels_table
from synthetic_runs import SITE, make_run, tcp_flow

OSPTRACK = [sys.executable, "-m", "osptrack.cli"]


def _labels(path: Path, names: list[tuple[str, str]]) -> Path:
    rows = [
        {"id": f"T-{i}", "ecosystem": e, "name": n, "all_versions": True} for i, (e, n) in enumerate(names)
    ]
    pq.write_table(labels_table(rows), path)
    return path


def _evil(folder: Path, name: str, version: str, i: int) -> Path:
    host = f"c{i % 3}.evil-model.example"
    return make_run(
        folder,
        name,
        version,
        dns={"install": ["pypi.org", host]},
        files={
            "install": [
                (f"{SITE}/{name}/__init__.py", "w"),
                ("/root/.ssh/id_rsa", "r"),
                ("/root/.bashrc", "w"),
            ]
        },
        commands={"install": [["sh", "-c", "id"], ["uname", "-a"]][: 1 + i % 2]},
        sockets={"install": [("198.18.0.7", 443 if i % 2 else 4444, [host])]},
        flows=[tcp_flow(host)],
    )


def _benign(folder: Path, name: str, version: str, i: int) -> Path:
    files = [(f"{SITE}/{name}/__init__.py", "w"), (f"{SITE}/{name}/data{i % 4}.json", "w")]
    if i % 3 == 0:
        files.append(("/etc/os-release", "r"))
    return make_run(
        folder,
        name,
        version,
        dns={"install": ["pypi.org"]},
        files={"install": files},
        commands={"install": [["python3", "-m", "pip", "install", "."]]},
    )


def _dataset(root: Path, prefix: str, n_evil: int, n_benign: int, versions: int = 2) -> Path:
    runs = root / f"{prefix}runs"
    evil_names = []
    for i in range(n_evil):
        name = f"{prefix}evil{i}"
        evil_names.append(("pypi", name))
        for v in range(versions):
            _evil(runs / f"{name}-{v}", name, f"1.{v}", i)
    for i in range(n_benign):
        for v in range(versions):
            _benign(runs / f"{prefix}ok{i}-{v}", f"{prefix}ok{i}", f"2.{v}", i)
    out = root / f"{prefix}ds"
    build(
        [runs], BuildOptions(labels=_labels(root / f"{prefix}labels.parquet", evil_names), out=out, workers=1)
    )
    return out


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("model")
    return {"train": _dataset(root, "a", 8, 10), "held": _dataset(root, "b", 4, 5), "root": root}


def test_grouped_cv_reproducible_and_ablated(datasets: dict[str, Path], tmp_path: Path) -> None:
    meta = train(datasets["train"], tmp_path / "m1", seed=3, reps=50)
    assert meta["rows"] == 36 and meta["packages"] == 18 and meta["malicious"] == 16
    cv = meta["cv"]
    for k in ("precision", "recall", "f1", "fpr", "roc_auc"):
        lo, hi = cv[k]["ci95"]
        assert lo <= cv[k]["value"] <= hi, k
    # Clearly separable behaviour: the grouped CV must find it.
    assert cv["recall"]["value"] == 1.0 and cv["fpr"]["value"] == 0.0
    assert "cv_without_honeytokens" in meta and "bait_in_payload_n" not in json.dumps(
        meta["cv_without_honeytokens"]
    )
    with (tmp_path / "m1" / "cv_scores.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    folds_of: dict[str, set[str]] = {}
    for r in rows:
        folds_of.setdefault(r["group"], set()).add(r["fold"])
    assert all(len(f) == 1 for f in folds_of.values())  # versions never on both sides
    assert len({f for fs in folds_of.values() for f in fs}) == cv["folds"]
    again = train(datasets["train"], tmp_path / "m2", seed=3, reps=50)
    assert again["cv"] == cv
    assert (tmp_path / "m1" / "cv_scores.csv").read_text() == (tmp_path / "m2" / "cv_scores.csv").read_text()


def test_evaluate_held_out_and_cli(datasets: dict[str, Path], tmp_path: Path) -> None:
    model = tmp_path / "model"
    out = subprocess.run(
        [
            *OSPTRACK,
            "model",
            "train",
            str(datasets["train"]),
            "--out",
            str(model),
            "--seed",
            "1",
            "--bootstrap",
            "50",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "without honeytoken features" in out.stdout
    ev = subprocess.run(
        [*OSPTRACK, "model", "evaluate", str(model), str(datasets["held"]), "--json", "--bootstrap", "50"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ev.returncode == 0, ev.stderr
    res = json.loads(ev.stdout)
    assert res["metrics"]["rows"] == 18 and res["overlap_packages"] == 0
    assert res["metrics"]["recall"]["value"] == 1.0 and res["metrics"]["fpr"]["value"] == 0.0


def test_model_finding(datasets: dict[str, Path], tmp_path: Path) -> None:
    model = tmp_path / "model"
    train(datasets["train"], model, seed=0, reps=20)
    evil = _evil(tmp_path / "evil", "fresh-evil", "0.1", 1)
    finding = model_finding(evil, model)
    assert finding is not None and finding["rule"] == "model-score"
    assert finding["severity"] in ("low", "medium")  # never on its own a reason for malicious
    assert finding["evidence"], finding
    assert all(e["detail"]["score_drop"] > 0 for e in finding["evidence"])
    # It is a verdict Finding, and alone it never makes a run malicious.
    from osptrack.verdict import finding_from_dict
    from osptrack.verdict.levels import level_of

    as_finding = finding_from_dict(finding)
    assert as_finding.source == "model"
    assert level_of([as_finding]) in ("benign", "suspicious")
    assert level_of([finding_from_dict({**finding, "severity": "critical"})]) == "suspicious"
    assert model_finding(_benign(tmp_path / "ok", "fresh-ok", "0.1", 1), model) is None


def test_bad_input(datasets: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="not found"):
        train(tmp_path / "missing", tmp_path / "m")
    one_class = _dataset(tmp_path, "c", 0, 3)
    with pytest.raises(BadInput, match="at least 2 benign and 2 malicious"):
        train(one_class, tmp_path / "m")
    with pytest.raises(BadInput, match="--kind"):
        train(datasets["train"], tmp_path / "m", kind="forest")
    res = subprocess.run(
        [*OSPTRACK, "model", "evaluate", str(tmp_path), str(datasets["held"])],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 2 and "not a model folder" in res.stderr


def test_score_command_writes_the_model_finding_into_the_verdict(
    datasets: dict[str, Path], tmp_path: Path
) -> None:
    model = tmp_path / "model"
    train(datasets["train"], model, seed=0, reps=20)
    batch = tmp_path / "batch"
    evil = _evil(batch / "pypi" / "fresh-evil", "fresh-evil", "0.1", 1)
    ok = _benign(batch / "pypi" / "fresh-ok", "fresh-ok", "0.1", 1)
    res = subprocess.run(
        [*OSPTRACK, "model", "score", str(model), str(batch), "--write", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    rows = {Path(r["run"]).name: r for r in map(json.loads, res.stdout.splitlines())}
    assert set(rows) == {"fresh-evil", "fresh-ok"}
    assert rows["fresh-evil"]["finding"]["rule"] == "model-score" and rows["fresh-ok"]["finding"] is None
    assert rows["fresh-evil"]["score"] > rows["fresh-ok"]["score"]
    stored = json.loads((evil / "run.json").read_text())["verdict"]
    assert "model-score" in {f["rule"] for f in stored["findings"]}
    assert "model-score" not in {
        f["rule"] for f in json.loads((ok / "run.json").read_text())["verdict"]["findings"]
    }


def test_score_command_bad_input(datasets: dict[str, Path], tmp_path: Path) -> None:
    model = tmp_path / "model"
    train(datasets["train"], model, seed=0, reps=20)
    (tmp_path / "empty").mkdir()
    for args in (
        [str(model), str(tmp_path / "empty")],
        [str(model), str(tmp_path / "missing")],
        [str(tmp_path / "empty"), str(datasets["root"])],
        [str(model), str(datasets["root"]), "--threshold", "nan"],
    ):
        res = subprocess.run(
            [*OSPTRACK, "model", "score", *args], capture_output=True, text=True, timeout=120
        )
        assert res.returncode == 2, (args, res.stderr)
        assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr, res.stderr
