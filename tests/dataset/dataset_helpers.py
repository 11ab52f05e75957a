"""Hand-made run folders, package-analysis results and label tables for the dataset tests."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq

from osptrack.labels.table import labels_table

TOOL_FILES = [
    # What any Python toolchain touches; the baseline run sees the same.
    {"Path": "/usr/lib/python3.11/os.py", "Read": True, "Write": False, "Delete": False},
    {"Path": "/usr/lib/python3.11/encodings/__init__.py", "Read": True, "Write": False, "Delete": False},
    {"Path": "/etc/ld.so.cache", "Read": True, "Write": False, "Delete": False},
]


def pkg_files(site: str, module: str, version: str) -> list[dict[str, Any]]:
    return [
        {"Path": f"{site}/{module}/__init__.py", "Read": True, "Write": True, "Delete": False},
        {
            "Path": f"{site}/{module}-{version}.dist-info/RECORD",
            "Read": False,
            "Write": True,
            "Delete": False,
        },
    ]


def phase(
    files: list[dict[str, Any]] | None = None,
    sockets: list[dict[str, Any]] | None = None,
    commands: list[dict[str, Any]] | None = None,
    dns: list[dict[str, Any]] | None = None,
    status: str = "completed",
    stdout: str = "",
) -> dict[str, Any]:
    return {
        "Status": status,
        "Stdout": base64.b64encode(stdout.encode()).decode(),
        "Stderr": "",
        "Files": files if files is not None else [],
        "Sockets": sockets if sockets is not None else [],
        "Commands": commands if commands is not None else [],
        "DNS": dns if dns is not None else [],
    }


def result_doc(eco: str, name: str, version: str, analysis: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "Package": {"Ecosystem": eco, "Name": name, "Version": version},
        "CreatedTimestamp": 1764169200,
        "Analysis": analysis,
    }


def write_run(
    folder: Path,
    eco: str,
    name: str,
    version: str,
    analysis: dict[str, Any],
    *,
    events: list[dict[str, Any]] | None = None,
    network: list[dict[str, Any]] | None = None,
    honeytokens: list[str] | None = None,
    walls: dict[str, float] | None = None,
    trace_valid: bool = True,
    timed_out: tuple[str, ...] = (),
    exfiltration: int = 0,
) -> Path:
    """A complete run folder (run.json written last, as the run writer does)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "result.json").write_bytes(orjson.dumps(result_doc(eco, name, version, analysis)))
    (folder / "events.jsonl").write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events or []))
    (folder / "network.jsonl").write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in network or []))
    walls = walls or dict.fromkeys(analysis, 1.0)
    run = {
        "tool": {"name": "osptrack", "version": "0.1.0"},
        "package": {
            "ecosystem": eco,
            "name": name,
            "version": version,
            "archive": f"{name}-{version}.tar.gz",
        },
        "honeytokens": [
            {"kind": "aws_secret_access_key", "value": v, "planted": ["env:AWS_SECRET_ACCESS_KEY"]}
            for v in honeytokens or []
        ],
        "phases": {
            p: {"status": analysis[p]["Status"], "wall_s": walls.get(p, 0.0), "timed_out": p in timed_out}
            for p in analysis
        },
        "exfiltration": [{"kind": "aws_secret_access_key", "phase": "install"}] * exfiltration,
        "bait_reads": [],
        "trace": {"valid": trace_valid, "events": len(events or []), "dropped": 0, "truncated": False},
    }
    (folder / "run.json").write_bytes(orjson.dumps(run))
    return folder


def write_labels(path: Path, rows: list[dict[str, Any]]) -> Path:
    """labels.parquet in the documented schema; unspecified columns get neutral values."""
    pq.write_table(labels_table([{"source": "osv", **r} for r in rows]), path)
    return path
