"""Added cost of an intercepted TLS connection: handshake, leaf mint, capture. Prints medians.

Inside a fresh fake network (needs root + nft), one client process measures round trips of
`connect, request, response, close`:
  http        plain HTTP GET through the catch-all (the baseline every flow pays);
  tls-cold    HTTPS GET to a new SNI each time: leaf minted + handshake + h11 + capture;
  tls-warm    HTTPS GET to one SNI: cached leaf, handshake + h11 + capture;
  post-64k    HTTPS POST of a 64 KiB body (warm), against the same POST over plain HTTP;
and, in this process, the mint itself (CertAuthority.server_context on a new name) and a cache hit.
The client verifies against the run's CA, as a sandboxed client does, and sets TCP_NODELAY as
urllib3 and curl do (without it, Python's TLS writes of a 64 KiB body meet Nagle and the delayed
ACK: +40 ms, a client-side artefact real servers cause too).

    .venv/bin/python benchmarks/tls.py [--n 200]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

from osptrack.sandbox.fakenet import FakeNetwork
from osptrack.sandbox.fakenet.ca import CertAuthority

CLIENT = r"""
import json, socket, ssl, statistics, sys, time
ca_file, n = sys.argv[1], int(sys.argv[2])
ctx = ssl.create_default_context(cafile=ca_file)
body = b"k=" + b"A" * (64 * 1024)

def rt(host, port, tls, sni, payload=None):
    a = time.perf_counter()
    s = socket.create_connection((host, port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as urllib3 and curl do
    if tls:
        s = ctx.wrap_socket(s, server_hostname=sni)
    if payload is None:
        s.sendall(f"GET /index.html HTTP/1.1\r\nHost: {sni}\r\nConnection: close\r\n\r\n".encode())
    else:
        s.sendall(f"POST /collect HTTP/1.1\r\nHost: {sni}\r\nContent-Length: {len(payload)}\r\n"
                  f"Connection: close\r\n\r\n".encode() + payload)
    while s.recv(65536):
        pass
    s.close()
    return time.perf_counter() - a

res = {}
res["http"] = [rt("203.0.113.10", 80, False, "plain.bench.example.com") for _ in range(n)]
res["tls_cold"] = [rt("203.0.113.11", 443, True, f"c{i}.bench.example.com") for i in range(n)]
res["tls_warm"] = [rt("203.0.113.12", 443, True, "warm.bench.example.com") for _ in range(n)]
res["post_plain"] = [rt("203.0.113.13", 80, False, "post.bench.example.com", body) for _ in range(n // 4)]
res["post_tls"] = [rt("203.0.113.14", 443, True, "post.bench.example.com", body) for _ in range(n // 4)]
print(json.dumps({k: statistics.median(v) for k, v in res.items()}))
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200)
    args = parser.parse_args()
    ca = CertAuthority()
    mint, hit = [], []
    for i in range(args.n):
        t = time.perf_counter()
        ca.server_context(f"m{i}.bench.example.com")
        mint.append(time.perf_counter() - t)
        t = time.perf_counter()
        ca.server_context(f"m{i}.bench.example.com")
        hit.append(time.perf_counter() - t)
    print(f"leaf mint (new name, key pair shared): median {statistics.median(mint) * 1e3:.2f} ms; "
          f"cache hit: {statistics.median(hit) * 1e6:.1f} us (n={args.n})")  # fmt: skip
    with FakeNetwork(run_id=f"bench-{uuid.uuid4().hex[:8]}", idle_timeout=2.0) as net:
        assert net.ca is not None
        with tempfile.NamedTemporaryFile("wb", suffix=".pem", delete=False) as fh:
            fh.write(net.ca.cert_pem)
        os.chmod(fh.name, 0o644)
        try:
            p = subprocess.run(
                [sys.executable, "-c", CLIENT, fh.name, str(args.n)],
                preexec_fn=net.enter_netns,
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
        finally:
            os.unlink(fh.name)
        assert p.returncode == 0, p.stderr
        med = json.loads(p.stdout)
        records = net.records()
        health = net.health()
    ms = {k: v * 1e3 for k, v in med.items()}
    print(f"HTTP GET round trip (plain, baseline):      median {ms['http']:.2f} ms")
    print(
        f"HTTPS GET, new SNI (mint + handshake):      median {ms['tls_cold']:.2f} ms  (+{ms['tls_cold'] - ms['http']:.2f} ms)"
    )
    print(
        f"HTTPS GET, same SNI (cached leaf):          median {ms['tls_warm']:.2f} ms  (+{ms['tls_warm'] - ms['http']:.2f} ms)"
    )
    print(f"POST 64 KiB body, plain / intercepted TLS:  median {ms['post_plain']:.2f} / {ms['post_tls']:.2f} ms  "
          f"(+{ms['post_tls'] - ms['post_plain']:.2f} ms)")  # fmt: skip
    intercepted = sum(1 for r in records if r.get("tls") and r["tls"]["intercepted"])
    print(f"flows recorded: {len(records)}, intercepted: {intercepted}, errors: {health['errors']}, "
          f"leaves minted: {health['tls']['leaves_minted']}; load average {os.getloadavg()[0]:.2f} "
          f"on {os.cpu_count()} cpus")  # fmt: skip


if __name__ == "__main__":
    main()
