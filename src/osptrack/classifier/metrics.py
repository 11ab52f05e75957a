"""Precision, recall, F1, false-positive rate and ROC-AUC, with cluster-bootstrap intervals.

The bootstrap resamples packages (groups), not rows: versions of one package are not independent
draws, and resampling rows would give intervals narrower than the data supports.
"""

from __future__ import annotations

from typing import Any

import numpy as np

METRICS = ("precision", "recall", "f1", "fpr", "roc_auc")


def point(y: np.ndarray, score: np.ndarray, threshold: float = 0.5) -> dict[str, float | None]:
    pred = score >= threshold
    tp = int(np.sum(pred & (y == 1)))
    fp = int(np.sum(pred & (y == 0)))
    fn = int(np.sum(~pred & (y == 1)))
    tn = int(np.sum(~pred & (y == 0)))
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else None
    fpr = fp / (fp + tn) if fp + tn else None
    return {"precision": precision, "recall": recall, "f1": f1, "fpr": fpr, "roc_auc": _auc(y, score)}


def _auc(y: np.ndarray, score: np.ndarray) -> float | None:
    n1 = int(np.sum(y == 1))
    n0 = int(np.sum(y == 0))
    if not n1 or not n0:
        return None
    from scipy.stats import rankdata

    ranks = rankdata(score)  # average ranks: ties count one half
    return float((np.sum(ranks[y == 1]) - n1 * (n1 + 1) / 2) / (n1 * n0))


def confusion(y: np.ndarray, score: np.ndarray, threshold: float = 0.5) -> dict[str, int]:
    pred = score >= threshold
    return {
        "tp": int(np.sum(pred & (y == 1))),
        "fp": int(np.sum(pred & (y == 0))),
        "fn": int(np.sum(~pred & (y == 1))),
        "tn": int(np.sum(~pred & (y == 0))),
    }


def with_intervals(
    y: np.ndarray, score: np.ndarray, groups: np.ndarray, seed: int, reps: int = 1000, threshold: float = 0.5
) -> dict[str, Any]:
    """Point estimates and 95% percentile intervals from `reps` cluster-bootstrap resamples."""
    rng = np.random.default_rng(seed)
    uniq, inverse = np.unique(groups, return_inverse=True)
    members = [np.flatnonzero(inverse == g) for g in range(len(uniq))]
    samples: dict[str, list[float]] = {m: [] for m in METRICS}
    for _ in range(reps):
        pick = rng.integers(0, len(uniq), len(uniq))
        idx = np.concatenate([members[g] for g in pick])
        for k, v in point(y[idx], score[idx], threshold).items():
            if v is not None:
                samples[k].append(v)
    est = point(y, score, threshold)
    out: dict[str, Any] = {}
    for k in METRICS:
        s = samples[k]
        lo, hi = (float(np.percentile(s, 2.5)), float(np.percentile(s, 97.5))) if s else (None, None)
        out[k] = {"value": est[k], "ci95": [lo, hi]}
    out["confusion"] = confusion(y, score, threshold)
    out["rows"] = len(y)
    out["packages"] = len(uniq)
    out["threshold"] = threshold
    out["bootstrap"] = {"reps": reps, "unit": "package", "seed": seed}
    return out
