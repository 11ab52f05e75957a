"""One run folder -> rows of every hunting table (osptrack.hunt.schema), as column lists.

Column lists, not row dicts: a segment of a few hundred runs becomes one Arrow table per view
without a per-row conversion. Unreadable files are a BadInput naming the file.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pyarrow as pa

from osptrack.dataset.model import AnalysisResult
from osptrack.errors import BadInput
from osptrack.hunt.schema import TABLES, arrow_schema


class Columns:
    """Per-table column lists, appended to row by row."""

    def __init__(self) -> None:
        self.cols: dict[str, dict[str, list[Any]]] = {
            t: {c.name: [] for c in cols} for t, cols in TABLES.items()
        }

    def add(self, table: str, **values: Any) -> None:
        for name, column in self.cols[table].items():
            column.append(values.get(name))

    def to_arrow(self, table: str) -> pa.Table:
        schema = arrow_schema(table)
        return pa.table({n: pa.array(v, type=schema.field(n).type) for n, v in self.cols[table].items()})


_decode_result = msgspec.json.Decoder(AnalysisResult).decode


def _load_json(path: Path) -> Any:
    try:
        return orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise BadInput(f"{path}: unreadable ({exc})") from None


def _d(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _l(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _s(value: Any) -> str | None:
    return None if value is None else str(value)


def _i(value: Any) -> int | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _f(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _ls(value: Any) -> list[str] | None:
    return [str(x) for x in value] if isinstance(value, list) else None


def _jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    out = []
    try:
        lines = path.read_bytes().splitlines()
    except OSError as exc:
        raise BadInput(f"{path}: unreadable ({exc})") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise BadInput(f"{path}:{n}: not JSON ({exc})") from None
        if isinstance(rec, dict):
            out.append(rec)
    return out


def parse_run(folder: Path, cols: Columns, batch: str | None = None) -> None:
    """Append one run folder's rows to `cols`."""
    run_id = str(folder)
    run = _d(_load_json(folder / "run.json"))
    result_path = folder / "result.json"
    try:
        result = _decode_result(result_path.read_bytes()) if result_path.is_file() else None
    except (OSError, msgspec.DecodeError) as exc:
        raise BadInput(f"{result_path}: not a package-analysis result ({exc})") from None
    pkg = _d(run.get("package"))
    phases = _d(run.get("phases"))
    verdict = _d(run.get("verdict"))
    findings = _l(verdict.get("findings"))
    honeytokens = _l(run.get("honeytokens"))
    exfil = _l(run.get("exfiltration"))
    bait_reads = _l(run.get("bait_reads"))
    analysis = (result.Analysis or {}) if result is not None else {}
    status = {p: (r.Status if r is not None else None) for p, r in analysis.items()}
    for p, info in phases.items():
        status.setdefault(p, _s(_d(info).get("status")))
    cols.add(
        "runs",
        run_id=run_id,
        source="run",
        path=run_id,
        batch=batch,
        ecosystem=_s(pkg.get("ecosystem")) or (result.Package.Ecosystem if result else None),
        name=_s(pkg.get("name")) or (result.Package.Name if result else None),
        version=_s(pkg.get("version")) or (result.Package.Version if result else None),
        archive=_s(pkg.get("archive")),
        sha256=_s(pkg.get("sha256")),
        verdict=_s(verdict.get("level")),
        score=_f(verdict.get("score")),
        findings_n=len(findings),
        install_status=status.get("install"),
        import_status=status.get("import"),
        execute_status=status.get("execute"),
        trace_valid=_d(run.get("trace")).get("valid"),
        timed_out=any(bool(_d(i).get("timed_out")) for i in phases.values())
        or "error_timeout" in status.values(),
        network=_s(_d(run.get("sandbox")).get("network")),
        created=result.CreatedTimestamp if result else None,
        total_s=_f(_d(run.get("timings")).get("total_s")),
        honeytokens_n=len(honeytokens),
        exfiltration_n=len(exfil),
        bait_reads_n=len(bait_reads),
    )
    for phase, res in analysis.items():
        if res is None:
            continue
        for f in res.Files or ():
            cols.add(
                "files", run_id=run_id, phase=phase, path=f.Path, read=f.Read, write=f.Write, delete=f.Delete
            )
        for s in res.Sockets or ():
            names = list(s.Hostnames or [])
            cols.add(
                "sockets",
                run_id=run_id,
                phase=phase,
                address=s.Address,
                port=s.Port,
                hostnames=names,
                hostname=names[0] if names else None,
            )
        for c in res.Commands or ():
            argv = list(c.Command or [])
            cols.add(
                "commands",
                run_id=run_id,
                phase=phase,
                command=argv,
                command_line=" ".join(argv),
                environment=list(c.Environment or []),
            )
        for d in res.DNS or ():
            for q in d.Queries or ():
                cols.add(
                    "dns",
                    run_id=run_id,
                    phase=phase,
                    **{"class": d.Class},
                    hostname=q.Hostname,
                    types=list(q.Types or []),
                )
    for e in _jsonl(folder / "events.jsonl"):
        cols.add(
            "events",
            run_id=run_id,
            t=_f(e.get("t")),
            phase=_s(e.get("phase")),
            pid=_i(e.get("pid")),
            ppid=_i(e.get("ppid")),
            exe=_s(e.get("exe")),
            comm=_s(e.get("comm")),
            syscall=_s(e.get("syscall")),
            kind=_s(e.get("kind")),
            op=_s(e.get("op")),
            path=_s(e.get("path")),
            path2=_s(e.get("path2")),
            ret=_i(e.get("ret")),
            errno=_s(e.get("errno")),
            argv=_ls(e.get("argv")),
            family=_s(e.get("family")),
            address=_s(e.get("address")),
            port=_i(e.get("port")),
            child_pid=_i(e.get("child_pid")),
            exit_code=_i(e.get("exit_code")),
            signal=_s(e.get("signal")),
            ftype=_s(e.get("ftype")),
        )
    for n in _jsonl(folder / "network.jsonl"):
        payload = _payload(n.get("first_bytes"))
        http = _d(n.get("http"))
        kind = _s(n.get("kind"))
        cols.add(
            "flows",
            run_id=run_id,
            t=_f(n.get("t")),
            phase=_s(n.get("phase")),
            kind=kind,
            dst=_s(n.get("dst") or n.get("server")),
            dst_port=_i(n.get("dst_port") or n.get("server_port")),
            hostname=_s(n.get("qname") if kind == "dns" else n.get("hostname")),
            tls_sni=_s(n.get("tls_sni")),
            http_method=_s(http.get("method")),
            http_path=_s(http.get("path")),
            http_host=_s(http.get("host")),
            qtype=_s(n.get("qtype")),
            answer=_ls(n.get("answer")),
            bytes=_i(n.get("bytes")),
            payload=payload,
            payload_sha256=hashlib.sha256(payload).hexdigest() if payload else None,
        )
    level = _s(verdict.get("level"))
    for raw in findings:
        fd = _d(raw)
        token = fd.get("honeytoken")
        if token is None:  # osptrack.verdict keeps it on the evidence items
            token = next(
                (
                    e.get("honeytoken")
                    for e in _l(fd.get("evidence"))
                    if isinstance(e, dict) and e.get("honeytoken")
                ),
                None,
            )
        cols.add(
            "findings",
            run_id=run_id,
            level=level,
            rule=_s(fd.get("rule") or fd.get("id")),
            title=_s(fd.get("title")),
            severity=_s(fd.get("severity")),
            source=_s(fd.get("source")),
            phase=_s(fd.get("phase")),
            honeytoken=_s(_d(token).get("kind") if isinstance(token, dict) else token),
            evidence=orjson.dumps(fd.get("evidence"), default=str).decode() if "evidence" in fd else None,
        )
    exfil_kinds = {_d(x).get("kind") for x in exfil}
    read_paths = {_d(x).get("path") for x in bait_reads}
    for raw in honeytokens:
        h = _d(raw)
        planted = _ls(h.get("planted")) or []
        cols.add(
            "honeytokens",
            run_id=run_id,
            kind=_s(h.get("kind")),
            value=_s(h.get("value")),
            planted=planted,
            exfiltrated=h.get("kind") in exfil_kinds,
            read=any(p in read_paths for p in planted),
        )


def _payload(value: Any) -> bytes | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return base64.b64decode(value, validate=False)
    except (binascii.Error, ValueError):
        return None
