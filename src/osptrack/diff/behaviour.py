"""A run folder as sets of comparable behaviours, and the difference of two such sets.

Files and commands are compared on templated paths (osptrack.dataset.templating, each run with
its own name and version), so `<SITE>/pkg-1.2.dist-info` and `-1.3.dist-info` are the same
behaviour and only real changes remain. Sockets and flows are compared on the host name when the
fake DNS gave one (sinkhole addresses differ from run to run), else on the address.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from osptrack.dataset.templating import Templater
from osptrack.errors import BadInput
from osptrack.hunt.runfolder import Columns, parse_run

KINDS = ("files", "commands", "dns", "sockets", "flows", "findings")
# The fields that make up one behaviour of each kind, in display order.
FIELDS: dict[str, tuple[str, ...]] = {
    "files": ("phase", "path", "access"),
    "commands": ("phase", "command"),
    "dns": ("phase", "hostname"),
    "sockets": ("phase", "host", "port"),
    "flows": ("phase", "kind", "host", "port", "request"),
    "findings": ("phase", "rule", "title"),
}

Key = tuple[Any, ...]


@dataclass
class Behaviour:
    coords: dict[str, Any]
    sets: dict[str, set[Key]]


def _access(read: bool, write: bool, delete: bool) -> str:
    return "".join(c for c, on in (("r", read), ("w", write), ("d", delete)) if on) or "-"


def load(folder: Path) -> Behaviour:
    if not (folder / "run.json").is_file():
        raise BadInput(f"{folder}: not a run folder (no run.json)")
    cols = Columns()
    parse_run(folder.resolve(), cols)
    run = {k: v[0] for k, v in cols.cols["runs"].items()}
    templater = Templater(run["ecosystem"] or "", run["name"] or "", run["version"] or "")
    sets: dict[str, set[Key]] = {k: set() for k in KINDS}
    f = cols.cols["files"]
    for phase, path, r, w, d in zip(f["phase"], f["path"], f["read"], f["write"], f["delete"], strict=True):
        sets["files"].add((phase, templater.path(path), _access(r, w, d)))
    c = cols.cols["commands"]
    for phase, argv in zip(c["phase"], c["command"], strict=True):
        sets["commands"].add((phase, templater.argv(argv)))
    d = cols.cols["dns"]
    for phase, host in zip(d["phase"], d["hostname"], strict=True):
        sets["dns"].add((phase, host.lower()))
    s = cols.cols["sockets"]
    for phase, address, port, names in zip(s["phase"], s["address"], s["port"], s["hostnames"], strict=True):
        for host in names or [address]:
            sets["sockets"].add((phase, host, port))
    fl = cols.cols["flows"]
    for row in zip(
        fl["phase"],
        fl["kind"],
        fl["hostname"],
        fl["dst"],
        fl["dst_port"],
        fl["http_method"],
        fl["http_path"],
        fl["qtype"],
        strict=True,
    ):
        phase, kind, host, dst, port, method, path, qtype = row
        if kind == "dns":
            sets["flows"].add((phase, kind, host, None, qtype or ""))
        else:
            request = f"{method} {templater.path(path) if path else ''}".strip() if method else ""
            sets["flows"].add((phase, kind, host or dst, port, request))
    fi = cols.cols["findings"]
    for phase, rule, title in zip(fi["phase"], fi["rule"], fi["title"], strict=True):
        sets["findings"].add((phase, rule, title))
    coords = {k: run[k] for k in ("ecosystem", "name", "version", "verdict", "path")}
    return Behaviour(coords, sets)


@dataclass
class Diff:
    a: dict[str, Any]
    b: dict[str, Any]
    added: dict[str, list[dict[str, Any]]]  # in B, not in A
    removed: dict[str, list[dict[str, Any]]]  # in A, not in B

    def to_json(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "added": self.added,
            "removed": self.removed,
            "counts": {k: {"added": len(self.added[k]), "removed": len(self.removed[k])} for k in KINDS},
        }


def _rows(kind: str, keys: set[Key]) -> list[dict[str, Any]]:
    ordered = sorted(keys, key=lambda k: tuple("" if v is None else str(v) for v in k))
    return [dict(zip(FIELDS[kind], k, strict=True)) for k in ordered]


def diff(a: Behaviour, b: Behaviour) -> Diff:
    return Diff(
        a.coords,
        b.coords,
        {k: _rows(k, b.sets[k] - a.sets[k]) for k in KINDS},
        {k: _rows(k, a.sets[k] - b.sets[k]) for k in KINDS},
    )


def diff_runs(run_a: Path, run_b: Path) -> Diff:
    return diff(load(run_a), load(run_b))
