"""The registry service's own cost, without the sandbox: what pip/npm wait for on each request.

For the shared corpus (every PyPI and npm archive under ../shared/corpus), one "run" lists each
project (PEP 691 page or packument) and downloads each file, over one keep-alive HTTP/1.1
connection (h11 on both ends, as pip and npm reuse theirs), in three settings:

- deps-dir:  served from the corpus folders (the index is built and files hashed on first use;
              npm manifests are read then too, which for a large tarball is most of the cost)
- cold cache: online against a fake registry on loopback: fetched, hash-checked, written to an
              empty cache, served (the real registry's latency is not in this figure)
- warm cache: offline, the same files from the cache the cold run filled

    .venv/bin/python benchmarks/registry.py [--repeat 5] [--quick]

The three settings alternate within each repeat (so load drifts hit all of them alike); the
figures are medians, with the load average before and after (`os.getloadavg`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import h11

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "registry"))
from fake_upstream import FakeRegistry  # noqa: E402

from osptrack.registry.local import LocalFolders  # noqa: E402
from osptrack.registry.service import RegistryConfig, RegistryService  # noqa: E402

CORPUS = ROOT / ".." / "shared" / "corpus"
ACCEPT = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1"


def client(svc: RegistryService, paths: list[str]) -> tuple[int, int]:
    """GET each path over one connection; (bytes received, non-200 answers)."""
    server, sock = socket.socketpair()
    thread = threading.Thread(target=svc.handle, args=(server,))
    thread.start()
    h = h11.Connection(h11.CLIENT)
    total = bad = 0
    for path in paths:
        sock.sendall(
            h.send(h11.Request(method="GET", target=path, headers=[("Host", "x"), ("Accept", ACCEPT)]))
        )
        sock.sendall(h.send(h11.EndOfMessage()))
        while True:
            event = h.next_event()
            if event is h11.NEED_DATA:
                h.receive_data(sock.recv(1 << 20))
            elif isinstance(event, h11.Response):
                bad += event.status_code != 200
            elif isinstance(event, h11.Data):
                total += len(event.data)
            elif isinstance(event, h11.EndOfMessage):
                break
        h.start_next_cycle()
    sock.close()
    thread.join(10)
    server.close()
    return total, bad


def one_run(eco: str, folders: list[Path], online: bool, cache: Path, upstream: FakeRegistry | None,
            pages: list[str], files: list[str]) -> tuple[float, int, int]:  # fmt: skip
    config = RegistryConfig(
        cache_root=cache, upstream=upstream.upstream() if upstream else RegistryConfig().upstream
    )
    t0 = time.perf_counter()
    with RegistryService(eco, () if (online or upstream) else folders, online, config) as svc:
        size, bad = client(svc, pages)
        got, bad2 = client(svc, files)
    return time.perf_counter() - t0, size + got, bad + bad2


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="one repeat (a smoke run, not a figure)")
    args = ap.parse_args()
    if args.quick:
        args.repeat = 1
    if not CORPUS.is_dir():
        sys.exit(f"benchmarks/registry.py: needs the shared corpus at {CORPUS}")
    print(json.dumps({"load_average_before": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count()}))
    for eco in ("pypi", "npm"):
        folders = sorted(p for p in (CORPUS / eco).iterdir() if p.is_dir())
        local = LocalFolders(eco, folders)
        fake = FakeRegistry()
        for n in local.names():
            dists = local.dists(n)
            if eco == "pypi":
                fake.pypi[n] = [d.path for d in dists if d.path]
            else:
                fake.npm[n] = [
                    (d.version, {"name": d.name, "version": d.version, **d.manifest}, d.path)
                    for d in dists
                    if d.path
                ]
        fake.start()
        n_files = sum(len(local.dists(n)) for n in local.names())
        pages = [f"/pypi/simple/{n}/" if eco == "pypi" else f"/npm/{n}" for n in local.names()]
        files = [
            f"/pypi/files/{d.sha256}/{d.filename}"
            if eco == "pypi"
            else f"/npm/{n}/-/{n.rsplit('/', 1)[-1]}-{d.version}.tgz"
            for n in local.names()
            for d in local.dists(n)
        ]
        figures: dict[str, list[float]] = {"deps-dir": [], "cold cache": [], "warm cache": []}
        size = 0
        try:
            for _ in range(args.repeat):
                tmp = Path(tempfile.mkdtemp(prefix="osptrack-bench-registry-"))
                try:
                    t, size, bad = one_run(eco, folders, False, tmp / "empty", None, pages, files)
                    figures["deps-dir"].append(t)
                    t, _, bad_c = one_run(eco, folders, True, tmp / "cache", fake, pages, files)
                    figures["cold cache"].append(t)
                    t, _, bad_w = one_run(eco, folders, False, tmp / "cache", fake, pages, files)
                    figures["warm cache"].append(t)
                    assert bad == bad_c == bad_w == 0, (bad, bad_c, bad_w)
                finally:
                    shutil.rmtree(tmp, ignore_errors=True)
        finally:
            fake.stop()
        row = {k: round(statistics.median(v) * 1000, 1) for k, v in figures.items()}
        warm = row["warm cache"] or 1.0
        ratios = {
            "cold/warm": round(row["cold cache"] / warm, 2),
            "deps-dir/warm": round(row["deps-dir"] / warm, 2),
        }
        print(json.dumps({"ecosystem": eco, "projects": len(local.names()), "files": n_files,
                          "MiB": round(size / 2**20, 1), "median_ms": row, "ratios": ratios,
                          "repeat": args.repeat}))  # fmt: skip
    print(json.dumps({"load_average_after": [round(x, 2) for x in os.getloadavg()]}))


if __name__ == "__main__":
    main()
