"""The model's score as one verdict finding, for the verdict engine to take or leave.

The score is never a reason for `malicious` on its own: the finding's severity is `low` (`medium`
for a very high score), and the verdict's level rule must require a behavioural finding too.
Features are computed by the dataset builder itself (on a one-run dataset in a temp folder), so
they are exactly what the model was trained on; pass the same `--baseline` the training dataset
was built with, or the counts include toolchain noise the model never saw.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

RULE_ID = "model-score"


def run_features(run_dir: Path, features: list[str], baseline: Path | None = None) -> np.ndarray:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from osptrack.classifier.data import load
    from osptrack.dataset.build import BuildOptions, build
    from osptrack.labels.table import LABEL_SCHEMA

    with tempfile.TemporaryDirectory(prefix="osptrack-model-") as tmp:
        labels = Path(tmp) / "labels.parquet"
        pq.write_table(pa.Table.from_pylist([], schema=LABEL_SCHEMA), labels)
        out = Path(tmp) / "ds"
        build(
            [run_dir],
            BuildOptions(labels=labels, out=out, baseline=baseline, formats=("parquet",), workers=1),
        )
        return load(out, features=features, need_labels=False).X[0]


def score_run(run_dir: Path, model: Any, baseline: Path | None = None) -> tuple[float, np.ndarray]:
    """The model's malicious-class probability for one run folder, and the feature row it saw."""
    x = run_features(run_dir, model.features, baseline)
    return float(model.estimator.predict_proba(x[None, :])[0, 1]), x


def model_finding(
    run_dir: Path, model_dir: Path, baseline: Path | None = None, threshold: float = 0.5
) -> dict[str, Any] | None:
    """A finding when the model scores the run at or above `threshold`, else None."""
    from osptrack.classifier.train import load_model

    model = load_model(model_dir)
    score, x = score_run(run_dir, model, baseline)
    if score < threshold:
        return None
    return finding_for(model, model_dir, score, x, threshold)


def finding_for(model: Any, model_dir: Path, score: float, x: np.ndarray, threshold: float) -> dict[str, Any]:
    from osptrack.classifier.train import explain

    top = explain(model, x)
    names = ", ".join(t["feature"] for t in top[:3]) or "no single feature"
    cv_f1 = ((model.meta.get("cv") or {}).get("f1") or {}).get("value")
    evidence = [
        {
            "type": "fact",
            "summary": (
                f"{t['feature']} = {t['value']:g} (benign median {t['benign_median']:g}); "
                f"resetting it lowers the score by {t['score_drop']:.2f}"
            ),
            "ref": "fact:model",
            "detail": t,
        }
        for t in top
    ]
    # The shape of osptrack.verdict.Finding (source "model"): the level rule there lets a model
    # finding make a run suspicious at most, never malicious.
    return {
        "rule": RULE_ID,
        "title": f"classifier score {score:.2f} (driven by {names})",
        "severity": "medium" if score >= 0.9 else "low",
        "phase": "run",
        "evidence": evidence,
        "evidence_total": len(evidence),
        "tags": ["model", str(model.meta.get("kind"))],
        "source": "model",
        "score": round(score, 4),
        "model": {"path": str(model_dir), "threshold": threshold, "cv_f1": cv_f1},
    }
