"""Printing a hunt's rows: a rich table, CSV, or a JSON list with one object per row."""

from __future__ import annotations

import base64
import csv
import io
import sys
from typing import Any

import orjson

from osptrack.errors import BadInput

FORMATS = ("table", "csv", "json")


def _plain(value: Any) -> Any:
    # What JSON and CSV cells can hold: bytes as base64, everything else as orjson sees it.
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _cell(value: Any) -> str:
    if value is None:
        return ""
    value = _plain(value)
    if isinstance(value, (list, dict)):
        return orjson.dumps(value, default=str).decode()
    return str(value)


def render(columns: list[str], rows: list[tuple[Any, ...]], fmt: str) -> str:
    if fmt == "json":
        objs = [{c: _plain(v) for c, v in zip(columns, row, strict=True)} for row in rows]
        return orjson.dumps(objs, default=str, option=orjson.OPT_INDENT_2).decode() + "\n"
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([_cell(v) for v in row] for row in rows)
        return buf.getvalue()
    if fmt == "table":
        from rich.console import Console
        from rich.table import Table

        table = Table(caption=f"{len(rows)} row(s)")
        for c in columns:
            table.add_column(c, overflow="fold")
        for row in rows:
            table.add_row(*(_cell(v) for v in row))
        buf = io.StringIO()
        width = 200 if not sys.stdout.isatty() else None
        Console(file=buf, width=width, highlight=False).print(table)
        return buf.getvalue()
    raise BadInput(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
