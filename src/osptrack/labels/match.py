"""Look coordinates up in `labels.parquet` (the API the dataset and batch code call).

    index = LabelIndex.load(Path("labels.parquet"))
    index.match("pypi", "Evil_Pkg", "1.0")      # -> [LabelHit, ...], withdrawn records excluded
    index.is_malicious("npm", "@Scope/x", "2.0.1")
    index.osptrack_sub_label("npm", "@Scope/x", "2.0.1")   # "C2", "root shell", "command exec", "na"

Names and versions are normalised exactly as the build normalised them (osptrack.target), so a
caller may pass them as written. A bounded OSV range is evaluated with the ecosystem's ordering
(labels/versions.py); a version that ordering cannot parse never matches a range.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from osptrack.labels.coords import label_ecosystem, label_name, version_key
from osptrack.labels.sublabels import TAXONOMY, osptrack_sub_label
from osptrack.labels.table import read_labels
from osptrack.labels.versions import in_range

_COLUMNS = (
    "id",
    "source",
    "ecosystem",
    "name",
    "versions",
    "all_versions",
    "ranges",
    "withdrawn",
    "sub_labels",
    "sub_label_rules",
    "osptrack_sub_label",
    "summary",
)


@dataclass(frozen=True)
class LabelHit:
    id: str
    source: str
    ecosystem: str
    name: str
    matched_by: str  # "all_versions", "version", "range", or "name" (no version asked)
    withdrawn: bool
    sub_labels: tuple[str, ...]
    sub_label_rules: tuple[str, ...]
    osptrack_sub_label: str
    summary: str


@dataclass(frozen=True, slots=True)
class _Entry:
    id: str
    source: str
    ecosystem: str
    name: str
    version_keys: frozenset[str]
    all_versions: bool
    ranges: tuple[tuple[dict[str, str], ...], ...]
    withdrawn: bool
    sub_labels: tuple[str, ...]
    sub_label_rules: tuple[str, ...]
    osptrack_sub_label: str
    summary: str

    def hit(self, matched_by: str) -> LabelHit:
        return LabelHit(
            self.id,
            self.source,
            self.ecosystem,
            self.name,
            matched_by,
            self.withdrawn,
            self.sub_labels,
            self.sub_label_rules,
            self.osptrack_sub_label,
            self.summary,
        )

    def matched_by(self, version: str) -> str | None:
        if self.all_versions:
            return "all_versions"
        if version_key(self.ecosystem, version) in self.version_keys:
            return "version"
        if any(in_range(self.ecosystem, events, version) for events in self.ranges):
            return "range"
        return None


def _parse_ranges(text: str | None) -> tuple[tuple[dict[str, str], ...], ...]:
    if not text:
        return ()
    ranges: list[Any] = orjson.loads(text)
    return tuple(tuple(r.get("events") or ()) for r in ranges if isinstance(r, dict))


class LabelIndex:
    def __init__(self, entries: list[_Entry]) -> None:
        self._by_name: dict[tuple[str, str], list[_Entry]] = defaultdict(list)
        for entry in entries:
            self._by_name[(entry.ecosystem, entry.name)].append(entry)

    @classmethod
    def load(cls, path: Path | str) -> LabelIndex:
        table = read_labels(Path(path))
        columns = {c: table.column(c).to_pylist() if c in table.column_names else None for c in _COLUMNS}

        def col(name: str, i: int, default: Any) -> Any:
            values = columns[name]
            return default if values is None or values[i] is None else values[i]

        entries = []
        for i in range(table.num_rows):
            eco = col("ecosystem", i, "")
            entries.append(
                _Entry(
                    id=col("id", i, ""),
                    source=col("source", i, "osv"),
                    ecosystem=eco,
                    name=col("name", i, ""),
                    version_keys=frozenset(version_key(eco, v) for v in col("versions", i, [])),
                    all_versions=bool(col("all_versions", i, False)),
                    ranges=_parse_ranges(col("ranges", i, "[]")),
                    withdrawn=bool(col("withdrawn", i, False)),
                    sub_labels=tuple(col("sub_labels", i, [])),
                    sub_label_rules=tuple(col("sub_label_rules", i, [])),
                    osptrack_sub_label=col("osptrack_sub_label", i, "na"),
                    summary=col("summary", i, ""),
                )
            )
        return cls(entries)

    def __len__(self) -> int:
        return sum(len(v) for v in self._by_name.values())

    def match(
        self, ecosystem: str, name: str, version: str | None = None, include_withdrawn: bool = False
    ) -> list[LabelHit]:
        """Records that cover the coordinate. Without a version, every record for the name.

        Withdrawn records are left out unless `include_withdrawn` (for display, never for labels).
        """
        eco = label_ecosystem(ecosystem)
        candidates = self._by_name.get((eco, label_name(eco, name)), [])
        hits = []
        for entry in candidates:
            if entry.withdrawn and not include_withdrawn:
                continue
            how = "name" if version is None or not version.strip() else entry.matched_by(version)
            if how is not None:
                hits.append(entry.hit(how))
        return hits

    def is_malicious(self, ecosystem: str, name: str, version: str | None = None) -> bool:
        return bool(self.match(ecosystem, name, version))

    def sub_labels(self, ecosystem: str, name: str, version: str | None = None) -> tuple[str, ...]:
        """Union of the sub-labels of every (non-withdrawn) hit, in taxonomy order."""
        found = {label for hit in self.match(ecosystem, name, version) for label in hit.sub_labels}
        return tuple(label for label in TAXONOMY if label in found) + tuple(sorted(found - set(TAXONOMY)))

    def osptrack_sub_label(self, ecosystem: str, name: str, version: str | None = None) -> str:
        """OSPtrack's `Sub_Label` for a coordinate: `na` when unknown or without behaviour labels."""
        return osptrack_sub_label(self.sub_labels(ecosystem, name, version))
