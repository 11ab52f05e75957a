"""Lookup probes are no connections in the features, and sensitive-path probes are counted (issue 12)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
from dataset_helpers import TOOL_FILES, phase, write_labels, write_run

from osptrack.dataset.build import BuildOptions, build

PROBE_V4 = {"Address": "198.18.1.1", "Port": 443, "Hostnames": ["lookup-only.example"]}
PROBE_V6 = {"Address": "fd5e:1800::c612:101", "Port": 443, "Hostnames": ["lookup-only.example"]}
REAL = {"Address": "203.0.113.9", "Port": 4444, "Hostnames": []}


def _features(tmp_path: Path, run_extra: dict[str, Any] | None) -> dict[str, Any]:
    baseline = tmp_path / "baseline"
    write_run(baseline / "null", "pypi", "osptrack-null", "0.0.0", {"install": phase(TOOL_FILES)})
    folder = write_run(
        tmp_path / "runs" / "r", "pypi", "pkg", "1.0", {"install": phase(sockets=[PROBE_V4, PROBE_V6, REAL])}
    )
    if run_extra is not None:
        run = orjson.loads((folder / "run.json").read_bytes())
        run["phases"]["install"]["lookup_probes"] = run_extra["lookup_probes"]
        run["probes"] = run_extra["probes"]
        (folder / "run.json").write_bytes(orjson.dumps(run))
    labels = write_labels(tmp_path / "labels.parquet", [])
    build(
        [tmp_path / "runs"], BuildOptions(labels=labels, out=tmp_path / "out", baseline=baseline, workers=1)
    )
    (row,) = pq.read_table(tmp_path / "out" / "features.parquet").to_pylist()
    return row


def _probe(path: str, toolchain: str | None = None, phase_name: str = "install") -> dict[str, Any]:
    return {"phase": phase_name, "path": path, "category": "wallet", "syscall": "newfstatat",
            "errno": "ENOENT", "pid": 7, "exe": "/usr/bin/python3", "toolchain": toolchain}  # fmt: skip


def test_lookup_probes_are_not_connections_and_probes_are_counted(tmp_path: Path) -> None:
    extra = {
        "lookup_probes": [{"Address": p["Address"], "Port": p["Port"]} for p in (PROBE_V4, PROBE_V6)],
        "probes": [
            _probe("/root/.bitcoin/wallet.dat"),
            _probe("/root/.bitcoin/wallet.dat"),  # the same path twice is one
            _probe("/etc/shadow"),
            _probe("/root/.npmrc", toolchain="npm"),  # the toolchain's own look is not the package's
        ],
    }
    row = _features(tmp_path, extra)
    assert row["install_sockets_raw_n"] == 3  # result.json's Sockets, as package-analysis counts them
    assert row["install_sockets_n"] == 1  # only the real connection
    assert row["install_sockets_unusual_port_n"] == 1
    assert row["install_probe_sensitive_n"] == 2


def test_runs_without_the_fields_cannot_tell(tmp_path: Path) -> None:
    row = _features(tmp_path, None)
    assert row["install_sockets_n"] == 3
    assert math.isnan(row["install_probe_sensitive_n"])
