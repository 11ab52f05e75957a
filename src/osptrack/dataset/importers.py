"""Turn every input kind into `RunRecord`s.

Inputs, in any mix: run folders (a folder with `run.json`), parent folders of runs,
package-analysis result JSON (`.json` holding one result or a list, or `.jsonl`), and OSPtrack's
`label_data.csv`. Discovery is separate from reading so the builder can fan the units out to a
process pool and still keep a deterministic order (sorted by resolved path).
"""

from __future__ import annotations

import ast
import base64
import binascii
import csv
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import orjson

from osptrack.dataset.model import (
    PHASES,
    SOURCE_LOCAL,
    SOURCE_OPENSSF,
    SOURCE_OSPTRACK_CSV,
    AnalysisResult,
    CommandRec,
    DNSRec,
    FileRec,
    PackageInfo,
    PhaseResult,
    ProcessInfo,
    RunRecord,
    SocketRec,
)
from osptrack.errors import BadInput
from osptrack.target import normalise_ecosystem

_RESULT_DECODER = msgspec.json.Decoder(AnalysisResult, strict=False)
_RESULT_LIST_DECODER = msgspec.json.Decoder(list[AnalysisResult], strict=False)

UNIT_RUN = "run"
UNIT_JSON = "json"
UNIT_CSV = "csv"


@dataclass(frozen=True, order=True)
class InputUnit:
    """One thing to read: a run folder, one result JSON file, or one CSV file."""

    path: str
    kind: str


def discover(inputs: Iterable[Path]) -> list[InputUnit]:
    """Every readable unit under `inputs`, sorted by path; unknown inputs are a BadInput."""
    units: set[InputUnit] = set()
    for raw in inputs:
        path = Path(raw)
        if not path.exists():
            raise BadInput(f"input not found: {path}")
        if path.is_dir():
            units.update(_walk(path.resolve()))
        else:
            kind = _file_kind(path)
            if kind is None:
                raise BadInput(f"unsupported input {path}: expected a run folder, .json/.jsonl or .csv")
            units.add(InputUnit(str(path.resolve()), kind))
    return sorted(units)


def _file_kind(path: Path) -> str | None:
    name = path.name
    if name.endswith((".json", ".jsonl")):
        return UNIT_JSON
    if name.endswith(".csv"):
        return UNIT_CSV
    return None


# Files of a run folder and artefacts of our own outputs, never results themselves.
_RUN_FILES = {"run.json", "result.json", "events.jsonl", "network.jsonl"}
_SKIP_FILES = {"build_stats.json", "manifest.json", "analysis_runs.csv", "data_metrics.csv"}


def _walk(root: Path) -> Iterator[InputUnit]:
    if (root / "run.json").is_file():
        yield InputUnit(str(root), UNIT_RUN)
        return
    stack = [root]
    while stack:
        folder = stack.pop()
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in entries:
            if entry.name.startswith("."):
                continue  # temp folders of runs still being written, hidden files
            if entry.is_dir():
                if os.path.isfile(os.path.join(entry.path, "run.json")):
                    yield InputUnit(entry.path, UNIT_RUN)
                else:
                    stack.append(Path(entry.path))
            elif entry.name not in _RUN_FILES and entry.name not in _SKIP_FILES:
                kind = _file_kind(Path(entry.name))
                if kind is not None:
                    yield InputUnit(entry.path, kind)


def read_unit(unit: InputUnit) -> Iterator[RunRecord]:
    if unit.kind == UNIT_RUN:
        yield read_run_folder(Path(unit.path))
    elif unit.kind == UNIT_JSON:
        yield from read_result_json(Path(unit.path))
    else:
        yield from read_osptrack_csv(Path(unit.path))


# ---------------------------------------------------------------- package-analysis results


def _phases_of(result: AnalysisResult) -> tuple[dict[str, PhaseResult], bool]:
    if not result.Analysis:
        return {}, True
    phases: dict[str, PhaseResult] = {}
    for key, value in result.Analysis.items():
        phase = key.lower()
        if value is not None and phase in PHASES:
            phases[phase] = value
    return phases, not phases


def _record_from_result(result: AnalysisResult, source: str, path: str) -> RunRecord:
    pkg = result.Package
    try:
        ecosystem = normalise_ecosystem(pkg.Ecosystem)
    except BadInput:
        raise BadInput(f"{path}: unknown ecosystem {pkg.Ecosystem!r}") from None
    if not pkg.Name:
        raise BadInput(f"{path}: result has no Package.Name")
    phases, missing = _phases_of(result)
    timed_out = tuple(p for p, r in phases.items() if r.Status == "error_timeout")
    return RunRecord(
        ecosystem=ecosystem,
        name=pkg.Name,
        version=pkg.Version or "",
        simulation_source=source,
        source_path=path,
        phases=phases,
        created=result.CreatedTimestamp,
        timed_out_phases=timed_out,
        analysis_missing=missing,
    )


