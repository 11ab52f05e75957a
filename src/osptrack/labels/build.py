"""`labels build`: read every source, write labels.parquet + labels.iocs.parquet atomically."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from osptrack.errors import BadInput
from osptrack.labels.datadog import read_datadog
from osptrack.labels.osptrack_csv import read_osptrack_metrics
from osptrack.labels.osv import read_osv
from osptrack.labels.report import BuildReport
from osptrack.labels.table import IOC_SCHEMA, LABEL_SCHEMA, ColumnTable, check_outputs, write_tables


def build_labels(
    osv: Sequence[Path] = (),
    datadog: Sequence[str] = (),
    osptrack_metrics: Sequence[Path] = (),
    out: Path | None = None,
) -> tuple[ColumnTable, ColumnTable, BuildReport]:
    """Read all sources; when `out` is given, write both tables (nothing is written on error)."""
    if not (osv or datadog or osptrack_metrics):
        raise BadInput("no label sources given (use --osv, --datadog or --osptrack-metrics)")
    if out is not None:
        check_outputs(out)
    report = BuildReport()
    labels, iocs = ColumnTable(LABEL_SCHEMA), ColumnTable(IOC_SCHEMA)
    read_osv(list(osv), labels, iocs, report)
    for manifest in datadog:
        read_datadog(manifest, labels, report)
    for metrics in osptrack_metrics:
        read_osptrack_metrics(metrics, labels, report)
    if report.rows == 0:
        where = ", ".join(str(p) for p in [*osv, *datadog, *osptrack_metrics])
        raise BadInput(f"no label records found in {where} ({report.skipped} skipped)")
    if out is not None:
        write_tables(out, labels.to_arrow(), iocs.to_arrow())
    return labels, iocs, report
