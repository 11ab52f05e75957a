"""Fake-network costs: namespace setup/teardown, DNS and HTTP round trips through tproxy vs. a plain
loopback server in the same namespace. Prints medians. Needs root + nft. Usage: .venv/bin/python benchmarks/fakenet.py"""
import json
import statistics
import subprocess
import sys
import time
import uuid

from osptrack.sandbox.fakenet import FakeNetwork

N_NET = 20
t_setup, t_close = [], []
for _ in range(N_NET):
    t0 = time.perf_counter()
    net = FakeNetwork(run_id=f"bench-{uuid.uuid4().hex[:8]}")
    net.start()
    t1 = time.perf_counter()
    net.close()
    t2 = time.perf_counter()
    t_setup.append(t1 - t0)
    t_close.append(t2 - t1)
print(f"netns+servers start: median {statistics.median(t_setup)*1000:.1f} ms, close: median {statistics.median(t_close)*1000:.1f} ms (n={N_NET})")

CLIENT = r'''
import json, socket, statistics, threading, time
from dnslib import DNSRecord
N = 500
res = {}
# DNS through the fake resolver (tproxy, UDP, connected socket), distinct names.
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.connect(("8.8.8.8", 53)); s.settimeout(2)
lat = []
t0 = time.perf_counter()
for i in range(N):
    q = DNSRecord.question(f"n{i}.bench.example").pack()
    a = time.perf_counter(); s.send(q); s.recv(4096); lat.append(time.perf_counter() - a)
res["dns_fake"] = (statistics.median(lat), N / (time.perf_counter() - t0))
# The same queries against a plain dnslib-free echo on 127.0.0.1 (not diverted): the floor.
e = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); e.bind(("127.0.0.1", 5300))
def echo():
    while True:
        d, p = e.recvfrom(4096)
        if d == b"stop": return
        e.sendto(d, p)
th = threading.Thread(target=echo); th.start()
c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); c.connect(("127.0.0.1", 5300))
lat = []
for i in range(N):
    q = DNSRecord.question(f"n{i}.bench.example").pack()
    a = time.perf_counter(); c.send(q); c.recv(4096); lat.append(time.perf_counter() - a)
res["udp_echo_loopback"] = (statistics.median(lat), 0)
c.send(b"stop"); th.join()
# HTTP GET round trip (connect, request, 200, close) to an AnyIP address vs a loopback server.
M = 200
def http_rt(addr):
    a = time.perf_counter()
    k = socket.create_connection(addr, timeout=5)
    k.sendall(b"GET /x HTTP/1.1\r\nHost: h.example\r\n\r\n")
    while k.recv(4096): pass
    k.close()
    return time.perf_counter() - a
lat = [http_rt(("203.0.113.10", 80)) for _ in range(M)]
res["http_fake"] = (statistics.median(lat), 0)
srv = socket.create_server(("127.0.0.1", 8080))
def serve():
    for _ in range(M):
        k, _ = srv.accept()
        buf = b""
        while b"\r\n\r\n" not in buf: buf += k.recv(4096)
        k.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"); k.close()
th = threading.Thread(target=serve); th.start()
lat = [http_rt(("127.0.0.1", 8080)) for _ in range(M)]
th.join()
res["http_loopback"] = (statistics.median(lat), 0)
print(json.dumps(res))
'''
with FakeNetwork(run_id=f"bench-{uuid.uuid4().hex[:8]}") as net:
    p = subprocess.run([sys.executable, "-c", CLIENT], preexec_fn=net.enter_netns, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout)
    t = time.perf_counter()
    recs = net.records()
    t_rec = time.perf_counter() - t
print(f"DNS A query via fake resolver: median {res['dns_fake'][0]*1e6:.0f} us, {res['dns_fake'][1]:.0f} queries/s sequential; "
      f"plain UDP echo on 127.0.0.1: {res['udp_echo_loopback'][0]*1e6:.0f} us (ratio {res['dns_fake'][0]/res['udp_echo_loopback'][0]:.1f}x)")
print(f"HTTP GET round trip to AnyIP via catch-all: median {res['http_fake'][0]*1e6:.0f} us; "
      f"plain loopback server: {res['http_loopback'][0]*1e6:.0f} us (ratio {res['http_fake'][0]/res['http_loopback'][0]:.1f}x)")
print(f"records: {len(recs)} (records() with settle took {t_rec*1000:.0f} ms)")
