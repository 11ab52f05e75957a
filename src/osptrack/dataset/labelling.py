"""Label join: normalised (ecosystem, name, exact version) -> Label, Sub_Label, sub-labels, source.

The matching itself is the labels module's `LabelIndex` (withdrawn records never count). What is
decided here is the dataset's policy:
- a coordinate with a malicious record gets Label=1, its taxonomy sub-labels (union over records)
  and OSPtrack's one Sub_Label;
- otherwise a label carried by the input itself (an OSPtrack CSV row) is kept, source `input`;
- otherwise Label=0 (`benign`), or null with `--unlabelled-as unknown`, so unlabelled runs
  need not be counted as benign.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from osptrack.dataset.model import RunRecord
from osptrack.errors import BadInput
from osptrack.labels.match import LabelIndex
from osptrack.labels.sublabels import osptrack_sub_label

UNLABELLED_CHOICES = ("benign", "unknown")


@dataclass(frozen=True)
class LabelOutcome:
    label: int | None
    sub_label: str
    sub_labels: tuple[str, ...]
    source: str  # osv, datadog, osptrack (comma-joined when several), input, or none
    ids: tuple[str, ...]


class Labeller:
    def __init__(self, index: LabelIndex, unlabelled_as: str = "benign") -> None:
        if unlabelled_as not in UNLABELLED_CHOICES:
            raise BadInput(
                f"--unlabelled-as must be one of {', '.join(UNLABELLED_CHOICES)}, not {unlabelled_as!r}"
            )
        self.index = index
        self.unlabelled_as = unlabelled_as

    @classmethod
    def load(cls, path: Path, unlabelled_as: str = "benign") -> Labeller:
        return cls(LabelIndex.load(path), unlabelled_as)

    def label(self, record: RunRecord) -> LabelOutcome:
        hits = self.index.match(record.ecosystem, record.name, record.version or None) if record.name else []
        if not record.version:
            # Without a version only records that cover every version may label the run.
            hits = [h for h in hits if h.matched_by == "all_versions"]
        if hits:
            subs = tuple(sorted({s for h in hits for s in h.sub_labels}))
            return LabelOutcome(
                label=1,
                sub_label=osptrack_sub_label(subs),
                sub_labels=subs,
                source=",".join(sorted({h.source for h in hits})),
                ids=tuple(sorted({h.id for h in hits})),
            )
        if record.given_label is not None:
            sub = record.given_sub_label or "na"
            return LabelOutcome(record.given_label, sub if record.given_label else "na", (), "input", ())
        return LabelOutcome(0 if self.unlabelled_as == "benign" else None, "na", (), "none", ())