def read_result_json(path: Path) -> Iterator[RunRecord]:
    """package-analysis results: one object, a list of objects, or JSON lines."""
    data = path.read_bytes()
    try:
        if path.name.endswith(".jsonl"):
            results = [_RESULT_DECODER.decode(line) for line in data.splitlines() if line.strip()]
        elif data.lstrip()[:1] == b"[":
            results = _RESULT_LIST_DECODER.decode(data)
        else:
            results = [_RESULT_DECODER.decode(data)]
    except msgspec.DecodeError as exc:
        raise BadInput(f"{path}: not a package-analysis result: {exc}") from None
    for result in results:
        yield _record_from_result(result, SOURCE_OPENSSF, str(path))


# ---------------------------------------------------------------- run folders


def read_run_folder(folder: Path) -> RunRecord:
    try:
        run = orjson.loads((folder / "run.json").read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise BadInput(f"{folder}: unreadable run.json: {exc}") from None
    result_path = folder / "result.json"
    if result_path.is_file():
        try:
            result = _RESULT_DECODER.decode(result_path.read_bytes())
        except msgspec.DecodeError as exc:
            raise BadInput(f"{result_path}: not a package-analysis result: {exc}") from None
    else:
        pkg = run.get("package") or {}
        # A run that never produced a result (sandbox failure): keep it, with no phases.
        result = AnalysisResult(
            Package=PackageInfo(
                Ecosystem=str(pkg.get("ecosystem", "")),
                Name=str(pkg.get("name", "")),
                Version=pkg.get("version"),
            )
        )
    record = _record_from_result(result, SOURCE_LOCAL, str(folder))
    phases_meta: dict[str, Any] = run.get("phases") or {}
    record.phase_wall_s = {
        p: float(m.get("wall_s") or 0.0) for p, m in phases_meta.items() if isinstance(m, dict)
    }
    timed_out = set(record.timed_out_phases)
    timed_out.update(p for p, m in phases_meta.items() if isinstance(m, dict) and m.get("timed_out"))
    record.timed_out_phases = tuple(sorted(timed_out))
    trace = run.get("trace") or {}
    record.trace_valid = bool(trace["valid"]) if "valid" in trace else None
    record.local_archive = (run.get("package") or {}).get("archive")
    record.honeytokens = [str(h["value"]) for h in run.get("honeytokens") or [] if h.get("value")]
    record.exfiltration = len(run.get("exfiltration") or [])
    record.bait_reads = len(run.get("bait_reads") or [])
    record.process = read_process_info(folder / "events.jsonl")
    record.network_payloads = read_network_payloads(folder / "network.jsonl")
    return record


def read_process_info(path: Path) -> ProcessInfo | None:
    """Process-tree depth, process count, detached processes and chmod +x from events.jsonl.

    Only process and chmod lines are parsed: a cheap byte test skips the thousands of file
    events a report carries.
    """
    if not path.is_file():
        return None
    parent: dict[int, int] = {}
    exit_t: dict[int, float] = {}
    pids: set[int] = set()
    chmod_exec = 0
    with path.open("rb") as fh:
        for line in fh:
            if b'"process"' not in line and b"chmod" not in line:
                continue
            try:
                ev = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            kind = ev.get("kind")
            if kind == "process":
                pid = ev.get("pid")
                if not isinstance(pid, int):
                    continue
                pids.add(pid)
                ppid = ev.get("ppid")
                if isinstance(ppid, int) and pid not in parent and ppid != pid:
                    parent[pid] = ppid
                op = ev.get("op")
                if op == "clone" and isinstance(ev.get("child_pid"), int):
                    parent.setdefault(ev["child_pid"], pid)
                    pids.add(ev["child_pid"])
                elif op == "exit" and isinstance(ev.get("t"), int | float):
                    exit_t[pid] = float(ev["t"])
            elif (
                kind == "file"
                and ev.get("op") == "chmod"
                and ev.get("errno") is None
                and _mode_sets_exec(ev.get("args") or [])
            ):
                chmod_exec += 1
    return ProcessInfo(
        depth_max=max((_depth(pid, parent) for pid in pids), default=0),
        processes=len(pids),
        detached=sum(1 for pid in pids if _detached(pid, parent, exit_t)),
        chmod_exec=chmod_exec,
    )


def _depth(pid: int, parent: dict[int, int]) -> int:
    depth, seen = 1, {pid}
    while pid in parent and parent[pid] not in seen:
        pid = parent[pid]
        seen.add(pid)
        depth += 1
    return depth


def _detached(pid: int, parent: dict[int, int], exit_t: dict[int, float]) -> bool:
    """A process that outlived its parent: it was re-parented (daemonised, double fork, nohup)."""
    ppid = parent.get(pid)
    if ppid is None or ppid not in exit_t:
        return False
    mine = exit_t.get(pid)
    return mine is None or mine > exit_t[ppid]


def _mode_sets_exec(args: list[Any]) -> bool:
    for arg in reversed(args):
        text = str(arg).strip()
        if text.isdigit() or (text.startswith("0o") and text[2:].isdigit()):
            try:
                return bool(int(text.removeprefix("0o"), 8) & 0o111)
            except ValueError:
                return False
    return False


def read_network_payloads(path: Path) -> list[bytes] | None:
    """The bytes the fake network saw (first bytes, HTTP request line, SNI), for bait matching."""
    if not path.is_file():
        return None
    payloads: list[bytes] = []
    with path.open("rb") as fh:
        for line in fh:
            if not line.strip():
                continue
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            first = row.get("first_bytes")
            if first:
                try:
                    payloads.append(base64.b64decode(first, validate=False))
                except (binascii.Error, ValueError):
                    payloads.append(str(first).encode())
            http = row.get("http")
            if isinstance(http, dict):
                payloads.append(f"{http.get('path', '')} {http.get('host', '')}".encode())
            if row.get("kind") == "dns" and row.get("qname"):
                payloads.append(str(row["qname"]).encode())  # DNS tunnelling carries bait in names
    return payloads


# ---------------------------------------------------------------- OSPtrack label_data.csv

_CSV_KIND_TYPES: dict[str, Any] = {
    "Files": list[FileRec],
    "Sockets": list[SocketRec],
    "Commands": list[CommandRec],
    "DNS": list[DNSRec],
}


def _literal_list(cell: str | None, where: str) -> list[Any] | None:
    if cell is None:
        return None
    text = cell.strip()
    if not text or text.lower() in ("nan", "none", "null"):
        return None
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            raise BadInput(f"{where}: cell is not a Python-literal list") from None
    if not isinstance(value, list):
        raise BadInput(f"{where}: cell is not a list")
    return value


def _csv_label(value: str | None) -> Any:
    if value is None:
        return None
    text = value.strip().lower()
    if text in ("1", "1.0", "true", "malicious", "malware"):
        return 1
    if text in ("0", "0.0", "false", "benign"):
        return 0
    return None


def read_osptrack_csv(path: Path) -> Iterator[RunRecord]:
    csv.field_size_limit(sys.maxsize)  # a cell holds a whole phase's Files list
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        missing = [c for c in ("Ecosystem", "Name", "Version") if c not in header]
        if missing:
            raise BadInput(f"{path}: not an OSPtrack label_data.csv (missing {', '.join(missing)})")
        for lineno, row in enumerate(reader, start=2):
            where = f"{path}:{lineno}"
            try:
                ecosystem = normalise_ecosystem(row["Ecosystem"] or "")
            except BadInput:
                raise BadInput(f"{where}: unknown ecosystem {row['Ecosystem']!r}") from None
            phases: dict[str, PhaseResult] = {}
            for phase in PHASES:
                cells = {k: _literal_list(row.get(f"{phase}_{k}"), where) for k in _CSV_KIND_TYPES}
                if all(v is None for v in cells.values()):
                    continue
                try:
                    converted = {
                        k: msgspec.convert(v or [], type=_CSV_KIND_TYPES[k], strict=False)
                        for k, v in cells.items()
                    }
                except msgspec.ValidationError as exc:
                    raise BadInput(f"{where}: {phase} cell does not match the result schema: {exc}") from None
                phases[phase] = PhaseResult(Status="completed", **converted)
            status = (row.get("Analysis_Status") or "").strip()
            if status and status != "completed":
                for result in phases.values():
                    result.Status = status
            timed_out = _truthy(row.get("Timed_Out"))
            trace_valid = row.get("Trace_Valid")
            yield RunRecord(
                ecosystem=ecosystem,
                name=(row["Name"] or "").strip(),
                version=(row["Version"] or "").strip(),
                simulation_source=(row.get("Simulation_Source") or "").strip() or SOURCE_OSPTRACK_CSV,
                source_path=where,
                phases=phases,
                timed_out_phases=tuple(phases) if timed_out else (),
                trace_valid=_truthy(trace_valid) if trace_valid not in (None, "") else None,
                local_archive=(row.get("Local_Archive") or "").strip() or None,
                analysis_missing=not phases,
                given_label=_csv_label(row.get("Label")),
                given_sub_label=(row.get("Sub_Label") or "").strip() or None,
            )


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "1.0")
