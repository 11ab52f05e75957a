"""OpenSSF malicious-packages OSV records -> label rows and IOC rows.

Unlike the OSPtrack pipeline (which read `affected[0].versions[0]`), every affected package,
every explicit version and every range is kept. A record under `osv/withdrawn/` or with a
`withdrawn` timestamp is kept but marked, and never counts as malicious.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from osptrack.labels.coords import label_ecosystem, label_name, label_version
from osptrack.labels.report import BuildReport
from osptrack.labels.sources import iter_json_documents
from osptrack.labels.sublabels import derive, osptrack_sub_label, split_url
from osptrack.labels.table import ColumnTable
from osptrack.labels.versions import is_all_versions

# `database_specific.iocs` uses plural keys; newer records carry `indicators` (same idea).
IOC_KINDS = {"urls": "url", "url": "url", "domains": "domain", "domain": "domain", "ips": "ip", "ip": "ip"}
EVALUABLE_RANGES = ("SEMVER", "ECOSYSTEM")


def is_withdrawn_path(member: str) -> bool:
    parts = member.replace("\\", "/").split("/")
    return any(a == "osv" and b == "withdrawn" for a, b in zip(parts, parts[1:], strict=False))


def collect_iocs(database_specific: Mapping[str, Any]) -> dict[str, list[str]]:
    """IOCs by kind (url/domain/ip), de-duplicated in first-seen order; `strings` are not network."""
    found: dict[str, dict[str, None]] = {"url": {}, "domain": {}, "ip": {}}
    for key in ("iocs", "indicators"):
        block = database_specific.get(key)
        if isinstance(block, Mapping):
            for plural, values in block.items():
                kind = IOC_KINDS.get(str(plural).lower())
                if kind and isinstance(values, list):
                    for v in values:
                        if isinstance(v, str) and v.strip():
                            found[kind][v.strip()] = None
        elif isinstance(block, list):  # [{"type": "domain", "value": "..."}]
            for item in block:
                if isinstance(item, Mapping):
                    kind = IOC_KINDS.get(str(item.get("type", "")).lower())
                    value = item.get("value")
                    if kind and isinstance(value, str) and value.strip():
                        found[kind][value.strip()] = None
    return {k: list(v) for k, v in found.items() if v}


def ioc_host(kind: str, value: str) -> str:
    return split_url(value)[0] if kind == "url" else value.lower().rstrip(".")


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _strings(values: Any) -> list[str]:
    return [str(v) for v in values if isinstance(v, str | int | float)] if isinstance(values, list) else []


def add_osv_record(
    record: Mapping[str, Any],
    member: str,
    labels: ColumnTable,
    iocs: ColumnTable,
    report: BuildReport,
) -> None:
    """Append one OSV record's rows; raises ValueError (caught by the caller) when it is unusable."""
    rec_id = record.get("id")
    affected = record.get("affected")
    if not isinstance(rec_id, str) or not rec_id:
        raise ValueError("record has no id")
    if not isinstance(affected, list) or not affected:
        raise ValueError("record has no affected packages")
    db = _mapping(record.get("database_specific"))
    origins_raw = db.get("malicious-packages-origins")
    origins = sorted(
        {str(o.get("source")) for o in origins_raw if isinstance(o, Mapping) and o.get("source")}
        if isinstance(origins_raw, list)
        else set()
    )
    withdrawn = is_withdrawn_path(member) or bool(record.get("withdrawn"))
    summary = str(record.get("summary") or "")
    details = str(record.get("details") or "")
    record_iocs = collect_iocs(db)
    references = _list(record.get("references"))
    subs = derive((summary, details), record_iocs, references)
    osptrack_label = osptrack_sub_label(subs.labels)
    aliases = _strings(record.get("aliases"))

    # One row per affected package; the same package listed twice is merged.
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for entry in affected:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("package"), Mapping):
            raise ValueError("affected entry without package")
        pkg = entry["package"]
        raw_eco, raw_name = pkg.get("ecosystem"), pkg.get("name")
        if not isinstance(raw_eco, str) or not isinstance(raw_name, str) or not raw_name.strip():
            raise ValueError("affected package without ecosystem or name")
        eco = label_ecosystem(raw_eco)
        name = label_name(eco, raw_name)
        row = merged.setdefault(
            (eco, name), {"raw_name": raw_name, "versions": {}, "all": False, "ranges": []}
        )
        for v in _strings(entry.get("versions")):
            row["versions"][label_version(eco, v)] = None
        ranges = [r for r in entry.get("ranges") or [] if isinstance(r, Mapping)]
        if is_all_versions(ranges):
            row["all"] = True
        else:
            for r in ranges:
                events = r.get("events")
                if r.get("type") in EVALUABLE_RANGES and isinstance(events, list) and events:
                    row["ranges"].append({"type": r["type"], "events": [dict(e) for e in events]})

    for (eco, name), row in merged.items():
        if not row["versions"] and not row["all"] and not row["ranges"]:
            report.unversioned += 1
        labels.append(
            id=rec_id,
            source="osv",
            ecosystem=eco,
            name=name,
            raw_name=row["raw_name"],
            versions=list(row["versions"]),
            all_versions=row["all"],
            ranges=orjson.dumps([] if row["all"] else row["ranges"]).decode(),
            withdrawn=withdrawn,
            sub_labels=list(subs.labels),
            sub_label_rules=list(subs.rules),
            osptrack_sub_label=osptrack_label,
            summary=summary,
            published=str(record.get("published") or ""),
            modified=str(record.get("modified") or ""),
            origins=origins,
            aliases=aliases,
            file=member,
        )
        for kind, values in record_iocs.items():
            for value in values:
                iocs.append(
                    id=rec_id,
                    ecosystem=eco,
                    name=name,
                    kind=kind,
                    value=value,
                    source="osv",
                    host=ioc_host(kind, value),
                )
    report.records += 1
    report.rows += len(merged)
    report.withdrawn += int(withdrawn)


def read_osv(paths: Sequence[Path], labels: ColumnTable, iocs: ColumnTable, report: BuildReport) -> None:
    for path in paths:
        for member, data in iter_json_documents(path, report):
            report.documents += 1
            # Folder members are absolute paths already; archive members are named inside the archive.
            where = member if member == str(path) or Path(member).is_absolute() else f"{path}:{member}"
            try:
                record = orjson.loads(data)
            except orjson.JSONDecodeError as exc:
                report.skip(where, f"malformed JSON ({exc})")
                continue
            if not isinstance(record, dict):
                report.skip(where, "not a JSON object")
                continue
            try:
                add_osv_record(record, member, labels, iocs, report)
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                report.skip(where, f"unusable OSV record ({exc})")
