"""The console script through the resident analyze server against a direct run: the same output,
exit code and run folder; the client's environment, cwd and signals honoured; stale code, other
users and lost peers handled."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from server_helpers import CONSOLE_SCRIPT, Servers, alive, default_sigint, needs_root, servers, wait_for

from builders import make_wheel

__all__ = ["servers"]  # the fixture

pytestmark = needs_root

SRC = Path(__file__).resolve().parents[2] / "src"

# run.json values that differ between any two runs of the same package (the persona and the
# honeytokens are drawn at random per run; clocks; the trace's own volume: CI once saw a direct run
# of the same wheel record 1,510 events against the served runs' 1,509). Their keys must match.
VOLATILE = re.compile(
    r"^/(honeytokens|persona/.*|second_stage/marker|timings/.*|trace/events"
    r"|phases/[^/]+/(peak_memory_bytes|started|trace_bytes|wall_s|events))$"
)


def leaves(value: Any, path: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        return {p: v for k, sub in value.items() for p, v in leaves(sub, f"{path}/{k}").items()}
    return {path: value}


def stable(run_json: Path) -> dict[str, Any]:
    values = leaves(json.loads(run_json.read_text()))
    return {p: (None if VOLATILE.match(p) else v) for p, v in values.items()}


def events(run: Path) -> int:
    return json.loads((run / "run.json").read_text())["trace"]["events"]


def summary(stdout: str, out: str) -> str:
    return re.sub(r"\(\d+\.\d s\)", "(N s)", stdout.replace(out, "OUT"))


def test_usage_error_is_the_same_served_and_direct(servers: Servers, tmp_path: Path) -> None:
    servers.warm(tmp_path)
    args = ("analyze", "pypi", "bad name==1")
    served = servers.run(*args, cwd=tmp_path)
    direct = servers.run(*args, cwd=tmp_path, OSPTRACK_SERVER="0")
    assert servers.notes()[-2:] == ["served", "direct: OSPTRACK_SERVER=0"]
    assert (served.returncode, served.stdout, served.stderr) == (
        direct.returncode,
        direct.stdout,
        direct.stderr,
    )
    assert served.returncode == 2 and len(served.stderr.splitlines()) == 1, served.stderr
    assert "invalid pypi package name" in served.stderr and "Traceback" not in served.stderr
    assert [p.name for p in tmp_path.iterdir()] == []  # nothing written, by either


def test_first_run_starts_a_server_and_runs_direct(servers: Servers, tmp_path: Path) -> None:
    proc = servers.run("analyze", "cobol", "x==1", cwd=tmp_path)
    assert proc.returncode == 2 and "unknown ecosystem" in proc.stderr
    assert servers.notes() == ["direct: started a server"]
    servers.wait_listening()
    assert servers.run("analyze", "cobol", "x==1", cwd=tmp_path).stderr == proc.stderr
    assert servers.notes()[-1] == "served"
    sock = next(servers.dir.glob("analyze-*.sock"))
    assert sock.stat().st_mode & 0o777 == 0o600 and servers.dir.stat().st_mode & 0o777 == 0o700


def test_off_switch_goes_direct(servers: Servers, tmp_path: Path) -> None:
    proc = servers.run("analyze", "cobol", "x==1", cwd=tmp_path, OSPTRACK_SERVER="0")
    assert proc.returncode == 2
    assert servers.notes() == ["direct: OSPTRACK_SERVER=0"]
    assert not servers.dir.exists() or not list(servers.dir.glob("analyze-*.sock"))  # none started


@pytest.mark.sandbox
def test_analyze_same_output_and_run_folder(servers: Servers, tmp_path: Path) -> None:
    """Relative --out against the client's cwd; an OSPTRACK_* variable that differs between two
    served runs reaches each run (the phase-spawn mark)."""
    wheel = make_wheel(tmp_path, "quiet-pkg", "1.0", {"quiet_pkg/__init__.py": "X = 1\n"})
    work = tmp_path / "cwd"
    work.mkdir()
    servers.warm(work)
    args = ("analyze", "pypi", str(wheel), "--out")
    served = servers.run(*args, "served", cwd=work, OSPTRACK_SPAWN_MARK=str(tmp_path / "mark-a"))
    again = servers.run(*args, "again", cwd=work, OSPTRACK_SPAWN_MARK=str(tmp_path / "mark-b"))
    direct = servers.run(*args, "direct", cwd=work, OSPTRACK_SERVER="0")
    assert servers.notes()[-3:] == ["served", "served", "direct: OSPTRACK_SERVER=0"]
    assert served.returncode == again.returncode == direct.returncode == 0, served.stderr
    assert (summary(served.stdout, "served"), served.stderr) == (
        summary(direct.stdout, "direct"),
        direct.stderr,
    )
    assert "completed" in served.stdout
    for name in ("served", "again"):
        assert sorted(p.name for p in (work / name).iterdir()) == sorted(
            p.name for p in (work / "direct").iterdir()
        )
        assert stable(work / name / "run.json") == stable(work / "direct" / "run.json")
        # The volume may wobble by an event or two, but a served run must trace as much as a direct one.
        assert abs(events(work / name) - events(work / "direct")) <= 0.01 * events(work / "direct")
    assert len((tmp_path / "mark-a").read_text().split()) == 2  # install and import: run 1 only
    assert len((tmp_path / "mark-b").read_text().split()) == 2


def test_edited_code_gets_a_new_server(servers: Servers, tmp_path: Path) -> None:
    tree = tmp_path / "src"
    shutil.copytree(SRC / "osptrack", tree / "osptrack", ignore=shutil.ignore_patterns("__pycache__"))
    env = {"PYTHONPATH": str(tree)}
    first = servers.warm(tmp_path, **env)
    old = servers.run("analyze", "--no-such-flag", cwd=tmp_path, **env)
    assert servers.notes()[-1] == "served" and "(see 'osptrack analyze --help')" in old.stderr
    cli = tree / "osptrack" / "cli" / "__init__.py"
    cli.write_text(cli.read_text().replace("(see '{where} --help')", "(edited: see '{where} --help')"))
    edited = servers.run("analyze", "--no-such-flag", cwd=tmp_path, **env)
    assert servers.notes()[-1] == "direct: stale"
    assert "(edited: see" in edited.stderr  # never the old code, not even this once
    wait_for(lambda: not alive(first), timeout=15)  # the stale server left
    servers.wait_listening()
    fresh = servers.run("analyze", "--no-such-flag", cwd=tmp_path, **env)
    assert servers.notes()[-1] == "served" and fresh.stderr == edited.stderr


def test_other_users_cannot_use_roots_server(servers: Servers, tmp_path: Path) -> None:
    servers.warm(tmp_path)
    sock = next(servers.dir.glob("analyze-*.sock"))
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")
    # As nobody, the console script runs direct (the server is root's), and the folder is closed.
    proc = subprocess.run(
        [*nobody, sys.executable, "-c", CONSOLE_SCRIPT, "analyze", "cobol", "x==1"], cwd="/", env=servers.env(),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2 and "unknown ecosystem" in proc.stderr, proc.stderr
    probe = f"import socket; socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET).connect({str(sock)!r})"
    denied = subprocess.run(
        [*nobody, sys.executable, "-c", probe], capture_output=True, text=True, timeout=60
    )
    assert denied.returncode != 0 and "PermissionError" in denied.stderr
    # Past the folder's permissions (CAP_DAC_OVERRIDE kept), the peer-credential check refuses
    # before reading anything.
    talk = "\n".join([
        f"import sys; sys.path[:0] = [{str(SRC)!r}]",
        "from osptrack.server import protocol",
        f"s = protocol.new_socket(); s.connect({str(sock)!r})",
        "print(protocol.recv(s)[0])",
    ])  # fmt: skip
    caps = ["--inh-caps=+dac_override", "--ambient-caps=+dac_override"]
    refused = subprocess.run(
        [*nobody, *caps, sys.executable, "-c", talk], capture_output=True, text=True, timeout=60
    )
    assert refused.returncode == 0, refused.stderr
    assert refused.stdout.strip() == "{'refused': \"not the server's user\"}"


def slow_wheel(tmp_path: Path, tag: str) -> Path:
    code = f"import time\nopen('/tmp/{tag}', 'w').close()\ntime.sleep(120)\n"
    return make_wheel(tmp_path, "slow-pkg", "1.0", {"slow_pkg/__init__.py": code})


@pytest.fixture
def work() -> Iterator[Path]:
    """A work root of the test's own, so what is left can be told from other runs' (mode 0711 as
    the default root's: pytest's tmp_path is 0700, which the sandbox's user could not enter)."""
    root = Path(tempfile.mkdtemp(prefix="osps-work-", dir="/var/tmp"))
    root.chmod(0o711)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def start_slow(
    servers: Servers, tmp_path: Path, work: Path, **extra: str
) -> tuple[subprocess.Popen[str], Path, Path]:
    """A served analyze whose import phase sleeps; returns once that phase has started."""
    wheel = slow_wheel(tmp_path, "osptrack-server-slow")
    mark = tmp_path / "mark"
    servers.warm(tmp_path, **extra)
    env = servers.env(OSPTRACK_WORKDIR=str(work), OSPTRACK_SPAWN_MARK=str(mark), **extra)
    proc = subprocess.Popen(
        servers.argv("analyze", "pypi", str(wheel), "--out", str(tmp_path / "out")), cwd=tmp_path, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint,
    )  # fmt: skip
    wait_for(lambda: mark.exists() and len(mark.read_text().split()) >= 2, timeout=120)
    time.sleep(1.0)  # into the import's sleep
    assert servers.notes()[-1] == "served"
    return proc, work, tmp_path / "out"


def uncaught(stderr: str) -> list[str]:
    """Tracebacks of exceptions that reached the top, not the "Exception ignored in" reports
    CPython prints when a KeyboardInterrupt lands inside an at-fork hook (logging's lock), which
    a direct run's Ctrl-C can print just the same."""
    lines = stderr.splitlines()
    return [
        line for i, line in enumerate(lines)
        if line.startswith("Traceback") and not (i and lines[i - 1].startswith("Exception ignored"))
    ]  # fmt: skip


def leftovers(work: Path) -> list[str]:
    return [p.name for p in work.iterdir()] if work.exists() else []


def analysis_children(server: int) -> list[int]:
    children = Path(f"/proc/{server}/task/{server}/children")
    return [int(p) for p in children.read_text().split()] if children.exists() else []


@pytest.mark.sandbox
def test_ctrl_c_stops_the_analysis_and_cleans_up(servers: Servers, tmp_path: Path, work: Path) -> None:
    proc, work, out = start_slow(servers, tmp_path, work)
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, (stderr, _)
    assert time.monotonic() - started < 30
    assert stderr.strip().splitlines()[-1] == "osptrack: interrupted" and not uncaught(stderr)
    assert leftovers(work) == [] and not out.exists()


@pytest.mark.sandbox
def test_client_killed_the_child_cleans_up(servers: Servers, tmp_path: Path, work: Path) -> None:
    proc, work, out = start_slow(servers, tmp_path, work)
    server = max(servers.pids().values())
    (child,) = analysis_children(server)
    proc.kill()
    proc.wait()
    wait_for(lambda: not alive(child), timeout=60)  # told with SIGTERM: it cleaned up and left
    assert leftovers(work) == [] and not out.exists()
    assert alive(server)  # and the server serves on


@pytest.mark.sandbox
def test_server_killed_mid_run_fails_the_client_on_one_line(
    servers: Servers, tmp_path: Path, work: Path
) -> None:
    proc, work, out = start_slow(servers, tmp_path, work)
    pid_file, server = max(servers.pids().items(), key=lambda item: item[1])
    (child,) = analysis_children(server)
    os.kill(server, signal.SIGKILL)
    pid_file.unlink()  # a dead server's pid: never signalled again by the fixture
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode != 0
    # One line from the client; the child, stopped by its parent-death signal, still writes its
    # own "interrupted" to the same stderr as it cleans up.
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines[0] == "osptrack: error: the analyze server exited before the run finished", stderr
    assert not uncaught(stderr) and lines[-1] == "osptrack: interrupted", stderr
    wait_for(lambda: not alive(child), timeout=60)  # its parent-death signal is SIGTERM
    wait_for(lambda: leftovers(work) == [], timeout=30)


@pytest.mark.sandbox
def test_sigterm_cleans_up_and_the_client_dies_of_it(servers: Servers, tmp_path: Path, work: Path) -> None:
    """The child's signal death is the client's, as the shell would see it from a direct run."""
    proc, work, out = start_slow(servers, tmp_path, work)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGTERM, stderr
    assert not uncaught(stderr), stderr
    assert leftovers(work) == [] and not out.exists()  # stopped as Ctrl-C stops it, first


def on_a_tty(servers: Servers, args: tuple[str, ...], cwd: Path, **extra: str) -> bytes:
    """What `osptrack ARGS` prints on a 50-column terminal (stdout and stderr both the pty)."""
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 50, 0, 0))
    env = {k: v for k, v in servers.env(**extra).items() if k not in ("COLUMNS", "LINES")}
    proc = subprocess.Popen(servers.argv(*args), cwd=cwd, env=env, stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: every holder of the slave has closed it
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    assert proc.wait(timeout=60) == 0
    return b"".join(chunks)


def test_a_terminal_is_the_clients(servers: Servers, tmp_path: Path) -> None:
    """The child writes to the client's terminal and sees its size (help wrapped at 50 columns)."""
    servers.warm(tmp_path)
    served = on_a_tty(servers, ("analyze", "--help"), tmp_path)
    assert servers.notes()[-1] == "served"
    direct = on_a_tty(servers, ("analyze", "--help"), tmp_path, OSPTRACK_SERVER="0")
    assert served == direct
    lines = served.decode().splitlines()
    assert lines[0].startswith("Usage: osptrack analyze") and max(len(line) for line in lines) <= 50


def test_a_renamed_cwd_is_still_the_clients(servers: Servers, tmp_path: Path) -> None:
    """The cwd travels as an fd: a relative path resolves as in a direct run after the folder was
    renamed under the shell (whose $PWD, in the environment sent, still names the old path)."""
    servers.warm(tmp_path)
    before, after = tmp_path / "before", tmp_path / "after"
    results = []
    for extra in ({}, {"OSPTRACK_SERVER": "0"}):
        before.mkdir()
        (before / "junk-1.0.tar.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
        argv = " ".join(servers.argv("analyze", "pypi", "./junk-1.0.tar.gz"))
        script = f"cd {before} && mv {before} {after} && exec {argv}"
        proc = subprocess.run(
            ["bash", "-c", script], env=servers.env(**extra), capture_output=True, text=True, timeout=120
        )
        results.append((proc.returncode, proc.stderr))
        shutil.rmtree(after)
    assert servers.notes()[-2:] == ["served", "direct: OSPTRACK_SERVER=0"]
    assert results[0] == results[1]
    assert results[0][0] == 2 and "not a readable archive" in results[0][1], results


def test_the_server_keeps_nothing_per_request(servers: Servers, tmp_path: Path) -> None:
    """Its open fds and children are the same after requests as before (no leak per run)."""
    server = servers.warm(tmp_path)
    servers.run("analyze", "cobol", "x==1", cwd=tmp_path)  # the first served run: lazily opened fds

    def held() -> tuple[int, list[int]]:
        return len(os.listdir(f"/proc/{server}/fd")), analysis_children(server)

    before = held()
    for _ in range(5):
        assert servers.run("analyze", "cobol", "x==1", cwd=tmp_path).returncode == 2
    assert servers.notes()[-5:] == ["served"] * 5
    assert held() == before and before[1] == []


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


@pytest.mark.sandbox
def test_a_stale_server_finishes_its_runs_quietly(servers: Servers, tmp_path: Path, work: Path) -> None:
    """Edited code while a run is going: the next request runs direct, the running one finishes
    (here: is stopped by Ctrl-C as usual), and the stale server neither serves nor spins."""
    tree = Path(tempfile.mkdtemp(prefix="osps-src-", dir="/tmp"))  # readable by the sandbox's user
    tree.chmod(0o755)
    try:
        shutil.copytree(SRC / "osptrack", tree / "osptrack", ignore=shutil.ignore_patterns("__pycache__"))
        env = {"PYTHONPATH": str(tree)}
        proc, work, out = start_slow(servers, tmp_path, work, **env)
        server = max(servers.pids().values())
        target = tree / "osptrack" / "summary.py"
        target.write_text(target.read_text() + "\n# edited\n")
        assert servers.run("analyze", "cobol", "x==1", cwd=tmp_path, **env).returncode == 2
        assert servers.notes()[-1] == "direct: stale"
        before = cpu_s(server)
        time.sleep(2.0)
        assert cpu_s(server) - before < 0.5  # waiting on its running child, not polling a backlog
        assert alive(server) and len(analysis_children(server)) == 1
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
        assert proc.returncode == 130
        wait_for(lambda: not alive(server), timeout=30)  # and then it leaves
        assert leftovers(work) == []
    finally:
        shutil.rmtree(tree, ignore_errors=True)
