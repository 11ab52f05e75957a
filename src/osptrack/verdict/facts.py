"""The log sources the rules match: one flat record per exec, file event, connection, DNS query,
flow, exfiltrated honeytoken, bait read and phase, built from events.jsonl, network.jsonl and run.json.

Records are plain dicts whose keys are the fields a rule names (docs/rules.md lists them per
category). `_ref` links a record to its line in the run folder, `_type` says what kind of evidence it is.
`toolchain` is True for what the package manager and the harness do on their own (the same
predicates as the summary's "notable" lists); the engine skips such records unless a rule asks.
"""

from __future__ import annotations

import base64
import functools
import ipaddress
import math
import shlex
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from osptrack import summary
from osptrack.ecosystems.base import Ecosystem
from osptrack.jsonio import read_jsonl
from osptrack.registry import REGISTRY_HOST
from osptrack.trace import sensitive
from osptrack.trace.events import Event, EventLog, decode_event, read_events_jsonl
from osptrack.trace.roles import Classifier, Verdict, VerdictTrail

# 198.18.0.0/24 holds the fake network's own services (resolver, proxy, local address: see
# sandbox/netns.py); names get sinkholes from 198.18.1.0 up, which are the "internet".
INFRASTRUCTURE_V4 = ipaddress.ip_network("198.18.0.0/24")
INFRASTRUCTURE_V6 = ipaddress.ip_network("fd5e:1800::/120")
SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "ash", "busybox", "fish", "csh", "tcsh"})
PAYLOAD_CHARS = 2048  # decoded payload text kept on a flow record


@dataclass
class RunData:
    """Everything the verdict reads, in run-folder order (events sorted by time, as written)."""

    run_info: dict[str, Any]
    # a list, or an EventLog (events.jsonl read lazily, once per pass): facts.build makes two passes
    events: Sequence[Event] | EventLog
    records: list[dict[str, Any]]  # network.jsonl
    result: dict[str, Any] = field(default_factory=dict)
    # pid -> argv of its last exec over `events` (summary.process_argv), when the caller has it
    # already: the run's own pass does, which saves the verdict a pass over events.jsonl
    argv: dict[int, list[str]] | None = None
    # each event's toolchain verdict over `events`, in its order (roles.VerdictTrail), when the
    # caller has it: the run's own pass does, so the verdict neither classifies again nor
    # decodes the toolchain's own file and network events, which get no record
    trail: VerdictTrail | None = None

    @classmethod
    def load(cls, run_dir: Path, *, lazy: bool = False) -> RunData:
        """The run folder's files; `lazy`: events.jsonl is read on each pass, never held."""
        import orjson

        run_info = orjson.loads((run_dir / "run.json").read_bytes())
        events_path = run_dir / "events.jsonl"
        events: Sequence[Event] | EventLog = []
        if events_path.exists():
            events = EventLog(events_path) if lazy else read_events_jsonl(events_path)
        records = read_jsonl(run_dir / "network.jsonl") if (run_dir / "network.jsonl").exists() else []
        result_path = run_dir / "result.json"
        result = orjson.loads(result_path.read_bytes()) if result_path.exists() else {}
        return cls(run_info=run_info, events=events, records=records, result=result)


def build(run: RunData, eco: Ecosystem, toolchain_records: bool = True) -> dict[str, list[dict[str, Any]]]:
    """Category -> records (`iter_records`, collected)."""
    out: dict[str, list[dict[str, Any]]] = {
        "process_creation": [],
        "file_event": [],
        "network_connection": [],
        "network_listen": [],
        "dns_query": [],
        "flow": [],
        "honeytoken_exfiltration": [],
        "bait_read": [],
        "phase_state": [],
        "process_alive": [],
        "second_stage": [],
    }
    for category, rec in iter_records(run, eco, toolchain_records):
        out[category].append(rec)
    return out


