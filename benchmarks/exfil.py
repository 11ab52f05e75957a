"""Exfiltration scanner throughput: a 1 MiB mixed body and worst-case inputs.

    .venv/bin/python benchmarks/exfil.py [--runs 5] [--only NAME]

Each input is scanned by `Scanner(make_baits().values())` (7 tokens, the run's real set)
with its default `Limits`; no input holds a token, so no scan stops early (the worst case for
time). Printed per input: its size, the median wall and CPU time of --runs scans, MiB of
captured input per CPU second, the blobs searched and bytes the decoders derived, whether a budget ran out, and the
load average before and after (the machine may be shared).

Inputs: `mixed-1MiB` is an HTTP POST whose JSON body mixes text, percent-escapes, base64 and
hex blobs, a gzip member and JSON escapes. The rest are built to hit one cost each: noise,
one 1 MiB base64 run, 50,000 short base64 runs, a base64 tower, hex, every byte a
percent-escape, every char a \\u escape, a 64 MiB gzip bomb, a zip of 256 bombs, 2,000 gzip
magic numbers, and 10,000 DNS names for the tunnel reassembly.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import io
import json
import os
import random
import statistics
import time
import zipfile
from collections.abc import Callable

from osptrack.sandbox.baits import make_baits
from osptrack.sandbox.exfil import Scanner, ScanResult, find_tunnels

MiB = 1024 * 1024
rng = random.Random(1)


def _rand(n: int) -> bytes:
    return rng.randbytes(n)


def post(body: bytes, *headers: str) -> bytes:
    head = "".join(h + "\r\n" for h in headers)
    return (
        f"POST /api HTTP/1.1\r\nHost: c2.example\r\n{head}Content-Length: {len(body)}\r\n\r\n".encode() + body
    )


def mixed() -> bytes:
    words = b"lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor ".split()
    fields: dict[str, str] = {}
    i = 0
    while len(json.dumps(fields)) < MiB - 64 * 1024:
        kind = i % 6
        if kind == 0:
            fields[f"t{i}"] = " ".join(rng.choice(words).decode() for _ in range(200))
        elif kind == 1:
            fields[f"b{i}"] = base64.b64encode(_rand(3000)).decode()
        elif kind == 2:
            fields[f"h{i}"] = _rand(1000).hex()
        elif kind == 3:
            fields[f"u{i}"] = "".join(f"%{b:02x}" for b in _rand(500))
        elif kind == 4:
            fields[f"z{i}"] = base64.b64encode(gzip.compress(b" ".join(words) * 40)).decode()
        else:
            fields[f"j{i}"] = "caf\u00e9 \u2603 /path/ " * 50
        i += 1
    body = json.dumps(fields).replace("/", "\\/").encode()
    return post(body[:MiB], "Content-Type: application/json")


def zip_of_bombs() -> bytes:
    buf = io.BytesIO()
    bomb = gzip.compress(b"\0" * (4 * MiB))
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for i in range(256):
            zf.writestr(f"b{i}.gz", bomb)
    return buf.getvalue()


def tower() -> bytes:
    blob = _rand(64 * 1024)
    while len(blob) < MiB:
        blob = base64.b64encode(blob)
    return blob[:MiB]


INPUTS: dict[str, Callable[[], bytes]] = {
    "mixed-1MiB": mixed,
    "noise-1MiB": lambda: _rand(MiB),
    "one-base64-run-1MiB": lambda: base64.b64encode(_rand(MiB * 3 // 4)),
    "short-base64-runs-1MiB": lambda: b" ".join(base64.b64encode(_rand(15)) for _ in range(MiB // 21)),
    "base64-tower-1MiB": tower,
    "hex-1MiB": lambda: _rand(MiB // 2).hex().encode(),
    "percent-every-byte-1MiB": lambda: "".join(f"%{b:02x}" for b in _rand(MiB // 3)).encode(),
    "json-u-escapes-1MiB": lambda: b"".join(
        b"\\u%04x" % rng.randrange(0x20, 0xD7FF) for _ in range(MiB // 6)
    ),
    "gzip-bomb-64MiB": lambda: post(gzip.compress(b"\0" * (64 * MiB)), "Content-Encoding: gzip"),
    "zip-of-256-bombs": zip_of_bombs,
    "gzip-magic-x2000": lambda: b"".join(b"\x1f\x8b\x08" + _rand(500) for _ in range(2000)),
}


def dns_records(n: int) -> list[dict[str, object]]:
    parents = [f"p{i}.example" for i in range(50)]
    return [
        {"t": float(i), "phase": "install", "kind": "dns",
         "qname": f"{_rand(16).hex()}.{rng.choice(['a', 'b', 'c'])}.{rng.choice(parents)}"}
        for i in range(n)
    ]  # fmt: skip


def timed(fn: Callable[[], object], runs: int) -> tuple[float, float, object]:
    """Median wall and CPU seconds of `runs` calls. CPU time is the figure to compare on a
    shared machine: wall time there is mostly waiting for a core."""
    wall: list[float] = []
    cpu: list[float] = []
    out: object = None
    for _ in range(runs):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall), statistics.median(cpu), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--only", default=None, help="one input name (or 'dns-10000')")
    args = parser.parse_args()
    scanner = Scanner(make_baits().values())
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}  (2 cores, shared)")
    print(
        f"{'input':28} {'size':>9} {'wall s':>7} {'cpu s':>7} {'MiB/s cpu':>9} {'blobs':>6} {'derived':>10}  budget"
    )
    for name, build in INPUTS.items():
        if args.only and args.only != name:
            continue
        data = build()
        wall, cpu, result = timed(lambda d=data: scanner.scan(d), args.runs)  # type: ignore[misc]
        assert isinstance(result, ScanResult) and not result.hits and not result.errors, result
        print(f"{name:28} {len(data):>9} {wall:>7.3f} {cpu:>7.3f} {len(data) / MiB / cpu:>9.1f} {result.blobs:>6} "
              f"{result.derived:>10}  {'exhausted' if result.exhausted else 'ok'}")  # fmt: skip
    if not args.only or args.only == "dns-10000":
        records = dns_records(10_000)
        wall, cpu, out = timed(lambda: find_tunnels(records, scanner), args.runs)
        assert out == ([], []), out
        print(f"{'dns-10000 (tunnels)':28} {len(records):>9} {wall:>7.3f} {cpu:>7.3f}  (records, not bytes)")
    print(f"load average after:  {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
