"""The `labels.parquet` / `labels.iocs.parquet` schemas (docs/formats.md) and their writer.

Rows are accumulated column-wise: 33k records become a handful of Python lists, not 33k objects.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from osptrack.errors import BadInput
from osptrack.jsonio import atomic_write_bytes

_LIST = pa.list_(pa.string())

# The columns fixed by docs/formats.md come first, in that order; ours follow.
LABEL_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("source", pa.string()),
        ("ecosystem", pa.string()),
        ("name", pa.string()),
        ("raw_name", pa.string()),
        ("versions", _LIST),
        ("all_versions", pa.bool_()),
        ("ranges", pa.string()),
        ("withdrawn", pa.bool_()),
        ("sub_labels", _LIST),
        ("sub_label_rules", _LIST),
        ("osptrack_sub_label", pa.string()),
        ("summary", pa.string()),
        ("published", pa.string()),
        ("modified", pa.string()),
        # Added: which upstream feeds reported it (ghsa-malware, reversing-labs, ...), the OSV
        # aliases (GHSA ids), and the file it came from, so a label can be traced back.
        ("origins", _LIST),
        ("aliases", _LIST),
        ("file", pa.string()),
    ]
)

IOC_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("ecosystem", pa.string()),
        ("name", pa.string()),
        ("kind", pa.string()),
        ("value", pa.string()),
        ("source", pa.string()),
        # Added: the hostname (or IP) to join against observed DNS queries and socket peers.
        ("host", pa.string()),
    ]
)


# Neutral values for the columns a hand-made label row (an imitation corpus, a test) leaves out.
LABEL_DEFAULTS: dict[str, object] = {
    "source": "osptrack",
    "versions": [],
    "all_versions": False,
    "ranges": "[]",
    "withdrawn": False,
    "sub_labels": [],
    "sub_label_rules": [],
    "osptrack_sub_label": "na",
    "summary": "",
    "published": "",
    "modified": "",
    "origins": [],
    "aliases": [],
    "file": "",
}


def labels_table(rows: Iterable[Mapping[str, object]]) -> pa.Table:
    """A LABEL_SCHEMA table from partial rows (each needs id, ecosystem and name at least).

    Missing columns take LABEL_DEFAULTS; `raw_name` defaults to the row's name.
    """
    full = [{**LABEL_DEFAULTS, "raw_name": r["name"], **r} for r in rows]
    return pa.table(
        {f.name: pa.array([r.get(f.name) for r in full], type=f.type) for f in LABEL_SCHEMA},
        schema=LABEL_SCHEMA,
    )


class ColumnTable:
    """Append rows as keyword arguments; every schema column must be given."""

    def __init__(self, schema: pa.Schema) -> None:
        self.schema = schema
        self.columns: dict[str, list[object]] = {name: [] for name in schema.names}

    def append(self, **values: object) -> None:
        for name, column in self.columns.items():
            column.append(values[name])

    def __len__(self) -> int:
        return len(self.columns[self.schema.names[0]])

    def to_arrow(self) -> pa.Table:
        return pa.table({n: pa.array(c, type=self.schema.field(n).type) for n, c in self.columns.items()})


def iocs_path_for(labels_path: Path) -> Path:
    """`X/labels.parquet` -> `X/labels.iocs.parquet` (the sibling the IOC table lives in)."""
    stem = labels_path.name[: -len(".parquet")] if labels_path.name.endswith(".parquet") else labels_path.name
    return labels_path.with_name(f"{stem}.iocs.parquet")


def _has_schema(path: Path, schema: pa.Schema) -> bool:
    try:
        names = pq.read_schema(path).names
    except (pa.ArrowException, OSError):
        return False
    return names[: len(schema.names)] == schema.names


def is_labels_file(path: Path) -> bool:
    """An earlier labels.parquet of ours (a new build may replace it), told by its columns."""
    return _has_schema(path, LABEL_SCHEMA)


def is_iocs_file(path: Path) -> bool:
    return _has_schema(path, IOC_SCHEMA)


def check_outputs(out: Path) -> None:
    """The --out rule (osptrack.outputs) for both files, before any source is read."""
    from osptrack.outputs import check_output_file

    if not out.name.endswith(".parquet"):
        raise BadInput(f"{out}: output must end in .parquet")
    check_output_file(out, is_labels_file, "labels")
    check_output_file(iocs_path_for(out), is_iocs_file, "labels IOC", option="--out's sibling")


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def write_tables(out: Path, labels: pa.Table, iocs: pa.Table) -> None:
    """Write both tables atomically; labels.parquet last, so its presence means both are whole."""
    if not out.name.endswith(".parquet"):
        raise BadInput(f"{out}: output must end in .parquet")
    label_bytes, ioc_bytes = _parquet_bytes(labels), _parquet_bytes(iocs)
    atomic_write_bytes(iocs_path_for(out), ioc_bytes)
    atomic_write_bytes(out, label_bytes)


def read_labels(path: Path, columns: Sequence[str] | None = None) -> pa.Table:
    try:
        table = pq.read_table(path, columns=list(columns) if columns else None)
    except FileNotFoundError:
        raise BadInput(f"{path}: no such labels file") from None
    except (pa.ArrowInvalid, OSError) as exc:
        raise BadInput(f"{path}: not a readable labels parquet ({exc})") from None
    missing = {"id", "ecosystem", "name", "withdrawn"} - set(table.column_names)
    if missing:
        raise BadInput(f"{path}: not a labels table (missing {', '.join(sorted(missing))})")
    return table
