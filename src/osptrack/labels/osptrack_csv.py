"""OSPtrack's `stas/data_metrics.csv`: pkg_type,name,version,location,function,attack_type,...

Rows repeat per package and `version` is empty (all versions) or a comma list ("19.2.0,19.1.0").
One label row per package: versions are unioned, and any empty version means all versions.
`function` and `attack_type` are free text, so they go through the same keyword rules as OSV
details, plus two phrases of OSPtrack's own vocabulary.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from osptrack.errors import BadInput
from osptrack.labels.coords import label_ecosystem, label_name, label_version
from osptrack.labels.report import BuildReport
from osptrack.labels.sublabels import derive, osptrack_sub_label
from osptrack.labels.table import ColumnTable

REQUIRED = ("pkg_type", "name", "version", "location", "function", "attack_type", "trigger_mechanism", "hide")


def _extra_rules(attack_type: str) -> list[tuple[str, str]]:
    text = attack_type.lower()
    extra = []
    # OSPtrack's "root shell" is its name for GHSA's "fully compromised" template.
    if "root shell" in text:
        extra.append(("full_compromise", "osptrack:attack-type-root-shell"))
    if "command exec" in text:
        extra.append(("command_exec", "osptrack:attack-type-command-exec"))
    return extra


def read_osptrack_metrics(path: Path, labels: ColumnTable, report: BuildReport) -> None:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise BadInput(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise BadInput(f"{path}: not UTF-8 text") from None
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
    if missing:
        raise BadInput(f"{path}: not an OSPtrack data_metrics.csv (missing columns {', '.join(missing)})")
    report.documents += 1
    packages: dict[tuple[str, str], dict[str, Any]] = {}
    for line_no, row in enumerate(reader, start=2):
        raw_eco, raw_name = (row.get("pkg_type") or "").strip(), (row.get("name") or "").strip()
        if not raw_eco or not raw_name:
            report.skip(f"{path}:{line_no}", "row without pkg_type or name")
            continue
        eco = label_ecosystem(raw_eco)
        name = label_name(eco, raw_name)
        pkg = packages.setdefault(
            (eco, name), {"raw_name": raw_name, "versions": {}, "all": False, "texts": {}, "attack": {}}
        )
        versions = [v.strip() for v in (row.get("version") or "").split(",") if v.strip()]
        if not versions:
            pkg["all"] = True
        for v in versions:
            pkg["versions"][label_version(eco, v)] = None
        for column in ("function", "attack_type"):
            value = (row.get(column) or "").strip()
            if value and value.upper() != "N/A":
                pkg["texts"][value] = None
        pkg["attack"][(row.get("attack_type") or "").strip()] = None

    for (eco, name), pkg in packages.items():
        extra = [e for a in pkg["attack"] for e in _extra_rules(a)]
        subs = derive(list(pkg["texts"]), extra=extra)
        labels.append(
            id=f"OSPTRACK-{eco}-{name}",
            source="osptrack",
            ecosystem=eco,
            name=name,
            raw_name=pkg["raw_name"],
            versions=list(pkg["versions"]),
            all_versions=pkg["all"],
            ranges="[]",
            withdrawn=False,
            sub_labels=list(subs.labels),
            sub_label_rules=list(subs.rules),
            osptrack_sub_label=osptrack_sub_label(subs.labels),
            summary="; ".join(a for a in pkg["attack"] if a),
            published="",
            modified="",
            origins=["osptrack"],
            aliases=[],
            file=str(path),
        )
        report.records += 1
        report.rows += 1
