"""The training matrix: features.parquet rows with a label, and the package each belongs to."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from osptrack.dataset.features import FEATURE_NAMES
from osptrack.errors import BadInput

# Features that exist only because the sandbox plants honeytokens: a model leaning on them learns
# "the bait was touched", which no OpenSSF-style dataset without baits can offer. The ablation
# without them shows how much the rest of the behaviour carries.
HONEYTOKEN_FEATURES = ("bait_in_payload_n", "exfiltration_n", "bait_reads_n")


@dataclass
class Matrix:
    X: np.ndarray  # float64; -1 where the source cannot tell (NaN in features.parquet)
    y: np.ndarray  # int 0/1
    groups: np.ndarray  # "<ecosystem>/<normalised name>": versions of a package share a group
    features: list[str]
    names: list[str]  # "<ecosystem>/<name>@<version>" per row, for reports


def _read(path: Path, columns: list[str] | None = None) -> pa.Table:
    if not path.is_file():
        raise BadInput(f"{path} not found: give a folder written by `osptrack dataset build`")
    try:
        return pq.read_table(path, columns=columns)
    except (pa.ArrowInvalid, OSError, KeyError) as exc:
        raise BadInput(f"{path}: not a dataset file ({exc})") from None


def load(folder: Path, features: list[str] | None = None, need_labels: bool = True) -> Matrix:
    """Rows with a Label (unknown labels are dropped); `features` fixes the columns (evaluate)."""
    feats = _read(folder / "features.parquet")
    meta = _read(folder / "dataset.parquet", ["Row", "Ecosystem", "Name_Normalised", "Name", "Version"])
    if feats.num_rows != meta.num_rows:
        raise BadInput(f"{folder}: features.parquet and dataset.parquet disagree on the row count")
    wanted = features if features is not None else [n for n in FEATURE_NAMES if n in feats.column_names]
    missing = [n for n in wanted if n not in feats.column_names]
    if missing:
        raise BadInput(f"{folder}: features.parquet lacks {len(missing)} model feature(s), e.g. {missing[0]}")
    labels = feats.column("Label").to_pylist() if "Label" in feats.column_names else [None] * feats.num_rows
    keep = [i for i, v in enumerate(labels) if v is not None] if need_labels else list(range(feats.num_rows))
    if need_labels and not keep:
        raise BadInput(f"{folder}: no labelled rows (build it with --labels and --unlabelled-as benign)")
    X = (
        np.column_stack(
            [
                np.asarray(feats.column(n).to_numpy(zero_copy_only=False), dtype=np.float64)[keep]
                for n in wanted
            ]
        )
        if wanted
        else np.zeros((len(keep), 0))
    )
    # NaN ("the source cannot tell") becomes -1, below every count and share: a tree can still
    # split on it, and no fold ever sees an all-NaN column (which HistGradientBoosting rejects).
    X = np.where(np.isnan(X), -1.0, X)
    y = np.asarray([labels[i] or 0 for i in keep], dtype=np.int64)
    eco = meta.column("Ecosystem").to_pylist()
    norm = meta.column("Name_Normalised").to_pylist()
    name = meta.column("Name").to_pylist()
    ver = meta.column("Version").to_pylist()
    groups = np.asarray([f"{eco[i]}/{norm[i] or name[i]}" for i in keep])
    names = [f"{eco[i]}/{name[i]}@{ver[i]}" for i in keep]
    return Matrix(X, y, groups, list(wanted), names)


def without(m: Matrix, drop: tuple[str, ...]) -> Matrix:
    idx = [i for i, n in enumerate(m.features) if n not in drop]
    return Matrix(m.X[:, idx], m.y, m.groups, [m.features[i] for i in idx], m.names)
