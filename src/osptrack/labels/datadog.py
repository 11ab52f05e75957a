"""DataDog malicious-software-packages-dataset `manifest.json`: `{"name": null | ["1.0", ...]}`.

null means every version. The manifest does not say its ecosystem; it is taken from an explicit
`ECOSYSTEM=PATH` argument or from the folder it sits in (`samples/npm/manifest.json`).
"""

from __future__ import annotations

from pathlib import Path

import orjson

from osptrack.errors import BadInput
from osptrack.labels.coords import label_ecosystem, label_name, label_version
from osptrack.labels.report import BuildReport
from osptrack.labels.table import ColumnTable
from osptrack.target import ECOSYSTEMS


def split_ecosystem_arg(arg: str) -> tuple[str | None, Path]:
    """`npm=path/manifest.json` -> ("npm", path); a bare path -> (None, path)."""
    head, sep, tail = arg.partition("=")
    if sep and label_ecosystem(head) in ECOSYSTEMS and "/" not in head:
        return label_ecosystem(head), Path(tail)
    return None, Path(arg)


def infer_ecosystem(path: Path) -> str:
    for part in reversed(path.resolve().parts[:-1]):
        eco = label_ecosystem(part)
        if eco in ECOSYSTEMS:
            return eco
    raise BadInput(f"{path}: cannot tell the ecosystem of this DataDog manifest; pass it as ECOSYSTEM=PATH")


def read_datadog(arg: str, labels: ColumnTable, report: BuildReport) -> None:
    eco, path = split_ecosystem_arg(arg)
    eco = eco or infer_ecosystem(path)
    try:
        doc = orjson.loads(path.read_bytes())
    except OSError as exc:
        raise BadInput(f"{path}: cannot read: {exc.strerror}") from None
    except orjson.JSONDecodeError as exc:
        raise BadInput(f"{path}: malformed JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise BadInput(f"{path}: a DataDog manifest is a JSON object of name -> null or [versions]")
    report.documents += 1
    for raw_name, versions in doc.items():
        if not isinstance(raw_name, str) or not raw_name.strip():
            report.skip(f"{path}:{raw_name!r}", "empty package name")
            continue
        if versions is not None and not (
            isinstance(versions, list) and all(isinstance(v, str) for v in versions)
        ):
            report.skip(f"{path}:{raw_name}", "versions must be null or a list of strings")
            continue
        name = label_name(eco, raw_name)
        vers = list(dict.fromkeys(label_version(eco, v) for v in versions or []))
        labels.append(
            id=f"DATADOG-{eco}-{name}",
            source="datadog",
            ecosystem=eco,
            name=name,
            raw_name=raw_name,
            versions=vers,
            all_versions=versions is None,
            ranges="[]",
            withdrawn=False,
            sub_labels=[],
            sub_label_rules=[],
            osptrack_sub_label="na",
            summary="",
            published="",
            modified="",
            origins=["datadog"],
            aliases=[],
            file=str(path),
        )
        report.records += 1
        report.rows += 1
