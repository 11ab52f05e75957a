"""Grouped cross-validation, the final fit, and the saved model folder.

Folds are StratifiedGroupKFold over packages (`<ecosystem>/<normalised name>`), so every version
of a package sits on one side only: a model that memorised `evil-pkg 1.0` is not credited for
recognising `evil-pkg 1.1`. Everything random takes the one seed, so a run is reproducible.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from osptrack.classifier.data import HONEYTOKEN_FEATURES, Matrix, load, without
from osptrack.classifier.metrics import with_intervals
from osptrack.errors import BadInput
from osptrack.jsonio import atomic_write_json

KINDS = ("hgb", "logreg")
MODEL_FILE = "model.pkl"
META_FILE = "model.json"


def make_estimator(kind: str, seed: int) -> Any:
    if kind == "hgb":
        from sklearn.ensemble import HistGradientBoostingClassifier

        # Small trees and L2: the datasets here are hundreds of rows, not millions. NaN (imported
        # results cannot tell) is handled natively by the histogram splits.
        return HistGradientBoostingClassifier(
            max_iter=200,
            learning_rate=0.08,
            max_leaf_nodes=15,
            min_samples_leaf=5,
            l2_regularization=1.0,
            class_weight="balanced",
            random_state=seed,
        )
    if kind == "logreg":
        from sklearn.impute import SimpleImputer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import FunctionTransformer, StandardScaler

        # Counts are heavy-tailed (4,000 file records next to 1 DNS name): log1p, then scale.
        return make_pipeline(
            SimpleImputer(strategy="constant", fill_value=0.0),
            FunctionTransformer(_log1p),
            StandardScaler(),
            LogisticRegression(C=0.5, class_weight="balanced", max_iter=5000, random_state=seed),
        )
    raise BadInput(f"--kind must be one of {', '.join(KINDS)}, not {kind!r}")


def _log1p(x: np.ndarray) -> np.ndarray:
    return np.log1p(np.clip(x, 0, None))


@dataclass
class CVResult:
    scores: np.ndarray  # out-of-fold score per row
    folds: np.ndarray  # fold index per row
    metrics: dict[str, Any]


def cross_validate(m: Matrix, kind: str, seed: int, folds: int, reps: int = 1000) -> CVResult:
    from sklearn.model_selection import StratifiedGroupKFold

    classes = {c: len(set(m.groups[m.y == c])) for c in (0, 1)}
    k = min(folds, classes[0], classes[1])
    if k < 2:
        raise BadInput(
            f"grouped cross-validation needs at least 2 benign and 2 malicious packages, "
            f"have {classes[0]} and {classes[1]}"
        )
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    scores = np.full(len(m.y), np.nan)
    fold_of = np.full(len(m.y), -1)
    for i, (train, test) in enumerate(splitter.split(m.X, m.y, m.groups)):
        # The property the folds exist for: no package on both sides.
        assert not set(m.groups[train]) & set(m.groups[test])
        est = make_estimator(kind, seed)
        est.fit(m.X[train], m.y[train])
        scores[test] = est.predict_proba(m.X[test])[:, 1]
        fold_of[test] = i
    metrics = with_intervals(m.y, scores, m.groups, seed, reps)
    metrics["folds"] = k
    return CVResult(scores, fold_of, metrics)


def _importance(est: Any, m: Matrix, seed: int, top: int = 15, repeats: int = 3) -> list[dict[str, Any]]:
    """Permutation importance (drop in training ROC-AUC), over the columns that vary at all:
    most features are zero in every run, and permuting a constant changes nothing."""
    from osptrack.classifier.metrics import point

    if len(set(m.y)) < 2:
        return []
    rng = np.random.default_rng(seed)
    base = point(m.y, est.predict_proba(m.X)[:, 1])["roc_auc"] or 0.0
    drops = []
    for i in range(m.X.shape[1]):
        col = m.X[:, i]
        if np.all(np.isnan(col)) or np.nanmin(col) == np.nanmax(col):
            continue
        lost = []
        for _ in range(repeats):
            probe = m.X.copy()
            probe[:, i] = rng.permutation(col)
            lost.append(base - (point(m.y, est.predict_proba(probe)[:, 1])["roc_auc"] or 0.0))
        drops.append((float(np.mean(lost)), m.features[i]))
    drops.sort(key=lambda d: (-d[0], d[1]))
    return [{"feature": f, "auc_drop": round(d, 5)} for d, f in drops[:top] if d > 0]


def single_threaded() -> Any:
    """OpenMP on a shared 2-core machine: 34 s per fit with all threads, 1.5 s with one.

    threadpoolctl only limits libraries already loaded, so sklearn's OpenMP runtime and
    scipy's BLAS are loaded first."""
    import scipy.linalg  # noqa: F401
    import sklearn.ensemble  # noqa: F401
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1)


def train(
    dataset: Path, out: Path, seed: int = 0, kind: str = "hgb", folds: int = 5, reps: int = 1000
) -> dict[str, Any]:
    """Cross-validate (with and without the honeytoken features), fit on all rows, save to `out`."""
    with single_threaded():
        return _train(dataset, out, seed, kind, folds, reps)


