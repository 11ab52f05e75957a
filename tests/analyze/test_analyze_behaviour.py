"""End to end: suspicious packages built from source show every behaviour in all three files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from builders import EXFIL_HOST, EXFIL_PORT, suspicious_npm, suspicious_sdist
from osptrack.jsonio import read_jsonl
from osptrack.run import AnalyzeOptions, analyze
from osptrack.target import parse_target

pytestmark = pytest.mark.sandbox


@pytest.fixture(scope="module", params=["pypi", "npm"])
def run_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp(f"src-{request.param}")
    archive = suspicious_sdist(src) if request.param == "pypi" else suspicious_npm(src)
    out = tmp_path_factory.mktemp("runs") / request.param
    outcome = analyze(parse_target(request.param, str(archive)), AnalyzeOptions(timeout_s=120), out)
    assert outcome.statuses == {"install": "completed", "import": "completed"}
    return out


def load(run_dir: Path) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    return (
        json.loads((run_dir / "result.json").read_text()),
        read_jsonl(run_dir / "events.jsonl"),
        read_jsonl(run_dir / "network.jsonl"),
        json.loads((run_dir / "run.json").read_text()),
    )


def test_result_json_has_every_behaviour(run_dir: Path) -> None:
    result, _, _, run = load(run_dir)
    home = run["persona"]["home"]  # the persona's, /home/<user>
    assert home.startswith("/home/")
    install = result["Analysis"]["install"]
    assert set(result) == {"Package", "CreatedTimestamp", "Analysis"}
    assert set(install) == {"Status", "Stdout", "Stderr", "Files", "Sockets", "Commands", "DNS"}
    files = {f["Path"]: f for f in install["Files"]}
    assert files[f"{home}/.bashrc"]["Write"] is True
    assert files[f"{home}/.ssh/id_rsa"]["Read"] is True
    assert ["sh", "-c", "id"] in [c["Command"] for c in install["Commands"]]
    queries = [q["Hostname"] for d in install["DNS"] for q in d["Queries"]]
    assert EXFIL_HOST in queries
    sockets = [s for s in install["Sockets"] if s["Port"] == EXFIL_PORT]
    assert sockets and EXFIL_HOST in sockets[0]["Hostnames"]


def test_events_are_ordered_and_complete(run_dir: Path) -> None:
    _, events, _, run = load(run_dir)
    home = run["persona"]["home"]
    times = [e["t"] for e in events]
    assert times == sorted(times)
    for e in events:
        assert {"t", "phase", "pid", "ppid", "exe", "syscall", "ret", "errno", "kind"} <= set(e)
    assert any(e["kind"] == "file" and e["path"] == f"{home}/.bashrc" and e["op"] == "write" for e in events)
    assert any(
        e["kind"] == "file" and e["path"] == f"{home}/.ssh/id_rsa" and e["op"] == "read" for e in events
    )
    connects = [
        e for e in events if e["kind"] == "network" and e["op"] == "connect" and e.get("port") == EXFIL_PORT
    ]
    assert connects
    execs = [
        e
        for e in events
        if e["kind"] == "process"
        and e["op"] == "exec"
        and e.get("argv") == ["sh", "-c", "id"]
        and e["errno"] is None
    ]
    assert execs
    # The process tree reaches from `sh -c id` back to the toolchain's root process.
    parents = {
        e["child_pid"]: e["pid"]
        for e in events
        if e["kind"] == "process" and e["op"] == "clone" and e.get("child_pid")
    }
    chain, pid = [], execs[0]["pid"]
    while pid in parents:
        pid = parents[pid]
        chain.append(pid)
    assert len(chain) >= 2


def test_network_log_and_exfiltration_flag(run_dir: Path) -> None:
    _, _, network, run = load(run_dir)
    assert any(r["kind"] == "dns" and r["qname"].rstrip(".") == EXFIL_HOST for r in network)
    flows = [r for r in network if r["kind"] == "tcp" and r["dst_port"] == EXFIL_PORT]
    assert flows and flows[0]["http"]["method"] == "POST" and flows[0]["http"]["host"] == EXFIL_HOST
    secret = next(t["value"] for t in run["honeytokens"] if t["kind"] == "aws_secret_access_key")
    assert any(x["kind"] == "aws_secret_access_key" for x in run["exfiltration"]), run["exfiltration"]
    assert secret  # the planted value is recorded, unique per run
    assert any(r["path"] == f"{run['persona']['home']}/.ssh/id_rsa" for r in run["bait_reads"])
    assert run["notable"]["exfiltration"] and run["notable"]["bait_reads"]


def test_honeytokens_are_unique_per_run(run_dir: Path, tmp_path: Path) -> None:
    _, _, _, first = load(run_dir)
    result = analyze(
        parse_target("pypi", str(_tiny_wheel(tmp_path))), AnalyzeOptions(timeout_s=60), tmp_path / "r"
    )
    second = json.loads((result.out / "run.json").read_text())
    assert {t["value"] for t in first["honeytokens"]}.isdisjoint({t["value"] for t in second["honeytokens"]})


def _tiny_wheel(dest: Path) -> Path:
    from builders import make_wheel

    return make_wheel(dest, "tiny-pkg", "0.1", {"tiny_pkg/__init__.py": "X = 1\n"})
