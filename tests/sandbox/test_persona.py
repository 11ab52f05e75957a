"""The victim workstation persona: a consistent machine per run, and a probe that checks the
sandbox signs real malware checks finds none of them and fires its (harmless) payload."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from builders import make_wheel
from osptrack.ecosystems.base import expand_home, home_relative
from osptrack.sandbox.bwrap import USR_LOCAL_DIRS
from osptrack.sandbox.persona import (
    UID,
    choose_persona,
    cpuinfo_without_hypervisor,
    home_files,
    overlay_files,
)

PAYLOAD_HOST = "payload.osptrack-test.example"

# Harmless by construction: it reads its own sandbox's /proc and home, and "fires" a DNS lookup.
PROBE = f'''
import glob, json, os, socket, subprocess

def signs():
    found = {{}}
    found["uid0"] = os.getuid() == 0
    found["hostname_build"] = socket.gethostname() == "build"
    found["only_lo"] = [n for _, n in socket.if_nameindex()] == ["lo"]
    virt = subprocess.run(["systemd-detect-virt"], capture_output=True, text=True).stdout.strip()
    found["virt"] = virt != "none"
    home = os.path.expanduser("~")
    bait_names = {{".aws", ".ssh", ".npmrc", ".pypirc", ".git-credentials", ".docker"}}
    found["home_only_baits"] = set(os.listdir(home)) <= bait_names
    return found

cmdlines = {{}}
for path in glob.glob("/proc/[0-9]*/cmdline"):
    try:
        cmdlines[path] = open(path, "rb").read()
    except OSError:
        pass
secrets = [v for k, v in os.environ.items() if k.startswith(("AWS_", "GITHUB_"))]
report = {{
    "signs": signs(),
    "pid1": open("/proc/1/cmdline", "rb").read().decode(),
    "comm1": open("/proc/1/comm").read().strip(),
    "secret_on_argv": any(s.encode() in c for s in secrets for c in cmdlines.values()),
    "bwrap_on_argv": any(b"bwrap" in c for c in cmdlines.values()),
    "uid": os.getuid(),
    "user": os.environ.get("USER"),
    "home": os.environ.get("HOME"),
    "hostname": socket.gethostname(),
    "passwd": [l for l in open("/etc/passwd") if l.startswith(os.environ.get("USER", "?") + ":")],
    "dmi": open("/sys/class/dmi/id/sys_vendor").read().strip(),
    "hypervisor": "hypervisor" in open("/proc/cpuinfo").read(),
    "usr_local": sorted(os.listdir("/usr/local")),
    "usr_local_bin": sorted(os.listdir("/usr/local/bin")),
    "persona_site": os.path.isdir("/usr/local/lib/python3.11/dist-packages/requests"),
}}
print("PROBE " + json.dumps(report), flush=True)
if not any(report["signs"].values()):
    try:
        socket.getaddrinfo("{PAYLOAD_HOST}", 443)  # the "payload": a lookup the record shows
    except OSError:
        pass
'''


def test_persona_is_one_consistent_machine() -> None:
    p = choose_persona()
    etc = p.etc_files("198.18.0.53")
    line = next(x for x in etc["passwd"].splitlines() if x.startswith(f"{p.user}:"))
    assert line.split(":")[2:4] == [str(UID), str(UID)] and line.split(":")[5:] == [p.home, "/bin/bash"]
    assert (
        f"{p.user}:x:{UID}:" in etc["group"]
        and p.hostname in etc["hosts"]
        and etc["hostname"] == p.hostname + "\n"
    )
    assert p.home == f"/home/{p.user}" and p.hostname != "build"
    env = p.env()
    assert (env["USER"], env["LOGNAME"], env["HOME"]) == (p.user, p.user, p.home)
    assert p.address.startswith(p.gateway.rsplit(".", 1)[0] + ".") and p.mac.count(":") == 5
    assert int(p.mac.split(":")[0], 16) & 0b10 == 0, "a locally administered MAC gives a VM away"
    assert {".bashrc", ".profile", ".bash_history", ".gitconfig", ".ssh/known_hosts"} <= set(home_files(p))
    assert any(rel.startswith("projects/") and "/.git/" in rel for rel in home_files(p))
    assert "/sys/class/dmi/id/product_name" in overlay_files(p)


def test_cpuinfo_loses_only_the_hypervisor_flag() -> None:
    text = "processor\t: 0\nflags\t\t: fpu vme hypervisor sse2\nbugs\t\t: spectre_v1\n"
    out = cpuinfo_without_hypervisor(text)
    assert "hypervisor" not in out and "fpu vme sse2" in out and "bugs\t\t: spectre_v1" in out


def test_home_paths_expand_to_the_persona_and_back() -> None:
    assert expand_home("~/site", "/home/alex") == "/home/alex/site"
    assert expand_home("~/.gem/x/bin:/usr/bin", "/home/alex") == "/home/alex/.gem/x/bin:/usr/bin"
    assert expand_home("/usr/bin/~x", "/home/alex") == "/usr/bin/~x"  # only a leading ~
    assert home_relative("/home/sofia/project/vendor/bin/x") == "~/project/vendor/bin/x"
    assert home_relative("/root/site") == "~/site"


@pytest.mark.sandbox
def test_probe_finds_no_sandbox_sign_and_fires(tmp_path: Path) -> None:
    from osptrack.run import AnalyzeOptions, analyze
    from osptrack.target import parse_target

    wheel = make_wheel(tmp_path, "persona-probe", "1.0", {"persona_probe/__init__.py": PROBE})
    out = tmp_path / "run"
    outcome = analyze(parse_target("pypi", str(wheel)), AnalyzeOptions(timeout_s=120), out)
    assert outcome.statuses["import"] == "completed"
    result = json.loads((out / "result.json").read_text())
    stdout = base64.b64decode(result["Analysis"]["import"]["Stdout"]).decode()
    report = json.loads(next(x for x in stdout.splitlines() if x.startswith("PROBE ")).split(" ", 1)[1])
    assert report["signs"] == dict.fromkeys(report["signs"], False), report["signs"]
    assert report["pid1"] == "/sbin/init\0" and report["comm1"] == "systemd"
    assert not report["secret_on_argv"] and not report["bwrap_on_argv"]
    assert not report["hypervisor"] and report["dmi"]
    # A fresh Debian's empty /usr/local, whatever the host keeps in its own; the persona's site is there.
    assert report["usr_local"] == sorted([*USR_LOCAL_DIRS, "man"]) and report["usr_local_bin"] == []
    assert report["persona_site"]
    persona = json.loads((out / "run.json").read_text())["persona"]
    assert (report["uid"], report["user"], report["home"], report["hostname"]) == (
        UID,
        persona["user"],
        persona["home"],
        persona["hostname"],
    )
    assert report["passwd"] and report["passwd"][0].split(":")[5] == persona["home"]
    dns = {q["Hostname"] for d in result["Analysis"]["import"]["DNS"] or [] for q in d["Queries"]}
    assert PAYLOAD_HOST in dns  # the payload fired
    # The sandbox's init is no event of the package's.
    events = [json.loads(x) for x in (out / "events.jsonl").read_text().splitlines()]
    assert not any("_sandbox_init" in " ".join(e.get("argv") or []) for e in events)


MALWARE_IMPORTS = ("requests", "Crypto.Cipher", "cryptography.fernet", "psutil", "dns.resolver", "aiohttp",
                   "discord", "httpx", "PIL", "colorama", "git", "browser_cookie3", "telebot", "bs4")  # fmt: skip


@pytest.mark.sandbox
def test_setup_py_importing_what_malware_imports_installs_offline(tmp_path: Path) -> None:
    """The imitation of the commonest shape: a setup.py that imports requests (and friends) at the
    top and declares `install_requires=["requests"]`, analysed offline with no --deps-dir."""
    from builders import make_sdist
    from osptrack.run import AnalyzeOptions, analyze
    from osptrack.sandbox.persona import python_site_host
    from osptrack.target import parse_target

    if python_site_host() is None:
        pytest.fail("the persona's Python packages are missing: run scripts/setup.sh")
    setup_py = (
        "".join(f"import {m}\n" for m in MALWARE_IMPORTS)
        + "import socket\n"
        + f"try:\n    socket.getaddrinfo('{PAYLOAD_HOST}', 443)\nexcept OSError:\n    pass\n"
        + "from setuptools import setup\n"
        + "setup(name='imports-like-malware', version='1.0', install_requires=['requests'], py_modules=[])\n"
    )
    sdist = make_sdist(tmp_path, "imports-like-malware", "1.0", setup_py)
    out = tmp_path / "run"
    outcome = analyze(
        parse_target("pypi", str(sdist)), AnalyzeOptions(phases=("install",), timeout_s=180), out
    )
    result = json.loads((out / "result.json").read_text())
    stderr = base64.b64decode(result["Analysis"]["install"]["Stderr"]).decode(errors="replace")
    assert outcome.statuses["install"] == "completed", stderr[-2000:]
    dns = {q["Hostname"] for d in result["Analysis"]["install"]["DNS"] or [] for q in d["Queries"]}
    assert PAYLOAD_HOST in dns


def test_init_runs_the_command_it_reads_from_its_fd_argument_for_argument(tmp_path: Path) -> None:
    """The init gets the command as NUL-terminated arguments (no json to import): spaces, empty
    arguments and non-ASCII survive, and the command's exit status is the init's."""
    import os
    import subprocess

    from osptrack.run import HARNESS_DIR

    command = ["/usr/bin/printf", "%s|", "a b", "", "é", "--x=1"]
    fd_file = tmp_path / "cmd"
    fd_file.write_bytes(b"".join(os.fsencode(a) + b"\0" for a in command))
    with fd_file.open("rb") as fh:
        proc = subprocess.run(
            ["/usr/bin/python3", "-I", "-S", str(HARNESS_DIR / "_sandbox_init.py"), str(fh.fileno())],
            pass_fds=(fh.fileno(),), capture_output=True, timeout=30,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode() == "a b||é|--x=1|"
    fd_file.write_bytes(b"/bin/sh\0-c\0exit 7\0")
    with fd_file.open("rb") as fh:
        proc = subprocess.run(
            ["/usr/bin/python3", "-I", "-S", str(HARNESS_DIR / "_sandbox_init.py"), str(fh.fileno())],
            pass_fds=(fh.fileno(),), capture_output=True, timeout=30,
        )  # fmt: skip
    assert proc.returncode == 7
