"""Hand-made run folders in the exact layout of docs/formats.md, for hunt, diff and model tests.

Shapes follow a real `osptrack analyze` folder (result.json, events.jsonl, network.jsonl, run.json
written last); the behaviour is whatever the test says, so a test can know its answer.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import orjson

SITE = "/root/site"


def make_run(
    folder: Path,
    name: str,
    version: str = "1.0.0",
    eco: str = "pypi",
    *,
    dns: dict[str, list[str]] | None = None,
    files: dict[str, list[tuple[str, str]]] | None = None,  # phase -> [(path, "r"/"w"/"rw"/"d")]
    commands: dict[str, list[list[str]]] | None = None,
    sockets: dict[str, list[tuple[str, int, list[str]]]] | None = None,
    flows: list[dict[str, Any]] | None = None,
    events: list[dict[str, Any]] | None = None,
    verdict: dict[str, Any] | None = None,
    honeytokens: list[dict[str, Any]] | None = None,
    exfiltration: list[dict[str, Any]] | None = None,
    phases: tuple[str, ...] = ("install", "import"),
    sha256: str = "0" * 64,
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    dns, files, commands, sockets = dns or {}, files or {}, commands or {}, sockets or {}
    analysis = {}
    for p in phases:
        analysis[p] = {
            "Status": "completed",
            "Stdout": base64.b64encode(b"ok").decode(),
            "Stderr": "",
            "Files": [
                {"Path": path, "Read": "r" in m, "Write": "w" in m, "Delete": "d" in m}
                for path, m in files.get(p, [(f"{SITE}/{name.replace('-', '_')}/__init__.py", "rw")])
            ],
            "Sockets": [{"Address": a, "Port": port, "Hostnames": h} for a, port, h in sockets.get(p, [])],
            "Commands": [{"Command": argv, "Environment": ["HOME=/root"]} for argv in commands.get(p, [])],
            "DNS": (
                [{"Class": "IN", "Queries": [{"Hostname": h, "Types": ["A"]} for h in dns[p]]}]
                if dns.get(p)
                else []
            ),
        }
    result = {
        "Package": {"Ecosystem": eco, "Name": name, "Version": version},
        "CreatedTimestamp": 1764169200,
        "Analysis": analysis,
    }
    (folder / "result.json").write_bytes(orjson.dumps(result))
    evs = (
        events
        if events is not None
        else [
            {
                "t": 1764169200.0 + i,
                "phase": p,
                "pid": 100 + i,
                "ppid": 99,
                "exe": "/usr/bin/python3",
                "comm": "python3",
                "syscall": "execve",
                "kind": "process",
                "op": "exec",
                "ret": 0,
                "errno": None,
                "args": [],
                "path": "/usr/bin/python3",
                "argv": ["/usr/bin/python3", "-m", "pip"],
                "env": [],
            }
            for i, p in enumerate(phases)
        ]
    )
    (folder / "events.jsonl").write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in evs))
    (folder / "network.jsonl").write_bytes(b"".join(orjson.dumps(f) + b"\n" for f in flows or []))
    run: dict[str, Any] = {
        "tool": {"name": "osptrack", "version": "0.1.0"},
        "package": {
            "ecosystem": eco,
            "name": name,
            "version": version,
            "archive": f"{name}-{version}.tar.gz",
            "sha256": sha256,
        },
        "sandbox": {"backend": "bwrap", "network": "offline"},
        "honeytokens": honeytokens
        if honeytokens is not None
        else [
            {
                "kind": "aws_secret_access_key",
                "value": f"SECRET{name}",
                "planted": ["env:AWS_SECRET_ACCESS_KEY", "/root/.aws/credentials"],
            }
        ],
        "phases": {
            p: {"status": "completed", "exit_code": 0, "wall_s": 1.0, "timed_out": False} for p in phases
        },
        "exfiltration": exfiltration or [],
        "bait_reads": [],
        "network": {"dropped_records": 0, "errors": 0},
        "trace": {"valid": True, "events": len(evs), "dropped": 0, "truncated": False},
        "timings": {"total_s": 2.0},
    }
    if verdict is not None:
        run["verdict"] = verdict
    (folder / "run.json").write_bytes(orjson.dumps(run))
    return folder


def tcp_flow(
    host: str,
    dst: str = "198.18.0.5",
    port: int = 443,
    phase: str = "install",
    payload: bytes = b"GET / HTTP/1.1\r\n",
) -> dict[str, Any]:
    return {
        "t": 1764169200.5,
        "phase": phase,
        "kind": "tcp",
        "dst": dst,
        "dst_port": port,
        "bytes": len(payload),
        "first_bytes": base64.b64encode(payload).decode(),
        "http": {"method": "GET", "path": "/", "host": host},
        "tls_sni": None,
        "hostname": host,
    }


def dns_flow(qname: str, phase: str = "install") -> dict[str, Any]:
    return {
        "t": 1764169200.4,
        "phase": phase,
        "kind": "dns",
        "qname": qname,
        "qtype": "A",
        "server": "8.8.8.8",
        "server_port": 53,
        "answer": ["198.18.0.5"],
    }
