"""The records the dataset builder passes around.

Importers turn every input kind (run folder, package-analysis JSON, OSPtrack CSV) into one
`RunRecord`; everything downstream (noise, features, writers) sees only that. The per-phase
payload is decoded straight into msgspec Structs: it is the cheapest way to read ~4,000 file
records per report without building Python dicts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

PHASES = ("install", "import", "execute")
KINDS = ("Files", "Sockets", "Commands", "DNS")

# Simulation_Source values: where the behaviour was recorded.
SOURCE_LOCAL = "osptrack"  # a run folder made by this tool
SOURCE_OPENSSF = "openssf"  # a package-analysis result JSON
SOURCE_OSPTRACK_CSV = "osptrack_csv"  # a row of OSPtrack's label_data.csv without its own source


class FileRec(msgspec.Struct, frozen=True):
    Path: str = ""
    Read: bool = False
    Write: bool = False
    Delete: bool = False


class SocketRec(msgspec.Struct, frozen=True):
    Address: str = ""
    Port: int = 0
    Hostnames: list[str] | None = None


class CommandRec(msgspec.Struct, frozen=True):
    Command: list[str] | None = None
    Environment: list[str] | None = None


class DNSQuery(msgspec.Struct, frozen=True):
    Hostname: str = ""
    Types: list[str] | None = None


class DNSRec(msgspec.Struct, frozen=True):
    Class: str = ""
    Queries: list[DNSQuery] | None = None


class PhaseResult(msgspec.Struct):
    Status: str | None = None
    Stdout: str | None = None
    Stderr: str | None = None
    Files: list[FileRec] | None = None
    Sockets: list[SocketRec] | None = None
    Commands: list[CommandRec] | None = None
    DNS: list[DNSRec] | None = None


class PackageInfo(msgspec.Struct):
    Ecosystem: str = ""
    Name: str = ""
    Version: str | None = None


class AnalysisResult(msgspec.Struct):
    """package-analysis's dynamic-analysis result; older variants may lack or null `Analysis`."""

    Package: PackageInfo
    CreatedTimestamp: float | None = None
    Analysis: dict[str, PhaseResult | None] | None = None


@dataclass
class ProcessInfo:
    """What the process-tree features need from events.jsonl (local runs only)."""

    depth_max: int = 0
    processes: int = 0
    detached: int = 0
    chmod_exec: int = 0  # chmod calls that set an execute bit


@dataclass
class RunRecord:
    ecosystem: str
    name: str
    version: str
    simulation_source: str
    source_path: str
    phases: dict[str, PhaseResult] = field(default_factory=dict)
    created: float | None = None
    trace_valid: bool | None = None
    timed_out_phases: tuple[str, ...] = ()
    local_archive: str | None = None
    analysis_missing: bool = False
    # Only local runs carry these; None means "the source cannot tell".
    process: ProcessInfo | None = None
    phase_wall_s: dict[str, float] | None = None
    honeytokens: list[str] | None = None
    network_payloads: list[bytes] | None = None
    exfiltration: int | None = None
    bait_reads: int | None = None
    # phase -> distinct sensitive paths the package probed (run.json `probes`, toolchain's left out)
    probes: dict[str, int] | None = None
    # phase -> (Address, Port) of Sockets that were only getaddrinfo lookup probes (run.json)
    lookup_probes: dict[str, set[tuple[str, int]]] | None = None
    # A label already attached to the input (OSPtrack CSV), used when the label table has no hit.
    given_label: Any = None
    given_sub_label: str | None = None


def status_of(record: RunRecord) -> str:
    """One Analysis_Status for the run: the worst phase status, `missing` without any analysis."""
    if record.analysis_missing or not record.phases:
        return "missing"
    order = ("error_other", "error_analysis", "error_timeout")
    statuses = [p.Status or "completed" for p in record.phases.values()]
    for bad in order:
        if bad in statuses:
            return bad
    unknown = sorted(s for s in statuses if s != "completed")
    return unknown[0] if unknown else "completed"


def source_sort_key(path: Path) -> str:
    return str(path.resolve())
