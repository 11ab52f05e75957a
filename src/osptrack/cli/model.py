"""`osptrack model train | evaluate`: commands only; the logic is in osptrack.classifier."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import orjson

from osptrack.cli import params
from osptrack.cli.base import Group, LazyConsole
from osptrack.errors import BadInput

if TYPE_CHECKING:
    from rich.table import Table


@click.group("model", cls=Group)
def app() -> None:
    """Train and evaluate a classifier on a dataset."""


console = LazyConsole(highlight=False)


def _fmt(m: dict[str, Any]) -> str:
    v, (lo, hi) = m["value"], m["ci95"]
    if v is None:
        return "n/a"
    return f"{v:.3f} [{lo:.3f}, {hi:.3f}]" if lo is not None else f"{v:.3f}"


def _metrics_table(title: str, blocks: dict[str, dict[str, Any]]) -> Table:
    from rich.table import Table

    from osptrack.classifier.metrics import METRICS

    t = Table(title=title)
    t.add_column("")
    for name in blocks:
        t.add_column(name, justify="right")
    for k in METRICS:
        t.add_row(k, *(_fmt(b[k]) for b in blocks.values()))
    t.add_row(
        "tp/fp/fn/tn",
        *("/".join(str(b["confusion"][c]) for c in ("tp", "fp", "fn", "tn")) for b in blocks.values()),
    )
    t.add_row("rows / packages", *(f"{b['rows']} / {b['packages']}" for b in blocks.values()))
    return t


@app.command("train")
@params.argument("dataset", "Folder written by `osptrack dataset build` (with labels)", type=params.PATH)
@params.out("Model folder to write")
@params.seed("Seed for folds, model and bootstrap")
@click.option("--kind", default="hgb", help="hgb (gradient boosting) or logreg")
@click.option("--folds", type=int, default=5, help="Grouped cross-validation folds")
@params.bootstrap("Bootstrap resamples for the intervals")
@params.json_out("Print model.json instead of tables")
def train_command(
    dataset: Path, out: Path, seed: int, kind: str, folds: int, bootstrap: int, json_out: bool
) -> None:
    """Grouped cross-validation by package (with and without honeytoken features), then fit and save."""
    from osptrack.classifier.train import train
    from osptrack.outputs import check_output_dir, claim_output_dir

    if folds < 2 or bootstrap < 1:
        raise BadInput("--folds must be at least 2 and --bootstrap at least 1")
    check_output_dir(out, "model")  # new, empty or an earlier model folder (docs/cli.md)
    meta = train(dataset, out, seed=seed, kind=kind, folds=folds, reps=bootstrap)
    claim_output_dir(out, "model")
    if json_out:
        console.print_json(orjson.dumps({k: v for k, v in meta.items() if k != "groups"}).decode())
        return
    console.print(
        f"{meta['rows']} runs ({meta['malicious']} malicious, {meta['benign']} benign) in {meta['packages']} "
        f"packages; {meta['cv']['folds']}-fold grouped CV, {kind}, seed {seed}; 95% package-bootstrap intervals"
    )
    console.print(
        _metrics_table(
            "cross-validated",
            {"all features": meta["cv"], "without honeytoken features": meta["cv_without_honeytokens"]},
        )
    )
    if meta["importance"]:
        console.print(
            "top features (permutation AUC drop): "
            + ", ".join(f"{i['feature']} {i['auc_drop']:.3f}" for i in meta["importance"][:8])
        )
    console.print(f"wrote {out}/model.pkl, model.json, cv_scores.csv")


@app.command("evaluate")
@params.argument("model", "Model folder from `osptrack model train`", type=params.PATH)
@params.argument("dataset", "A held-out dataset folder (with labels)", type=params.PATH)
@params.seed("Bootstrap seed")
@params.bootstrap("Bootstrap resamples")
@params.json_out("Print JSON")
def evaluate_command(model: Path, dataset: Path, seed: int, bootstrap: int, json_out: bool) -> None:
    """Score a held-out dataset with a trained model: precision, recall, F1, FPR, ROC-AUC with intervals."""
    from osptrack.classifier.train import evaluate

    if bootstrap < 1:
        raise BadInput("--bootstrap must be at least 1")
    res = evaluate(model, dataset, seed=seed, reps=bootstrap)
    if json_out:
        console.print_json(orjson.dumps(res).decode())
        return
    console.print(_metrics_table(f"held-out: {dataset}", {"model": res["metrics"]}))
    if res["overlap_packages"]:
        console.print(
            f"warning: {res['overlap_packages']} package(s) of this dataset were in the training set"
        )


@app.command("score")
@params.argument("model", "Model folder from `osptrack model train`", type=params.PATH)
@params.argument(
    "runs", "Run folders, or batch folders holding them", type=params.PATH, nargs=-1, required=True
)
@params.optional_path("--baseline", "The --baseline the training dataset was built with")
@click.option("--threshold", type=float, default=0.5, help="Score at which the run gets a model finding")
@click.option("--write", is_flag=True, help="Re-judge each run.json's verdict with the model finding")
@params.json_out("Print JSON lines")
def score_command(
    model: Path,
    runs: tuple[Path, ...],
    baseline: Path | None,
    threshold: float,
    write: bool,
    json_out: bool,
) -> None:
    """Score runs with a trained model; the score is one more verdict finding, never alone malicious."""
    from rich.table import Table

    from osptrack.classifier.finding import finding_for, score_run
    from osptrack.classifier.train import load_model
    from osptrack.report.index import run_folders
    from osptrack.verdict import rejudge_run_dir

    if not 0.0 < threshold <= 1.0:
        raise BadInput("--threshold must be in (0, 1]")
    folders: list[Path] = []
    batches: list[Path] = []  # their index.html is refreshed after --write
    for path in runs:
        if (path / "run.json").is_file():
            folders.append(path)
        elif path.is_dir() and (found := run_folders(path)):
            folders.extend(found)
            batches.append(path)
        else:
            raise BadInput(f"{path}: not a run folder nor a folder of runs (no run.json)")
    loaded = load_model(model)  # refused before any run is touched
    table = Table(title=f"model {model}")
    for col in ("run", "score", "finding", "verdict"):
        table.add_column(col)
    for folder in folders:
        score, x = score_run(folder, loaded, baseline)
        finding = finding_for(loaded, model, score, x, threshold) if score >= threshold else None
        level = rejudge_run_dir(folder, [finding] if finding else []).level if write else None
        if json_out:
            row = {"run": str(folder), "score": round(score, 4), "finding": finding, "verdict": level}
            click.echo(orjson.dumps(row).decode())
        else:
            table.add_row(str(folder), f"{score:.2f}", finding["title"] if finding else "", level or "")
    if write:
        from osptrack.report.index import write_index

        for batch in batches:
            if (batch / "index.html").is_file():
                write_index(batch)
    if not json_out:
        console.print(table)
