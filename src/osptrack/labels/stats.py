"""Summary figures for `labels stats` and the benchmark: per ecosystem, per sub-label."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from osptrack.labels.sublabels import BEHAVIOUR_LABELS
from osptrack.labels.table import iocs_path_for, read_labels


@dataclass
class EcosystemStats:
    rows: int = 0
    withdrawn: int = 0
    explicit_versions: int = 0  # only a versions list
    all_versions: int = 0
    ranges: int = 0  # bounded ranges (possibly with a versions list too)
    behaviour: int = 0  # at least one sub-label beyond full_compromise (withdrawn excluded)

    @property
    def active(self) -> int:
        return self.rows - self.withdrawn


@dataclass
class LabelStats:
    ecosystems: dict[str, EcosystemStats] = field(default_factory=dict)
    sources: Counter[str] = field(default_factory=Counter)
    sub_labels: Counter[str] = field(default_factory=Counter)
    rules: Counter[str] = field(default_factory=Counter)
    osptrack: Counter[str] = field(default_factory=Counter)
    ioc_kinds: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> EcosystemStats:
        out = EcosystemStats()
        for s in self.ecosystems.values():
            for name in ("rows", "withdrawn", "explicit_versions", "all_versions", "ranges", "behaviour"):
                setattr(out, name, getattr(out, name) + getattr(s, name))
        return out


def compute_stats(path: Path) -> LabelStats:
    table = read_labels(path)
    cols = {
        c: table.column(c).to_pylist()
        for c in ("ecosystem", "source", "versions", "all_versions", "ranges", "withdrawn", "sub_labels")
    }
    rules = table.column("sub_label_rules").to_pylist() if "sub_label_rules" in table.column_names else None
    osp = (
        table.column("osptrack_sub_label").to_pylist() if "osptrack_sub_label" in table.column_names else None
    )
    stats = LabelStats()
    for i in range(table.num_rows):
        eco = stats.ecosystems.setdefault(cols["ecosystem"][i], EcosystemStats())
        eco.rows += 1
        stats.sources[cols["source"][i]] += 1
        if cols["withdrawn"][i]:
            eco.withdrawn += 1
            continue  # withdrawn records are not labels; keep them out of label figures
        has_ranges = (cols["ranges"][i] or "[]") != "[]"
        if cols["all_versions"][i]:
            eco.all_versions += 1
        elif has_ranges:
            eco.ranges += 1
        elif cols["versions"][i]:
            eco.explicit_versions += 1
        labels = cols["sub_labels"][i] or []
        stats.sub_labels.update(labels)
        if rules is not None:
            stats.rules.update(rules[i] or [])
        if osp is not None:
            stats.osptrack[osp[i] or "na"] += 1
        if BEHAVIOUR_LABELS.intersection(labels):
            eco.behaviour += 1
    iocs = iocs_path_for(path)
    if iocs.exists():
        import pyarrow.parquet as pq

        stats.ioc_kinds.update(pq.read_table(iocs, columns=["kind"]).column("kind").to_pylist())
    return stats
