"""A package that imitates malware's hiding tricks still shows in every record (issue 12).

One harmless sdist (PEP 517, so pip builds it in an isolated build env with its own runner)
whose setup.py runs decoys: a copy of `cat` renamed `uname` reading ~/.ssh/id_rsa, a copy of
`sh` renamed `lsb_release` with a child, a copy of `cat` named `bwrap`, `python3 -c "... -m pip"`,
and its own `python3 -m pip install`. None of them may vanish from notable; pip's own build-env
runner must.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from builders import make_sdist
from osptrack.jsonio import read_jsonl
from osptrack.run import AnalyzeOptions, analyze
from osptrack.target import parse_target

pytestmark = pytest.mark.sandbox

PYPROJECT = '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
SETUP_PY = """
import os, shutil, socket, subprocess, sys
home = os.path.expanduser("~")
decoys = "/tmp/osptrack-decoys"
os.makedirs(decoys, exist_ok=True)
shutil.copy("/usr/bin/cat", decoys + "/uname")
shutil.copy("/bin/sh", decoys + "/lsb_release")
shutil.copy("/usr/bin/cat", decoys + "/bwrap")
subprocess.run([decoys + "/uname", home + "/.ssh/id_rsa"], stdout=subprocess.DEVNULL)
subprocess.run([decoys + "/lsb_release", "-c", "/usr/bin/id -u; /usr/bin/id -g"])
subprocess.run([decoys + "/bwrap", home + "/.aws/credentials"], stdout=subprocess.DEVNULL)
subprocess.run([sys.executable, "-c", "print('decoy-ran')  # -m pip"])
subprocess.run([sys.executable, "-m", "pip", "install", "--no-index", "osptrack-nothing-here"])
try:
    subprocess.run(["/nonexistent/osptrack-evil", "--run"])
except OSError:
    pass
# Looking without reading: none of these exist in the sandbox.
for look in (lambda: os.stat("/etc/shadow"), lambda: os.readlink(home + "/.electrum"),
             lambda: open(home + "/.ethereum/keystore")):
    try:
        look()
    except OSError:
        pass
os.access(home + "/.bitcoin/wallet.dat", os.R_OK)
os.path.exists(home + "/.config/google-chrome/Default")
# A listening "backdoor" on an ephemeral port.
server = socket.socket()
server.bind(("0.0.0.0", 0))
server.listen(1)
# A lookup only (getaddrinfo probes each address with a UDP connect, sends nothing), one
# without a service (port 0), a real UDP datagram, and a TCP attempt over both families.
socket.getaddrinfo("lookup-only.osptrack-test.example.com", 443)
socket.getaddrinfo("portzero.osptrack-test.example.com", None)
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.connect((socket.gethostbyname("udp-real.osptrack-test.example.com"), 9999))
udp.send(b"osptrack")
for family, kind, proto, _, addr in socket.getaddrinfo("pair.osptrack-test.example.com", 8080, type=socket.SOCK_STREAM):
    conn = socket.socket(family, kind, proto)
    conn.settimeout(3)
    try:
        conn.connect(addr)
    except OSError:
        pass
    conn.close()
