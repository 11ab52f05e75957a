"""Synthetic run folders: events, flows and run.json written by hand, to test rules without a sandbox."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from osptrack.jsonio import atomic_write_json, write_jsonl
from osptrack.trace.events import Event, write_events_jsonl

T0 = 1_800_000_000.0
SETUP_ARGV = ["/usr/bin/python3", "setup.py", "install"]  # a package's own process (not pip's)
PIP = ["/usr/bin/python3", "-m", "pip", "install", "--target", "/root/site", "/input/pkg/x.whl"]


class Run:
    """Builder: `r = Run(); r.exec(...); r.open(...); r.write(tmp_path)`."""

    def __init__(self, ecosystem: str = "pypi", phase: str = "install") -> None:
        self.ecosystem = ecosystem
        self.phase = phase
        self.events: list[Event] = []
        self.records: list[dict[str, Any]] = []
        self.info: dict[str, Any] = {}
        self.t = T0
        self.bait_reads: list[dict[str, Any]] = []
        self.argv: dict[int, list[str]] = {}

    def _tick(self) -> float:
        self.t += 0.01
        return self.t

    def _event(self, pid: int, exe: str | None, syscall: str, kind: str, op: str, **kw: Any) -> Event:
        errno = kw.pop("errno", None)
        ev = Event(
            t=self._tick(),
            phase=kw.pop("phase", self.phase),
            pid=pid,
            ppid=kw.pop("ppid", None),
            exe=exe,
            comm=exe.rsplit("/", 1)[-1] if exe else None,
            syscall=syscall,
            kind=kind,
            op=op,
            ret=-1 if errno else 0,
            errno=errno,
            args=[],
            **kw,
        )
        self.events.append(ev)
        return ev

    def exec(
        self,
        pid: int,
        argv: list[str],
        by: str | None = "/usr/bin/python3",
        ppid: int | None = None,
        **kw: Any,
    ) -> Event:
        self.argv[pid] = argv
        path = argv[0] if argv[0].startswith("/") else f"/usr/bin/{argv[0]}"
        return self._event(pid, by, "execve", "process", "exec", path=path, argv=argv, ppid=ppid, **kw)

    def clone(self, pid: int, child: int, exe: str = "/usr/bin/python3") -> Event:
        if pid in self.argv:
            self.argv.setdefault(child, self.argv[pid])
        return self._event(pid, exe, "clone", "process", "clone", child_pid=child)

    def open(self, pid: int, path: str, op: str = "read", exe: str = "/usr/bin/python3", **kw: Any) -> Event:
        return self._event(pid, exe, "openat", "file", op, path=path, **kw)

    def file(self, pid: int, op: str, path: str, exe: str = "/usr/bin/python3", **kw: Any) -> Event:
        syscall = {"chmod": "chmod", "rename": "rename", "delete": "unlink"}.get(op, "openat")
        return self._event(pid, exe, syscall, "file", op, path=path, **kw)

    def connect(
        self,
        pid: int,
        address: str,
        port: int,
        exe: str = "/usr/bin/python3",
        family: str = "AF_INET",
        **kw: Any,
    ) -> Event:
        return self._event(
            pid, exe, "connect", "network", "connect", family=family, address=address, port=port, **kw
        )

    def dns(self, qname: str, answer: str = "198.18.1.1", phase: str | None = None) -> None:
        self.records.append(
            {
                "t": self._tick(),
                "phase": phase or self.phase,
                "kind": "dns",
                "qname": qname,
                "qtype": "A",
                "server": "198.18.0.53",
                "server_port": 53,
                "answer": [answer],
            }
        )

    def flow(self, **kw: Any) -> None:
        self.records.append({"t": self._tick(), "phase": self.phase, "kind": "tcp", **kw})

    def bait_read(self, pid: int, path: str, exe: str = "/usr/bin/python3") -> None:
        self.open(pid, path, exe=exe)
        self.bait_reads.append(
            {"path": path, "phase": self.phase, "pid": pid, "exe": exe, "argv": self.argv.get(pid, [])}
        )

    def write(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        self.events.sort(key=lambda e: e.t)
        write_events_jsonl(folder / "events.jsonl", self.events)
        write_jsonl(folder / "network.jsonl", self.records)
        phases = sorted({e.phase for e in self.events} | {self.phase})
        info: dict[str, Any] = {
            "tool": {"name": "osptrack", "version": "0.1.0"},
            "package": {
                "ecosystem": self.ecosystem,
                "name": "synthetic",
                "version": "1.0.0",
                "archive": "synthetic-1.0.0.tar.gz",
            },
            "honeytokens": [
                {"kind": "ssh_private_key", "value": "k" * 40, "planted": ["/root/.ssh/id_rsa"]},
                {
                    "kind": "aws_secret_access_key",
                    "value": "a" * 40,
                    "planted": ["env:AWS_SECRET_ACCESS_KEY", "/root/.aws/credentials"],
                },
            ],
            "phases": {
                p: {
                    "status": "completed",
                    "exit_code": 0,
                    "timed_out": False,
                    "started": T0,
                    "wall_s": 1.0,
                    "events": sum(1 for e in self.events if e.phase == p),
                }
                for p in phases
            },
            "exfiltration": [],
            "bait_reads": self.bait_reads,
            "timings": {"total_s": 2.0},
        } | self.info
        atomic_write_json(folder / "run.json", info)
        atomic_write_json(
            folder / "result.json",
            {
                "Package": {"Ecosystem": self.ecosystem, "Name": "synthetic", "Version": "1.0.0"},
                "CreatedTimestamp": int(T0),
                "Analysis": {
                    p: {"Status": "completed", "Files": [], "Sockets": [], "Commands": [], "DNS": []}
                    for p in phases
                },
            },
        )
        return folder
