"""Reaching out: every connection lands in the fake network, is recorded, and no packet leaves.

The proof that nothing leaves is taken on the host side: a temporary nft table counts packets
to each destination the package aims at, in the host's postrouting and forward hooks, which
every packet leaving this machine (locally made or routed out of a namespace) must cross. A
control packet to loopback shows the counters count. Inside, the namespace lists only `lo`.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from containment_helpers import marker, py_wheel, record, run_analysis

pytestmark = pytest.mark.sandbox

TCP_TARGETS = [
    ("1.2.3.4", 80),  # public IPv4
    ("10.20.30.40", 22),  # private IPv4
    ("2001:4860:4860::8844", 80),  # public IPv6
    ("fd00::1234", 8080),  # private (ULA) IPv6
]
DNS_SERVER = "8.8.8.8"
DOH = ("1.1.1.1", 443, "cloudflare-dns.com")
UDP_TARGET = ("2001:db8::99", 9999)
V4 = sorted({"1.2.3.4", "10.20.30.40", DNS_SERVER, DOH[0]})
V6 = sorted({"2001:4860:4860::8844", "fd00::1234", UDP_TARGET[0]})


def _package_code(qname: str) -> str:
    return f"""
import socket, ssl, struct
print("IFACES", " ".join(l.split(":")[0].strip() for l in open("/proc/net/dev").readlines()[2:]))
print("ROUTES4", sorted(set(l.split()[0] for l in open("/proc/net/route").readlines()[1:])))
for host, port in {TCP_TARGETS!r}:
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.settimeout(3)
        s.connect((host, port))
        s.sendall(b"GET /beacon HTTP/1.1\\r\\nHost: c2.example\\r\\n\\r\\n")
        s.close()
        print("TCP", host, port, "connected")
    except OSError as exc:
        print("TCP", host, port, "failed", exc)
# DNS straight to a public resolver, bypassing resolv.conf
query = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
query += b"".join(bytes([len(p)]) + p.encode() for p in {qname!r}.split(".")) + b"\\x00" + struct.pack(">HH", 1, 1)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.settimeout(3)
u.sendto(query, ({DNS_SERVER!r}, 53))
try:
    print("DNS answered", len(u.recvfrom(512)[0]))
except OSError as exc:
    print("DNS failed", exc)
# DNS over HTTPS: a TLS handshake to 1.1.1.1:443 naming the DoH server
try:
    raw = socket.create_connection(({DOH[0]!r}, {DOH[1]}), timeout=3)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.wrap_socket(raw, server_hostname={DOH[2]!r})
    print("DOH handshake")
except (OSError, ssl.SSLError) as exc:
    print("DOH failed", exc)
v = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
v.sendto(b"udp-beacon", {UDP_TARGET!r})
print("UDP sent")
"""


@pytest.fixture
def host_counters() -> Iterator[tuple[str, int]]:
    """A host nft table counting packets to the package's targets, plus a loopback control."""
    table = f"osptrack_contain_{os.getpid()}"
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    rules = (
        f"ip daddr {{ {', '.join(V4)} }} counter; ip6 daddr {{ {', '.join(V6)} }} counter; "
        f"ip daddr 127.0.0.1 udp dport {port} counter;"
    )
    script = "\n".join(
        [
            f"table inet {table} {{",
            f"  chain post {{ type filter hook postrouting priority 0; policy accept; {rules} }}",
            f"  chain routed {{ type filter hook forward priority 0; policy accept; {rules} }}",
            "}",
        ]
    )
    subprocess.run(["nft", "-f", "-"], input=script, text=True, check=True)
    try:
        yield table, port
    finally:
        probe.close()
        subprocess.run(["nft", "delete", "table", "inet", table], check=False)


def _counts(table: str) -> list[int]:
    text = subprocess.run(
        ["nft", "list", "table", "inet", table], capture_output=True, text=True, check=True
    ).stdout
    return [int(n) for n in re.findall(r"counter packets (\d+)", text)]


def test_no_packet_leaves_and_every_attempt_is_recorded(
    tmp_path: Path, host_counters: tuple[str, int]
) -> None:
    table, control_port = host_counters
    qname = f"{marker()}.direct-dns.example"
    res = run_analysis(py_wheel(tmp_path, "contain-network", _package_code(qname)), tmp_path / "out")
    out = res.stdout("import")
    assert res.statuses["import"] == "completed", out
    # The control: a packet to loopback is counted, so zero elsewhere means zero.
    socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"control", ("127.0.0.1", control_port))
    post_v4, post_v6, post_ctl, fwd_v4, fwd_v6, fwd_ctl = _counts(table)
    assert post_ctl >= 1, "the control packet was not counted: the counters prove nothing"
    assert (post_v4, post_v6, fwd_v4, fwd_v6) == (0, 0, 0, 0), "a packet left the machine"
    # Inside: loopback and the persona's eth0, the main table's routes only through eth0 ...
    assert sorted(out.splitlines()[0].split()[1:]) == ["eth0", "lo"], out
    assert "ROUTES4 ['eth0']" in out, out  # and eth0 leads nowhere (tests/sandbox/test_netns.py)
    # Every attempt was caught by the fake network ...
    net = [r for r in res.network if r.get("phase") == "import"]
    tcp = {(r["dst"], r["dst_port"]) for r in net if r["kind"] == "tcp"}
    assert set(TCP_TARGETS) <= tcp, f"not caught: {set(TCP_TARGETS) - tcp}"
    dns = [r for r in net if r["kind"] == "dns" and r["qname"].rstrip(".") == qname]
    assert dns and dns[0]["server"] == DNS_SERVER
    doh = [r for r in net if r["kind"] == "tcp" and (r["dst"], r["dst_port"]) == DOH[:2]]
    assert doh and doh[0].get("tls_sni") == DOH[2]
    assert any(r["kind"] == "udp" and (r["dst"], r["dst_port"]) == UDP_TARGET for r in net)
    # ... and is in the trace as a connect/sendto with its destination.
    traced = {
        (e["address"], e["port"])
        for e in res.events
        if e["kind"] == "network" and e["phase"] == "import" and e.get("address")
    }
    wanted = {*TCP_TARGETS, (DNS_SERVER, 53), DOH[:2], UDP_TARGET}
    assert wanted <= traced, f"not in events.jsonl: {wanted - traced}"
    record(
        "network",
        attempts=len(wanted),
        caught=len(wanted),
        leaked_packets=post_v4 + post_v6 + fwd_v4 + fwd_v6,
    )