def iter_records(
    run: RunData, eco: Ecosystem, toolchain_records: bool = True
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(category, record) pairs, the events' first and in events.jsonl order.

    Two passes over `run.events` (each process's last argv, unless `run.argv` has it, then the records), so a run's
    events need not be held in memory: only per-process state and the records a rule matches.
    Without `toolchain_records`, the toolchain's own file and network events get no record (no
    rule would look at them; a big npm install has tens of thousands)."""
    # The ecosystem's registries, and the registry service of the fake network that pip/npm use.
    registry = {h.lower() for h in eco.registry_hosts} | {REGISTRY_HOST}
    names = _ip_names(run.records)
    argv = run.argv if run.argv is not None else summary.process_argv(run.events)
    connected: dict[int, float] = {}  # pid -> time of its first internet connect
    # what the bait-read and second-stage records point at: their events' lines
    bait_keys = {(r.get("pid"), r.get("path")) for r in run.run_info.get("bait_reads") or []}
    bait_index: dict[tuple[Any, Any], tuple[int, float, Any]] = {}
    stages = _stage_items(run.run_info)
    marker = _stage_marker(run.run_info)
    stage_keys = {(item.get("t"), item.get("pid")) for item in stages}
    stage_index: dict[tuple[Any, Any], int] = {}
    # the file events the two indexes look at, whoever made them (None: every file event)
    bait_paths = {path for _, path in bait_keys}
    looked_at = bait_paths if not stage_keys else None if marker is None else bait_paths | {marker}
    for i, e, verdict in _judged_events(run, eco, toolchain_records, looked_at):
        toolchain = verdict.toolchain
        if e.kind == "file":
            key = (e.pid, e.path)
            if key in bait_keys and key not in bait_index:
                bait_index[key] = (i, e.t, verdict)
            if (marker is None or e.path == marker) and (e.t, e.pid) in stage_keys:
                stage_index[(e.t, e.pid)] = i
        if not toolchain_records and e.kind != "process" and toolchain:
            continue
        base = {
            "_ref": f"event:{i}",
            "_type": "event",
            "t": e.t,
            "phase": e.phase,
            "pid": e.pid,
            "ppid": e.ppid,
            "exe": e.exe,
            "image_name": _base(e.exe),
            "syscall": e.syscall,
            "op": e.op,
            "ok": e.ok,
            "errno": e.errno,
        }
        if e.kind == "process" and e.op == "exec" and e.ok and e.argv:
            line = shlex.join(e.argv)
            parent_t = connected.get(e.ppid or -1) if e.ppid is not None else None
            own_t = connected.get(e.pid)
            yield (
                "process_creation",
                base
                | {
                    "image": e.path,
                    "image_name": _base(e.path),
                    "parent_image": e.exe,
                    "parent_image_name": _base(e.exe),
                    "argv": e.argv,
                    "command_line": line,
                    "shell": _base(e.path) in SHELLS,
                    "parent_argv": argv.get(e.ppid or -1),
                    # the process or its parent had an internet connection open before this exec:
                    # the shape of `dup2(sock, 0..2); exec /bin/sh` (dup2 itself is not traced)
                    "after_connect": (own_t is not None and own_t <= e.t)
                    or (parent_t is not None and parent_t <= e.t),
                    "toolchain": toolchain,
                },
            )
        elif e.kind == "file" and e.path:
            pargv = argv.get(e.pid, [])
            yield (
                "file_event",
                base
                | {
                    "path": e.path,
                    "path2": e.path2,
                    "ftype": e.ftype,
                    "argv": pargv,
                    "read": e.op == "read" or e.read,
                    "probe": e.probe,  # a stat/access/readlink or failed open of a sensitive path
                    "sensitive": sensitive.category(e.path),
                    "toolchain": toolchain,
                },
            )
        elif e.kind == "network" and e.op == "listen":
            yield (
                "network_listen",
                base
                | {
                    "family": e.family,
                    "address": e.address,
                    "port": e.port,
                    "internet": e.family in ("AF_INET", "AF_INET6"),
                    "argv": argv.get(e.pid, []),
                    "toolchain": toolchain,
                },
            )
        elif e.kind == "network" and e.op in ("connect", "sendto") and e.address and not e.lookup_probe:
            hostnames = names.get(e.address, [])
            infra = _infrastructure(e.address, e.family)
            internet = e.family in ("AF_INET", "AF_INET6") and not infra
            is_registry = bool(hostnames) and all(h in registry for h in hostnames)
            rec = base | {
                "family": e.family,
                "address": e.address,
                "port": e.port,
                "hostname": hostnames[0] if hostnames else None,
                "hostnames": hostnames,
                "infrastructure": infra,
                "internet": internet,
                "registry": is_registry,
                "argv": argv.get(e.pid, []),
                "toolchain": toolchain,
            }
            yield ("network_connection", rec)
            if internet and not is_registry and (e.ok or e.errno == "EINPROGRESS"):  # non-blocking connect
                connected.setdefault(e.pid, e.t)
    dns, flows = _network(run.records, registry, names)
    yield from (("dns_query", r) for r in dns)
    yield from (("flow", r) for r in flows)
    yield from (("honeytoken_exfiltration", r) for r in _exfiltration(run, names))
    yield from (("bait_read", r) for r in _bait_reads(run, eco, bait_index))
    states, alive = _phases(run.run_info)
    yield from (("phase_state", r) for r in states)
    yield from (("process_alive", r) for r in alive)
    yield from (("second_stage", r) for r in _second_stage(stages, marker, stage_index))


def _judged_events(
    run: RunData, eco: Ecosystem, toolchain_records: bool, looked_at: set[Any] | None
) -> Iterator[tuple[int, Event, Verdict]]:
    """(line, event, its toolchain verdict) over `run.events` in order. With `run.trail`, the
    verdicts are the trail's, and an event no record or index needs is not decoded: a
    toolchain file or network event whose line names none of the `looked_at` paths (None:
    every file event is looked at)."""
    trail = run.trail
    if trail is None or not trail.valid:
        classifier = Classifier(eco.toolchain_rules())  # by exe path and process tree
        for i, e in enumerate(run.events):
            yield i, e, classifier.verdict(e)
        return
    verdicts = trail.verdicts
    if not isinstance(run.events, EventLog):
        if len(run.events) != len(verdicts):
            raise ValueError(f"{len(run.events)} events, the verdict trail {len(verdicts)}")
        yield from ((i, e, v) for i, (e, v) in enumerate(zip(run.events, verdicts, strict=True)))
        return
    # msgspec writes a line compactly and escapes every quote inside a string, so a line holds
    # `"kind":"process"` exactly when it is a process event, and a path's JSON string whenever
    # the event names that path: a line without them needs no decoding.
    plain = looked_at is not None and all(isinstance(p, str) for p in looked_at)
    needles = tuple(_json_string(p) for p in sorted(looked_at)) if looked_at is not None and plain else None
    skip = not toolchain_records
    # strict: a trail of another length than the log is an error, never a shifted verdict
    for i, (verdict, line) in enumerate(zip(verdicts, run.events.lines(), strict=True)):
        if skip and verdict.toolchain and _PROCESS_LINE not in line:
            if needles is None:
                if _FILE_LINE not in line:
                    continue
            else:
                for needle in needles:
                    if needle in line:
                        break
                else:
                    continue
        yield i, decode_event(line), verdict


_PROCESS_LINE = b'"kind":"process"'
_FILE_LINE = b'"kind":"file"'


def _json_string(text: str) -> bytes:
    import msgspec

    return msgspec.json.encode(text)


@functools.lru_cache(maxsize=4096)
def _base(path: str | None) -> str | None:
    return path.rsplit("/", 1)[-1] if path else None


def _infrastructure(address: str, family: str | None) -> bool:
    if family not in ("AF_INET", "AF_INET6"):
        return True  # AF_UNIX, netlink: not a connection to anywhere
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if ip.is_loopback or ip.is_unspecified:
        return True
    net = INFRASTRUCTURE_V4 if ip.version == 4 else INFRASTRUCTURE_V6
    return ip in net


def _ip_names(records: Iterable[dict[str, Any]]) -> dict[str, list[str]]:
    """Sinkhole address -> the names the fake DNS handed it out for (and flow hostnames)."""
    names: dict[str, list[str]] = {}
    for r in records:
        if r.get("kind") == "dns" and r.get("qname"):
            for a in r.get("answer") or []:
                lst = names.setdefault(str(a), [])
                q = _norm(r["qname"])
                if q not in lst:
                    lst.append(q)
        elif r.get("dst") and r.get("hostname"):
            lst = names.setdefault(str(r["dst"]), [])
            h = _norm(r["hostname"])
            if h not in lst:
                lst.append(h)
    return names


def _norm(name: str) -> str:
    return name.rstrip(".").lower()


def entropy(text: str) -> float:
    """Shannon entropy in bits per character (random base32/hex labels score ~4 and more)."""
    if not text:
        return 0.0
    counts = Counter(text)
    return -sum(c / len(text) * math.log2(c / len(text)) for c in counts.values())


def _network(
    records: list[dict[str, Any]], registry: set[str], names: dict[str, list[str]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    dns: list[dict[str, Any]] = []
    flows: list[dict[str, Any]] = []
    for i, r in enumerate(records):
        base = {
            "_ref": f"flow:{i}",
            "_type": "flow",
            "t": r.get("t"),
            "phase": r.get("phase"),
            "kind": r.get("kind"),
        }
        if r.get("kind") == "dns":
            q = _norm(str(r.get("qname") or ""))
            labels = q.split(".") if q else []
            parent = ".".join(labels[-2:]) if len(labels) >= 2 else q
            sub = ".".join(labels[:-2])
            dns.append(
                base
                | {
                    "qname": q,
                    "qtype": r.get("qtype"),
                    "answer": r.get("answer"),
                    "registry": q in registry,
                    "local": q in summary.LOCAL_NAMES or q.endswith(".local") or "." not in q,
                    "parent_domain": parent,
                    "subdomain": sub,
                    "subdomain_length": len(sub),
                    "subdomain_entropy": round(entropy(sub.replace(".", "")), 3),
                }
            )
            continue
        http = r.get("http") or {}
        dst = str(r.get("dst") or "")
        infra = _infrastructure(dst, "AF_INET6" if ":" in dst else "AF_INET") if dst else False
        hostname = r.get("hostname") or next(iter(names.get(dst) or []), None)
        flows.append(
            base
            | {
                "dst": dst,
                "dst_port": r.get("dst_port"),
                "hostname": _norm(hostname) if hostname else None,
                "tls_sni": r.get("tls_sni"),
                "http_method": http.get("method"),
                "http_path": http.get("path"),
                "http_host": http.get("host"),
                "bytes": r.get("bytes"),
                "payload": payload_text(r.get("first_bytes")),
                "decrypted": bool(r.get("decrypted") or r.get("tls_decrypted")),
                "registry": bool(hostname) and _norm(str(hostname)) in registry,
                "infrastructure": infra,
                # online mode: a flow to the fake network's own address that names a host is a
                # CONNECT through the allowlisting proxy (hostname = the CONNECT target)
                "via_proxy": infra and bool(hostname),
            }
        )
    return dns, flows


def payload_text(first_bytes: str | None, limit: int = PAYLOAD_CHARS) -> str:
    """The captured bytes as text: printable ASCII kept, everything else as `\\xNN`."""
    if not first_bytes:
        return ""
    try:
        raw = base64.b64decode(first_bytes, validate=False)[:limit]
    except (ValueError, TypeError):
        return ""
    return "".join(chr(b) if 32 <= b < 127 or b in (9, 10, 13) else f"\\x{b:02x}" for b in raw)


def _exfiltration(run: RunData, names: dict[str, list[str]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for item in run.run_info.get("exfiltration") or []:
        flow = item.get("flow") or {}
        dst = flow.get("dst") or flow.get("qname")
        ref = _flow_ref(run.records, item.get("t"), dst)
        out.append(
            {
                "_ref": ref,
                "_type": "honeytoken",
                "t": item.get("t"),
                "phase": item.get("phase"),
                "token": item.get("kind"),
                "encoding": item.get("encoding"),
                "flow_kind": flow.get("kind"),
                "dst": dst,
                "dst_port": flow.get("dst_port"),
                "hostname": next(iter(names.get(str(dst)) or []), flow.get("hostname")),
            }
        )
    return out


def _flow_ref(records: list[dict[str, Any]], t: Any, dst: Any) -> str | None:
    for i, r in enumerate(records):
        if r.get("t") == t and (r.get("dst") == dst or r.get("qname") == dst):
            return f"flow:{i}"
    return None


def _bait_reads(
    run: RunData, eco: Ecosystem, index: dict[tuple[Any, Any], tuple[int, float, Any]]
) -> list[dict[str, Any]]:
    """`index`: (pid, path) -> (line, t, toolchain verdict) of that pid's first file event on the path."""
    planted: dict[str, list[str]] = {}
    for token in run.run_info.get("honeytokens") or []:
        for where in token.get("planted") or []:
            planted.setdefault(where, []).append(token.get("kind"))
    out: list[dict[str, Any]] = []
    for r in run.run_info.get("bait_reads") or []:
        hit = index.get((r.get("pid"), r.get("path")))
        argv = r.get("argv") or []
        verdict = hit[2] if hit is not None else None
        rule = r.get("toolchain") or (verdict.rule if verdict is not None and verdict.toolchain else None)
        out.append(
            {
                "_ref": f"event:{hit[0]}" if hit is not None else None,
                "_type": "event",
                "t": hit[1] if hit is not None else None,
                "phase": r.get("phase"),
                "pid": r.get("pid"),
                "exe": r.get("exe"),
                "argv": argv,
                "path": r.get("path"),
                "tokens": planted.get(str(r.get("path")), []),
                "toolchain": eco.expected_bait_reader(str(r.get("path")), rule),
            }
        )
    return out


def _phases(run_info: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One record per phase, and one per process still alive when its phase ended.

    `alive_at_end` (per phase) may be a list of processes ({pid, exe, argv, ...}) or a count.
    """
    states: list[dict[str, Any]] = []
    alive: list[dict[str, Any]] = []
    for phase, info in (run_info.get("phases") or {}).items():
        left = info.get("alive_at_end")
        items = left if isinstance(left, list) else []
        count = len(items) if isinstance(left, list) else int(left or 0)
        states.append(
            {
                "_ref": f"fact:phases.{phase}",
                "_type": "fact",
                "phase": phase,
                "status": info.get("status"),
                "timed_out": bool(info.get("timed_out")),
                "exit_code": info.get("exit_code"),
                "alive_at_end": count,
                "t": info.get("started"),
            }
        )
        for p in items:
            p = p if isinstance(p, dict) else {"pid": p}
            argv = p.get("argv") or p.get("cmdline") or []
            alive.append(
                {
                    "_ref": f"fact:phases.{phase}.alive_at_end",
                    "_type": "fact",
                    "phase": phase,
                    "pid": p.get("pid"),
                    "exe": p.get("exe"),
                    "argv": argv if isinstance(argv, list) else [str(argv)],
                    "toolchain": bool(p.get("toolchain")),  # the rule name of a toolchain process
                    "killed_by": p.get("killed_by"),
                    "t": p.get("t") or p.get("started"),
                }
            )
        if count and not items:
            alive.append(
                {
                    "_ref": f"fact:phases.{phase}.alive_at_end",
                    "_type": "fact",
                    "phase": phase,
                    "count": count,
                    "toolchain": False,
                }
            )
    return states, alive


def _stage_items(info: dict[str, Any]) -> list[dict[str, Any]]:
    """run.json `second_stage_executed` (True when a served second stage wrote the run's marker),
    with `second_stage.writes` ({phase, pid, exe, t}) naming the events; older shapes (a list of
    proofs, a phase -> proofs map) are read too."""
    raw = info.get("second_stage_executed")
    if not raw:
        return []
    items: list[Any]
    if isinstance(raw, list):
        items = raw
    elif isinstance(raw, dict):
        items = [
            (p if isinstance(p, dict) else {}) | {"phase": phase}
            for phase, proofs in raw.items()
            for p in (proofs if isinstance(proofs, list) else [{}] if proofs else [])
        ]
    else:
        stage = info.get("second_stage")
        items = list((stage if isinstance(stage, dict) else {}).get("writes") or []) or [{}]
    return [item if isinstance(item, dict) else {"detail": str(item)} for item in items]


def _stage_marker(info: dict[str, Any]) -> Any:
    stage = info.get("second_stage")
    return stage.get("marker") if isinstance(stage, dict) else None


def _second_stage(
    items: list[dict[str, Any]], marker: Any, index: dict[tuple[Any, Any], int]
) -> list[dict[str, Any]]:
    """`index`: (t, pid) -> the line of the last file event of the marker path at that moment."""
    out: list[dict[str, Any]] = []
    for item in items:
        i = index.get((item.get("t"), item.get("pid")))
        ref = f"event:{i}" if i is not None else "fact:second_stage_executed"
        out.append(
            {
                "_ref": ref,
                "_type": "event" if i is not None else "fact",
                "executed": True,
                "path": item.get("path") or marker,
                **item,
            }
        )
    return out
