"""Events of one phase -> the package-analysis phase object of result.json.

`phase_record(events, stdout, stderr, status, dns_records, ...)` returns
`{"Status", "Stdout", "Stderr", "Files", "Sockets", "Commands", "DNS"}` with package-analysis's
field names, and fixes its known faults:

- Files: only successful calls count. A failed open (ENOENT, EACCES, ...) is not a read; a
  stat/access/readlink (traced for sensitive paths only, as probes) is never a read. Opens of directories (O_DIRECTORY), O_PATH handles, pipes,
  sockets and anon inodes are not files (see `events.NON_FILE_FTYPES`).
  read -> Read; write (O_RDWR also Read), truncate, chmod, mkdir -> Write; delete -> Delete;
  rename -> Delete of the source and Write of the destination; link/symlink -> Write of the new
  name; a successful execve -> Read of the program. One entry per path, **sorted by path**:
  first-occurrence order would depend on thread scheduling and make identical runs differ.
- Sockets: connect/sendto/sendmsg to AF_INET/AF_INET6, attempts included (a refused or
  timed-out connect is still an attempt to reach that host), and successful bind/listen (as
  package-analysis keeps them: a listening backdoor shows with the port it got), minus
  `ignore_sockets` (the fake resolver). A connect marked `lookup_probe` is kept here, as
  package-analysis would; notable and the dataset features leave it out. Deduplicated on (Address, Port), sorted by (Address, Port). Hostnames come from
  `ip_names` (what the fake DNS handed out for that sinkhole address), sorted.
- Commands: execve, failed ones included (package-analysis keeps them), in execution order,
  identical (argv, env) pairs once (so a PATH search's ENOENT steps fold into the exec that
  succeeded).
- DNS: one entry per class (only "IN" exists here), Queries sorted by hostname, Types sorted.
  Hostnames are lower-cased without the trailing dot (DNS names are case-insensitive).
- Processes whose comm is in `exclude_comms` (default: bwrap, the sandbox launcher, whose own
  setup happens before the package runs) contribute no Files or Sockets, and their own exec is
  not a Command; the command bwrap launches is.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from typing import Any

from osptrack.trace.events import KIND_FILE, KIND_NETWORK, KIND_PROCESS, NON_FILE_FTYPES, Event

OUTPUT_TAIL = 4096
SANDBOX_COMMS = frozenset({"bwrap"})
_SOCKET_FAMILIES = frozenset({"AF_INET", "AF_INET6"})
_SOCKET_OPS = frozenset({"connect", "sendto", "bind", "listen"})
_WRITE_OPS = frozenset({"write", "truncate", "chmod", "mkdir", "create"})


def tail_b64(data: bytes, limit: int = OUTPUT_TAIL) -> str:
    return base64.b64encode(data[-limit:] if limit else b"").decode("ascii")


def _file_entry(files: dict[str, list[bool]], path: str | None) -> list[bool] | None:
    if not path:
        return None
    entry = files.get(path)
    if entry is None:
        entry = files[path] = [False, False, False]  # Read, Write, Delete
    return entry


def phase_record(
    events: Iterable[Event],
    stdout: bytes,
    stderr: bytes,
    status: str,
    dns_records: Iterable[Mapping[str, Any]] = (),
    *,
    ignore_sockets: set[tuple[str, int]] | frozenset[tuple[str, int]] = frozenset(),
    ip_names: Mapping[str, Iterable[str]] | None = None,
    exclude_comms: frozenset[str] = SANDBOX_COMMS,
) -> dict[str, Any]:
    """Build one phase object (`Analysis.<phase>` in result.json). See the module docstring."""
    agg = PhaseAggregator(exclude_comms)
    add = agg.add
    for ev in events:
        add(ev)
    return agg.record(stdout, stderr, status, dns_records, ignore_sockets=ignore_sockets, ip_names=ip_names)


class PhaseAggregator:
    """`phase_record` fed one event at a time (`add`), so the events need not be held: it keeps
    one entry per path, socket and command, whatever the number of events."""

    def __init__(self, exclude_comms: frozenset[str] = SANDBOX_COMMS) -> None:
        self.exclude_comms = exclude_comms
        self.files: dict[str, list[bool]] = {}
        self.sockets: dict[tuple[str, int], None] = {}
        self.commands: dict[tuple[tuple[str, ...], tuple[str, ...]], None] = {}
        # Plain O_RDONLY opens of directories happen (shutil.rmtree, os.walk with dir_fd) and -yy
        # does not say "directory"; a path the phase mkdir'd or rmdir'd is one, and listing it is
        # not a file read.
        self.opened_for_read: set[str] = set()
        self.dirs: set[str] = set()

    def add(self, ev: Event) -> None:
        kind = ev.kind
        files, exclude_comms = self.files, self.exclude_comms
        if kind == KIND_FILE:
            if ev.errno is not None:
                return  # failed file calls are evidence in events.jsonl, not behaviour here
            if ev.comm in exclude_comms or ev.ftype in NON_FILE_FTYPES or ev.ret is None:
                return  # ret None: unfinished, we do not know it happened
            op, path = ev.op, ev.path
            if op == "read":
                if path:
                    self.opened_for_read.add(path)
            elif op in _WRITE_OPS:
                entry = _file_entry(files, path)
                if entry:
                    entry[1] = True
                    if ev.read:
                        entry[0] = True
                    if op == "mkdir" and path:
                        self.dirs.add(path)
            elif op == "delete":
                entry = _file_entry(files, path)
                if entry and path:
                    entry[2] = True
                    if ev.syscall == "rmdir" or (ev.syscall == "unlinkat" and "AT_REMOVEDIR" in ev.args[-1]):
                        self.dirs.add(path)
            elif op == "rename":
                src, dst = _file_entry(files, path), _file_entry(files, ev.path2)
                if src:
                    src[2] = True
                if dst:
                    dst[1] = True
            elif op == "link":
                dst = _file_entry(files, ev.path2)
                if dst:
                    dst[1] = True
        elif kind == KIND_PROCESS:
            if ev.op != "exec" or (ev.ret != 0 and ev.errno is None):
                return  # not an exec, or one still unfinished when its process died
            if ev.path and ev.path.rsplit("/", 1)[-1] in exclude_comms:
                return
            self.commands[(tuple(ev.argv or ()), tuple(ev.env or ()))] = None
            if ev.errno is None:  # a failed exec is a Command (PA keeps it), never a Read
                entry = _file_entry(files, ev.path)
                if entry:
                    entry[0] = True
        elif kind == KIND_NETWORK:
            if ev.op not in _SOCKET_OPS or ev.comm in exclude_comms:
                return
            if ev.family not in _SOCKET_FAMILIES or ev.address is None or ev.port is None:
                return
            if ev.op in ("bind", "listen") and ev.errno is not None:
                return  # an address never held; a failed connect is still an attempt
            self.sockets[(ev.address, ev.port)] = None

    def record(
        self,
        stdout: bytes,
        stderr: bytes,
        status: str,
        dns_records: Iterable[Mapping[str, Any]] = (),
        *,
        ignore_sockets: set[tuple[str, int]] | frozenset[tuple[str, int]] = frozenset(),
        ip_names: Mapping[str, Iterable[str]] | None = None,
    ) -> dict[str, Any]:
        files = {path: list(rwd) for path, rwd in self.files.items()}
        for path in self.opened_for_read - self.dirs:
            entry = _file_entry(files, path)
            if entry:
                entry[0] = True
        names = ip_names or {}
        return {
            "Status": status,
            "Stdout": tail_b64(stdout),
            "Stderr": tail_b64(stderr),
            "Files": [
                {"Path": path, "Read": rwd[0], "Write": rwd[1], "Delete": rwd[2]}
                for path, rwd in sorted(files.items())
            ],
            "Sockets": [
                {"Address": addr, "Port": port, "Hostnames": sorted(set(names.get(addr, ())))}
                for addr, port in sorted(self.sockets)
                if (addr, port) not in ignore_sockets
            ],
            "Commands": [{"Command": list(argv), "Environment": list(env)} for argv, env in self.commands],
            "DNS": dns_section(dns_records),
        }


def dns_section(dns_records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """network.jsonl records -> package-analysis DNS list, in a stable order."""
    by_class: dict[str, dict[str, set[str]]] = {}
    for rec in dns_records:
        if rec.get("kind", "dns") != "dns":
            continue
        qname = rec.get("qname")
        if not isinstance(qname, str) or not qname:
            continue
        host = qname.rstrip(".").lower()
        qclass = str(rec.get("qclass") or "IN")
        qtype = str(rec.get("qtype") or "A")
        by_class.setdefault(qclass, {}).setdefault(host, set()).add(qtype)
    return [
        {
            "Class": qclass,
            "Queries": [{"Hostname": host, "Types": sorted(types)} for host, types in sorted(hosts.items())],
        }
        for qclass, hosts in sorted(by_class.items())
    ]