def _train(dataset: Path, out: Path, seed: int, kind: str, folds: int, reps: int) -> dict[str, Any]:
    import sklearn

    if out.exists() and not out.is_dir():
        raise BadInput(f"--out {out} exists and is not a folder")
    make_estimator(kind, seed)  # validates kind before any work
    m = load(dataset)
    cv = cross_validate(m, kind, seed, folds, reps)
    ablated = without(m, HONEYTOKEN_FEATURES)
    cv_ablated = cross_validate(ablated, kind, seed, folds, reps)
    est = make_estimator(kind, seed)
    est.fit(m.X, m.y)
    benign = m.X[m.y == 0]
    with np.errstate(all="ignore"):
        reference = np.nanmedian(benign, axis=0)
    reference = np.where(np.isnan(reference), 0.0, reference)
    meta: dict[str, Any] = {
        "tool": "osptrack",
        "kind": kind,
        "seed": seed,
        "sklearn": sklearn.__version__,
        "dataset": str(dataset.resolve()),
        "rows": int(len(m.y)),
        "malicious": int(m.y.sum()),
        "benign": int(len(m.y) - m.y.sum()),
        "packages": int(len(set(m.groups))),
        "features": m.features,
        "honeytoken_features": list(HONEYTOKEN_FEATURES),
        "cv": cv.metrics,
        "cv_without_honeytokens": cv_ablated.metrics,
        "importance": _importance(est, m, seed),
        # So `evaluate` can say whether a "held-out" dataset shares packages with training.
        "groups": sorted(set(m.groups.tolist())),
    }
    out.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".model-", dir=out)
    with os.fdopen(fd, "wb") as fh:
        pickle.dump({"estimator": est, "features": m.features, "reference": reference, "kind": kind}, fh)
    os.replace(tmp, out / MODEL_FILE)
    atomic_write_json(out / META_FILE, meta)
    _write_oof(out / "cv_scores.csv", m, cv)
    return meta


def _write_oof(path: Path, m: Matrix, cv: CVResult) -> None:
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["package", "group", "label", "fold", "score"])
    for name, g, y, f, s in zip(m.names, m.groups, m.y, cv.folds, cv.scores, strict=True):
        w.writerow([name, g, int(y), int(f), f"{s:.6f}"])
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(buf.getvalue())
    tmp.replace(path)


@dataclass
class LoadedModel:
    estimator: Any
    features: list[str]
    reference: np.ndarray  # per-feature benign median: the "nothing unusual" value for explanations
    meta: dict[str, Any]


def load_model(folder: Path) -> LoadedModel:
    """Loads a model folder written by `train`. It is a pickle: only load models you made."""
    import orjson

    try:
        meta = orjson.loads((folder / META_FILE).read_bytes())
        with (folder / MODEL_FILE).open("rb") as fh:
            blob = pickle.load(fh)  # noqa: S301 (our own file; documented)
    except (OSError, orjson.JSONDecodeError, pickle.UnpicklingError, EOFError) as exc:
        raise BadInput(f"{folder}: not a model folder from `osptrack model train` ({exc})") from None
    return LoadedModel(blob["estimator"], list(blob["features"]), np.asarray(blob["reference"]), meta)


def explain(model: LoadedModel, x: np.ndarray, top: int = 5) -> list[dict[str, Any]]:
    """The features that drove one row's score: set each unusual feature back to the benign median
    and see how far the score falls (occlusion; works for any model, exact for none)."""
    base = float(model.estimator.predict_proba(x[None, :])[0, 1])
    changed = [i for i in range(len(x)) if not np.isnan(x[i]) and x[i] != model.reference[i]]
    if not changed:
        return []
    probe = np.repeat(x[None, :], len(changed), axis=0)
    for row, i in enumerate(changed):
        probe[row, i] = model.reference[i]
    drops = base - model.estimator.predict_proba(probe)[:, 1]
    order = np.argsort(-drops)[:top]
    return [
        {
            "feature": model.features[changed[j]],
            "value": float(x[changed[j]]),
            "benign_median": float(model.reference[changed[j]]),
            "score_drop": round(float(drops[j]), 4),
        }
        for j in order
        if drops[j] > 0
    ]


def evaluate(model_dir: Path, dataset: Path, seed: int = 0, reps: int = 1000) -> dict[str, Any]:
    model = load_model(model_dir)
    m = load(dataset, features=model.features)
    with single_threaded():
        scores = model.estimator.predict_proba(m.X)[:, 1]
    metrics = with_intervals(m.y, scores, m.groups, seed, reps)
    trained_on = set(np.unique(np.asarray(model.meta.get("groups", []), dtype=str)))
    return {
        "model": str(model_dir),
        "dataset": str(dataset.resolve()),
        "metrics": metrics,
        "overlap_packages": len(trained_on & set(m.groups)),
    }
