"""Outliving the phase: a double-forked setsid daemon, a SIGTERM ignorer, a late-writing nohup child.

After the run no process of the sandbox is alive, and what it scheduled never writes anywhere on
the host, not even after the time it was scheduled for.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from containment_helpers import (
    REPO,
    WORK_ROOT,
    files_named,
    marker,
    processes_with,
    record,
    run_analysis,
    shell_wheel,
)

pytestmark = pytest.mark.sandbox

TIMEOUT_S = 5.0
LATE_S = 8  # the nohup child writes after this many seconds: past the timeout and the kill


@pytest.mark.parametrize(("main", "status"), [("sleep 1", "completed"), ("sleep 600", "error_timeout")])
def test_daemons_die_with_the_run_and_never_write_later(tmp_path: Path, main: str, status: str) -> None:
    tag = marker()
    late = f"/tmp/{tag}-late /var/tmp/{tag}-late /root/{tag}-late {tmp_path}/{tag}-late"
    script = (
        f"( setsid bash -c 'exec -a {tag}-daemon sleep 120' & ) ; "
        f"bash -c 'trap \"\" TERM HUP INT; exec -a {tag}-noterm sleep 120' & "
        f"( nohup bash -c 'sleep {LATE_S}; for f in {late}; do echo late > $f; done; exec -a {tag}-nohup sleep 120' "
        f">/dev/null 2>&1 & ) ; echo started; {main}"
    )
    wheel = shell_wheel(tmp_path, "contain-daemons", script)
    t0 = time.monotonic()
    res = run_analysis(wheel, tmp_path / "out", timeout_s=TIMEOUT_S)
    # Either the main process returns (bwrap's pid namespace ends with it, so the kernel kills
    # the daemons: the phase completes) or it hangs and the timeout kill takes the whole cgroup.
    assert res.statuses["import"] == status
    overrun = res.overrun_s("import", TIMEOUT_S)
    assert overrun <= 10
    assert processes_with(tag) == []
    argv = [" ".join(e.get("argv") or []) for e in res.events if e["kind"] == "process" and e["op"] == "exec"]
    # they did start: the daemon and the SIGTERM ignorer exec'd under their new names
    assert any(a.startswith(f"{tag}-daemon") for a in argv) and any(
        a.startswith(f"{tag}-noterm") for a in argv
    )
    assert any(a.startswith("nohup") for a in argv)
    # Wait out the nohup child's schedule, then look for its files everywhere it aimed.
    time.sleep(max(0.0, LATE_S + 1.5 - (time.monotonic() - t0)))
    assert processes_with(tag) == []
    roots = [Path("/tmp"), Path("/var/tmp"), Path("/root"), tmp_path, WORK_ROOT, REPO]
    assert files_named(tag, roots, max_depth=2) == []
    record(f"outlive_daemons_{status}", overrun_s=round(overrun, 2), status=res.statuses["import"])


def test_the_sandbox_dies_with_a_killed_analyzer(tmp_path: Path) -> None:
    """SIGKILL of `osptrack analyze` (a killed batch worker, the OOM killer) must not leave the
    sandbox running untimed: strace dies with its parent, and bwrap's pid namespace with strace."""
    tag = marker()
    wheel = shell_wheel(tmp_path, "contain-orphan", f"exec -a {tag} sleep 600")
    # A private work root (that `nobody` can traverse, unlike tmp_path), so this test can clean
    # up what the kill leaves behind.
    work = Path(f"/var/tmp/osptrack-contain-work-{os.getpid()}-{time.monotonic_ns()}")  # no tag in it
    analyzer = subprocess.Popen(
        [sys.executable, "-m", "osptrack.cli", "analyze", "pypi", str(wheel), "--out", str(tmp_path / "out"),
         "--timeout", "300"],
        env={**os.environ, "OSPTRACK_WORKDIR": str(work)}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    leftovers: list[str] = []
    try:
        deadline = time.monotonic() + 90
        while not processes_with(tag) and time.monotonic() < deadline:
            time.sleep(0.2)
        victims = processes_with(tag)
        assert victims, "the package never started"
        # what the killed run will leave behind: its cgroups and network namespace
        leftovers = [line.split(":", 2)[2] for line in Path(f"/proc/{victims[0]}/cgroup").read_text().splitlines()
                     if "osptrack-" in line]  # fmt: skip
        netns = subprocess.run(
            ["ip", "netns", "identify", str(victims[0])], capture_output=True, text=True
        ).stdout
        os.kill(analyzer.pid, signal.SIGKILL)
        analyzer.wait()
        t0 = time.monotonic()
        while processes_with(tag) and time.monotonic() - t0 < 10:
            time.sleep(0.1)
        assert processes_with(tag) == [], "the sandbox outlived its analyzer"
        record("analyzer_killed", sandbox_gone_after_s=round(time.monotonic() - t0, 2))
    finally:
        if analyzer.poll() is None:
            analyzer.kill()
        # cgroups are named osptrack-<run id>-<phase>, the network namespace osptrack-<run id>
        netns = leftovers[0].strip("/").rsplit("-", 1)[0] if leftovers else ""
        _clean_after_kill(work, leftovers, netns)


def _clean_after_kill(work: Path, cgroups: list[str], netns: str) -> None:
    """Undo what a SIGKILLed run could not: its home tmpfs, cgroups and network namespace."""
    for home in work.glob("run-*/home"):
        subprocess.run(["umount", "-l", str(home)], check=False)
    shutil.rmtree(work, ignore_errors=True)
    for _ in range(40):  # the killed members may take a moment to leave the cgroup
        remaining = []
        for ctrl_path in cgroups:
            for ctrl in ("memory", "pids", "freezer", ""):
                path = Path("/sys/fs/cgroup") / ctrl / ctrl_path.lstrip("/")
                try:
                    path.rmdir()
                except FileNotFoundError:
                    pass
                except OSError:
                    remaining.append(ctrl_path)
        if not remaining:
            break
        time.sleep(0.1)
    if netns.startswith("osptrack-"):
        subprocess.run(["ip", "netns", "delete", netns], check=False)


def test_stale_workspaces_of_killed_runs_are_swept_and_live_ones_kept() -> None:
    from osptrack.sandbox.runner import sweep_stale_workspaces

    root = Path(f"/var/tmp/osptrack-contain-sweep-{os.getpid()}-{time.monotonic_ns()}")
    stale, live, young = root / "run-stale", root / "run-live", root / "run-young"
    for folder in (stale, live, young):
        (folder / "home").mkdir(parents=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "osptrack-contain", str(stale / "home")], check=True
    )
    held = os.open(live / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(held, fcntl.LOCK_EX)  # as a live Workspace holds it
    old = time.time() - 7200
    for folder in (stale, live):
        os.utime(folder, (old, old))
    try:
        removed = sweep_stale_workspaces(root)
        assert removed == [stale]
        assert not stale.exists() and live.is_dir() and young.is_dir()
        assert str(stale / "home") not in Path("/proc/mounts").read_text()
    finally:
        os.close(held)
        if os.path.ismount(stale / "home"):
            subprocess.run(["umount", "-l", str(stale / "home")], check=False)
        shutil.rmtree(root, ignore_errors=True)


def test_stale_run_cgroups_are_swept_and_occupied_ones_kept() -> None:
    from osptrack.sandbox.limits import CGROUP_ROOT, sweep_stale_cgroups

    base = CGROUP_ROOT / "pids"
    if not (base / "cgroup.procs").exists():
        pytest.skip("cgroup v1 pids controller not mounted")  # v2 machines: same code, other root
    prefix = f"osptrack-contain-sweep-{os.getpid()}-"
    empty, occupied = base / f"{prefix}empty", base / f"{prefix}busy"
    empty.mkdir()
    occupied.mkdir()
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        (occupied / "cgroup.procs").write_text(str(sleeper.pid))
        removed = sweep_stale_cgroups(prefix=prefix, min_age_s=0)
        assert removed == [empty] and not empty.exists() and occupied.is_dir()
    finally:
        sleeper.kill()
        sleeper.wait()
        for _ in range(50):
            with contextlib.suppress(FileNotFoundError):
                try:
                    occupied.rmdir()
                    break
                except OSError:
                    time.sleep(0.05)
        with contextlib.suppress(OSError):
            empty.rmdir()
