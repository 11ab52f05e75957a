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
# manifest.csv is `osptrack batch`'s attempt log, which sits beside the runs it describes.
_SKIP_FILES = {"build_stats.json", "manifest.json", "manifest.csv", "analysis_runs.csv", "data_metrics.csv"}


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


def read_unit(unit: InputUnit, rejected: list[str] | None = None) -> Iterator[RunRecord]:
    """The records of one unit. With `rejected`, an unreadable record is noted there and skipped
    (the next line of a .jsonl still counts); without, it raises BadInput."""
    try:
        if unit.kind == UNIT_RUN:
            yield read_run_folder(Path(unit.path))
        elif unit.kind == UNIT_JSON:
            yield from read_result_json(Path(unit.path), rejected)
        else:
            yield from read_osptrack_csv(Path(unit.path))
    except BadInput as exc:
        if rejected is None:
            raise
        rejected.append(str(exc))


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


# What a decoder raises on hostile bytes: bad JSON or types, invalid UTF-8, absurd numbers.
_DECODE_ERRORS = (msgspec.DecodeError, UnicodeDecodeError, ValueError, RecursionError)


def _decode_result(data: bytes, where: str) -> AnalysisResult:
    try:
        return _RESULT_DECODER.decode(data)
    except _DECODE_ERRORS as exc:
        raise BadInput(f"{where}: not a package-analysis result: {_short(exc)}") from None


def _short(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


def read_result_json(path: Path, rejected: list[str] | None = None) -> Iterator[RunRecord]:
    """package-analysis results: one object, a list of objects, or JSON lines.

    With `rejected`, a bad line of a .jsonl is noted there and the other lines still count."""
    data = path.read_bytes()
    if path.name.endswith(".jsonl"):
        for lineno, line in enumerate(data.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                yield _record_from_result(_decode_result(line, f"{path}:{lineno}"), SOURCE_OPENSSF, str(path))
            except BadInput as exc:
                if rejected is None:
                    raise
                rejected.append(str(exc))
        return
    if data.lstrip()[:1] == b"[":
        try:
            results = _RESULT_LIST_DECODER.decode(data)
        except _DECODE_ERRORS as exc:
            raise BadInput(f"{path}: not a list of package-analysis results: {_short(exc)}") from None
    else:
        results = [_decode_result(data, str(path))]
    for result in results:
        yield _record_from_result(result, SOURCE_OPENSSF, str(path))


# ---------------------------------------------------------------- run folders


def read_run_folder(folder: Path) -> RunRecord:
    try:
        run = orjson.loads((folder / "run.json").read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise BadInput(f"{folder}: unreadable run.json: {_short(exc)}") from None
    if not isinstance(run, dict):
        raise BadInput(f"{folder}: run.json is not a JSON object")
    result_path = folder / "result.json"
    pkg = _dict(run.get("package"))
    if result_path.is_file():
        result = _decode_result(result_path.read_bytes(), str(result_path))
    else:
        # A run that never produced a result (sandbox failure): keep it, with no phases.
        result = AnalysisResult(
            Package=PackageInfo(
                Ecosystem=str(pkg.get("ecosystem", "")),
                Name=str(pkg.get("name", "")),
                Version=pkg.get("version"),
            )
        )
    record = _record_from_result(result, SOURCE_LOCAL, str(folder))
    # run.json is written by the tool, but a run folder may come from anywhere: a wrong type
    # anywhere below is treated as absent, never as a crash.
    phases_meta = _dict(run.get("phases"))
    record.phase_wall_s = {p: _float(m.get("wall_s")) for p, m in phases_meta.items() if isinstance(m, dict)}
    timed_out = set(record.timed_out_phases)
    timed_out.update(p for p, m in phases_meta.items() if isinstance(m, dict) and m.get("timed_out"))
    record.timed_out_phases = tuple(sorted(timed_out))
    trace = _dict(run.get("trace"))
    record.trace_valid = bool(trace["valid"]) if "valid" in trace else None
    archive = pkg.get("archive")
    record.local_archive = archive if isinstance(archive, str) else None
    record.honeytokens = [
        str(h["value"]) for h in _list(run.get("honeytokens")) if isinstance(h, dict) and h.get("value")
    ]
    record.exfiltration = len(_list(run.get("exfiltration")))
    record.bait_reads = len(_list(run.get("bait_reads")))
    if "probes" in run:  # runs older than the field cannot tell
        mine = [p for p in _list(run.get("probes")) if isinstance(p, dict) and p.get("toolchain") is None]
        record.probes = {
            p: len({str(x.get("path")) for x in mine if x.get("phase") == p}) for p in phases_meta
        }
    record.lookup_probes = {
        p: {
            (str(s.get("Address")), s["Port"])
            for s in _list(m.get("lookup_probes"))
            if isinstance(s, dict) and isinstance(s.get("Port"), int)
        }
        for p, m in phases_meta.items()
        if isinstance(m, dict)
    }
    record.process = read_process_info(folder / "events.jsonl")
    record.network_payloads = read_network_payloads(folder / "network.jsonl")
    return record


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _float(value: Any) -> float:
    try:
        out = float(value or 0.0)
    except (TypeError, ValueError):
        return 0.0
    return out if out == out and abs(out) != float("inf") else 0.0


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
            if not isinstance(ev, dict):
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
            if not isinstance(row, dict):
                continue
            first = row.get("first_bytes")
            if isinstance(first, str) and first:
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
    try:
        yield from _read_osptrack_csv(path)
    except UnicodeDecodeError as exc:
        raise BadInput(f"{path}: not UTF-8 text (byte {exc.start} of a read block)") from None
    except csv.Error as exc:
        raise BadInput(f"{path}: not a readable CSV: {exc}") from None


def _read_osptrack_csv(path: Path) -> Iterator[RunRecord]:
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