# A daemon that outlives the install: the sandbox's teardown kills it.
subprocess.Popen(["/usr/bin/sleep", "301"], start_new_session=True, stdin=subprocess.DEVNULL,
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
from setuptools import setup
setup(name="osptrack-hider", version="1.0.0", py_modules=["osptrack_hider"])
"""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("src")
    files = {"osptrack_hider.py": "VALUE = 1\n", "pyproject.toml": PYPROJECT}
    archive = make_sdist(src, "osptrack-hider", "1.0.0", SETUP_PY, files)
    out = tmp_path_factory.mktemp("runs") / "hider"
    outcome = analyze(
        parse_target("pypi", str(archive)), AnalyzeOptions(phases=("install",), timeout_s=180), out
    )
    assert outcome.statuses == {"install": "completed"}
    return out


def run_json(run_dir: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((run_dir / "run.json").read_text())
    return result


def test_a_renamed_copy_stays_notable_with_its_children(run_dir: Path) -> None:
    home = run_json(run_dir)["persona"]["home"]
    commands = run_json(run_dir)["notable"]["commands"]
    assert any(c.startswith(f"[install] /tmp/osptrack-decoys/uname {home}/.ssh/id_rsa") for c in commands), (
        commands
    )
    assert any("/tmp/osptrack-decoys/lsb_release -c" in c for c in commands), commands
    assert "[install] /usr/bin/id -g" in commands, commands  # the renamed shell's child
    baits = run_json(run_dir)["notable"]["bait_reads"]
    assert f"[install] {home}/.ssh/id_rsa by /tmp/osptrack-decoys/uname" in baits, baits


def test_a_program_named_bwrap_is_not_taken_for_the_sandbox(run_dir: Path) -> None:
    run = run_json(run_dir)
    assert any("/tmp/osptrack-decoys/bwrap" in c for c in run["notable"]["commands"]), run["notable"]
    assert any(r["exe"] == "/tmp/osptrack-decoys/bwrap" for r in run["bait_reads"]), run["bait_reads"]
    events = read_jsonl(run_dir / "events.jsonl")
    assert any(e.get("exe") == "/tmp/osptrack-decoys/bwrap" and e["kind"] == "file" for e in events)


def test_argv_that_mentions_pip_does_not_hide(run_dir: Path) -> None:
    commands = run_json(run_dir)["notable"]["commands"]
    assert any("decoy-ran" in c and "# -m pip" in c for c in commands), commands
    assert any("-m pip install --no-index osptrack-nothing-here" in c for c in commands), commands


def test_pips_own_processes_are_not_notable(run_dir: Path) -> None:
    commands = run_json(run_dir)["notable"]["commands"]
    events = read_jsonl(run_dir / "events.jsonl")
    runner = [
        e
        for e in events
        if e["kind"] == "process" and e["op"] == "exec" and "__pip-runner__.py" in str(e.get("argv"))
    ]
    assert runner, "pip built this sdist without its isolated build env: the test proves nothing"
    assert not any("__pip-runner__" in c for c in commands), commands
    assert not any("_in_process.py" in c for c in commands), commands
    # pip's own user-agent probes (the real lsb_release and uname) stay out.
    assert not any(
        c.startswith(("[install] lsb_release", "[install] uname", "[install] getopt")) for c in commands
    )


def load(run_dir: Path) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    install = json.loads((run_dir / "result.json").read_text())["Analysis"]["install"]
    return install, read_jsonl(run_dir / "events.jsonl"), run_json(run_dir)


def test_a_failed_exec_stays_in_commands(run_dir: Path) -> None:
    install, _, run = load(run_dir)
    assert ["/nonexistent/osptrack-evil", "--run"] in [c["Command"] for c in install["Commands"]]
    assert "[install] /nonexistent/osptrack-evil --run (failed: ENOENT)" in run["notable"]["commands"]
    assert "/nonexistent/osptrack-evil" not in {f["Path"] for f in install["Files"]}  # never ran: no Read


def test_probes_of_absent_sensitive_paths_are_recorded_but_are_no_reads(run_dir: Path) -> None:
    install, events, run = load(run_dir)
    home = run["persona"]["home"]
    looked = {
        "/etc/shadow": "system_accounts",
        f"{home}/.electrum": "wallet",
        f"{home}/.ethereum/keystore": "wallet",
        f"{home}/.bitcoin/wallet.dat": "wallet",
        f"{home}/.config/google-chrome/Default": "browser",
    }
    probes = {e["path"]: e for e in events if e.get("probe") and e["pid"] and e["path"] in looked}
    assert set(probes) == set(looked), sorted(probes)
    for path, category in looked.items():
        assert probes[path]["probe"] == category and probes[path]["errno"] == "ENOENT", probes[path]
    assert {e["op"] for e in probes.values()} >= {"stat", "access", "readlink", "read"}
    files = {f["Path"] for f in install["Files"]}
    assert not files & set(looked), files & set(looked)
    mine = [p for p in run["probes"] if p["toolchain"] is None]
    assert set(looked) <= {p["path"] for p in mine}, run["probes"]
    assert any(
        line.startswith("[install] /etc/shadow (newfstatat, ENOENT) by") for line in run["notable"]["probes"]
    )


def test_a_listening_socket_is_in_sockets_and_notable(run_dir: Path) -> None:
    install, events, run = load(run_dir)
    listens = [
        e for e in events if e["kind"] == "network" and e["op"] == "listen" and e["address"] == "0.0.0.0"
    ]
    assert listens and all(e["port"] > 0 for e in listens), listens  # setup.py runs once per PEP 517 hook
    for port in {e["port"] for e in listens}:
        assert {"Address": "0.0.0.0", "Port": port, "Hostnames": []} in install["Sockets"]
        assert any(
            line.startswith(f"[install] 0.0.0.0:{port} by /usr/bin/python3")
            for line in run["notable"]["listening"]
        )
    assert {"Address": "0.0.0.0", "Port": 0, "Hostnames": []} in install[
        "Sockets"
    ]  # the bind, as PA keeps it


def test_lookup_probes_are_marked_and_left_out_of_notable(run_dir: Path) -> None:
    _, events, run = load(run_dir)
    hosts = {"lookup-only": 443, "portzero": 0}
    udp = [e for e in events if e["kind"] == "network" and e["op"] == "connect" and "<UDP" in e["args"][0]]
    probes = [e for e in udp if e.get("lookup_probe")]
    assert {e["port"] for e in probes} >= set(hosts.values()), udp
    assert not any(e.get("lookup_probe") for e in udp if e["port"] == 9999), udp  # it sent a datagram
    assert {"Address": probes[0]["address"], "Port": probes[0]["port"]} in run["phases"]["install"][
        "lookup_probes"
    ]
    connections = run["notable"]["connections"]
    assert not any("lookup-only" in c or "portzero" in c or c.endswith(":0") for c in connections), (
        connections
    )
    assert any(c.startswith("udp-real.osptrack-test.example.com:9999") for c in connections), connections


def test_one_attempt_over_both_families_is_one_line(run_dir: Path) -> None:
    _, events, run = load(run_dir)
    tcp = {
        e["family"]
        for e in events
        if e["kind"] == "network" and e["op"] == "connect" and e.get("port") == 8080
    }
    assert tcp == {"AF_INET", "AF_INET6"}, tcp  # both were attempted
    pair = [c for c in run["notable"]["connections"] if "pair.osptrack-test.example.com" in c]
    assert len(pair) == 1 and pair[0].startswith("pair.osptrack-test.example.com:8080 ("), pair
    assert pair[0].count(",") == 1, pair  # the two addresses


def test_a_daemon_killed_by_the_teardown_is_recorded_alive_at_end(run_dir: Path) -> None:
    _, events, run = load(run_dir)
    alive = run["phases"]["install"]["alive_at_end"]
    daemons = [a for a in alive if a["argv"] == ["/usr/bin/sleep", "301"]]
    assert daemons, alive
    cloned = {
        e["child_pid"] for e in events if e["kind"] == "process" and e["op"] == "clone" and e.get("child_pid")
    }
    for daemon in daemons:
        assert daemon["pid"] in cloned and daemon["exe"] == "/usr/bin/sleep" and daemon["toolchain"] is None
        assert (
            isinstance(daemon["started"], float)
            and daemon["started"] <= run["phases"]["install"]["started"] + 300
        )
        assert any(
            line.startswith(f"[install] {daemon['pid']} /usr/bin/sleep 301")
            for line in run["notable"]["alive_at_end"]
        )
    assert not any(a["argv"][:3] == ["/usr/bin/python3", "-m", "pip"] for a in alive), alive  # pip had exited
