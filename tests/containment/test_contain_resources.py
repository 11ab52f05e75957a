"""Resource abuse: fork bomb, memory balloon, disk filler, CPU spin, sleep past the timeout.

Each phase must end with error_timeout or error_analysis (or completed, when the package itself
gives up cleanly) within timeout + 10 s; the host stays responsive and its disks untouched, and
an analysis running beside the abuser finishes normally.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from containment_helpers import WORK_ROOT, marker, py_wheel, record, run_analysis, shell_wheel

from osptrack.sandbox.limits import Limits

pytestmark = pytest.mark.sandbox

TIMEOUT_S = 5.0
KILL_SLACK_S = 10.0  # the bound: a phase ends within timeout + 10 s
ENDED = ("error_timeout", "error_analysis")


class HostWatch:
    """Samples the host while a sandbox misbehaves: latency of a fresh process, free disk."""

    def __init__(self, disks: list[Path]) -> None:
        self.disks = disks
        self.worst_spawn_s = 0.0
        self.min_free: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> HostWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.is_set():
            t0 = time.monotonic()
            subprocess.run(["/bin/true"], check=False)
            self.worst_spawn_s = max(self.worst_spawn_s, time.monotonic() - t0)
            for disk in self.disks:
                st = os.statvfs(disk)
                free = st.f_bavail * st.f_frsize
                self.min_free[str(disk)] = min(self.min_free.get(str(disk), free), free)
            self._stop.wait(0.2)


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def test_fork_bomb_is_capped_and_a_neighbour_sandbox_finishes(tmp_path: Path) -> None:
    bomb = shell_wheel(tmp_path, "contain-forkbomb", "b() { b & b & wait; }; b")
    neighbour = py_wheel(tmp_path, "contain-neighbour", "import time\ntime.sleep(1)\nVALUE = 1\n")
    before = len([p for p in os.listdir("/proc") if p.isdigit()])
    # The neighbour runs as its own `osptrack analyze` process, as batch workers do.
    side = subprocess.Popen(
        [sys.executable, "-m", "osptrack.cli", "analyze", "pypi", str(neighbour), "--out", str(tmp_path / "nb"),
         "--timeout", "120"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    with HostWatch([]) as watch:
        # A small pids limit so the bomb reaches it within the timeout: under strace a bomb
        # spawns only ~60 processes a second (every clone stops for the tracer).
        res = run_analysis(bomb, tmp_path / "out", timeout_s=TIMEOUT_S, limits=Limits(pids=128))
    _, err = side.communicate(timeout=180)
    assert res.statuses["install"] == "completed"
    assert res.statuses["import"] in ENDED
    overrun = res.overrun_s("import", TIMEOUT_S)
    assert overrun <= KILL_SLACK_S
    # the bomb really reached the pids limit: forks failed, and the trace saw them fail
    forks = [e for e in res.events if e["phase"] == "import" and e["syscall"] in ("clone", "fork", "vfork")]
    assert any(e["errno"] == "EAGAIN" for e in forks)
    pids = {e["pid"] for e in res.events if e["phase"] == "import"}
    assert watch.worst_spawn_s < 3.0, f"host took {watch.worst_spawn_s:.1f} s to start /bin/true"
    assert side.returncode == 0, err
    nb = json.loads((tmp_path / "nb" / "result.json").read_text())
    assert {p: r["Status"] for p, r in nb["Analysis"].items()} == {
        "install": "completed",
        "import": "completed",
    }
    time.sleep(0.5)
    after = len([p for p in os.listdir("/proc") if p.isdigit()])
    assert after < before + 50, "fork bomb processes outlived the run"
    record("fork_bomb", overrun_s=round(overrun, 2), worst_host_spawn_s=round(watch.worst_spawn_s, 3),
           status=res.statuses["import"], traced_pids=len(pids))  # fmt: skip


def test_memory_balloon_is_oom_killed_far_below_host_memory(tmp_path: Path) -> None:
    limit = 256 << 20
    balloon = py_wheel(
        tmp_path, "contain-balloon", "x = []\nwhile True:\n    x.append(bytearray(32 << 20))\n"
    )
    host_avail_before = _mem_available()
    res = run_analysis(balloon, tmp_path / "out", timeout_s=60, limits=Limits(memory_bytes=limit))
    phase = res.phase("import")
    assert res.statuses["import"] == "error_analysis"
    assert phase["oom_killed"] is True and not phase["timed_out"]
    assert phase["peak_memory_bytes"] <= limit + (16 << 20)
    assert phase["wall_s"] < 30
    assert _mem_available() > host_avail_before - (512 << 20)
    record("memory_balloon", wall_s=phase["wall_s"], peak_mib=phase["peak_memory_bytes"] >> 20)


def test_disk_filler_hits_the_quotas_and_host_disks_are_untouched(tmp_path: Path) -> None:
    quota, fsize = 64 << 20, 32 << 20
    code = """
import errno, os
def fill(path, limit_bytes=None):
    chunk, total = b"x" * (1 << 20), 0
    try:
        with open(path, "wb") as fh:
            while True:
                fh.write(chunk)
                fh.flush()
                total += len(chunk)
    except OSError as exc:
        return f"{path} {errno.errorcode[exc.errno]} {total >> 20}MiB"
def fill_many(folder):
    results = []
    for i in range(10000):
        r = fill(f"{folder}/fill-{i}")
        results.append(r)
        if r.endswith(" 0MiB"):  # the folder is full: a fresh file takes nothing more
            break
    return results[-1] + f" files={len(results)}"
print("RESULT", fill("/tmp/one-big-file"))
print("RESULT", fill_many("/var/tmp"))
print("RESULT", fill_many(os.path.expanduser("~")))
print("RESULT", fill_many("/dev/shm"))
print("RESULT", fill("/dev/fill"))
# where those writes went: the filesystem type of each target, from the sandbox's own mount table
mounts = {l.split()[4]: l.split(" - ")[1].split()[0] for l in open("/proc/self/mountinfo")}
print("FSTYPES", " ".join(f"{p}={mounts.get(p)}" for p in (os.path.expanduser("~"), "/tmp", "/var/tmp", "/dev/shm")), flush=True)
"""
    filler = py_wheel(tmp_path, "contain-diskfill", code)
    disks = [Path(p) for p in ("/", "/tmp", "/var/tmp", str(WORK_ROOT), str(tmp_path))]
    before = {str(d): free_bytes(d) for d in disks}
    with HostWatch(disks) as watch:
        res = run_analysis(
            filler, tmp_path / "out", timeout_s=60,
            limits=Limits(home_bytes=quota, tmp_bytes=quota, file_size_bytes=fsize),
        )  # fmt: skip
    assert res.statuses["import"] in ("completed", *ENDED)
    assert res.phase("import")["wall_s"] < 30
    lines = [
        line.split(" ", 1)[1] for line in res.stdout("import").splitlines() if line.startswith("RESULT ")
    ]
    assert len(lines) == 5, res.stdout("import")
    big, var_tmp, home, shm, dev = lines
    assert "EFBIG" in big and int(big.split()[2].removesuffix("MiB")) <= fsize >> 20
    assert "ENOSPC" in var_tmp and "ENOSPC" in home and "ENOSPC" in shm
    assert "EROFS" in dev  # /dev itself is read-only
    # None of the ~220 MiB may land on a host disk: every writable place is a tmpfs (RAM, and
    # charged to the run's memory cgroup). Host free space is sampled too, but other work on a
    # shared machine moves it by hundreds of MB, so it is reported, not asserted.
    fstypes = next(line for line in res.stdout("import").splitlines() if line.startswith("FSTYPES "))
    home = res.run["persona"]["home"]
    assert fstypes.split()[1:] == [f"{home}=tmpfs", "/tmp=tmpfs", "/var/tmp=tmpfs", "/dev/shm=tmpfs"], fstypes
    drop = {disk: (free - watch.min_free[disk]) >> 20 for disk, free in before.items()}
    record("disk_filler", wall_s=res.phase("import")["wall_s"], results=lines, host_free_drop_mib=drop)


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("cpu_spin", "while True:\n    pass\n"),
        ("sleep_past_timeout", "import time\ntime.sleep(600)\n"),
    ],
)
def test_spin_and_sleep_end_at_the_timeout(tmp_path: Path, case: str, code: str) -> None:
    tag = marker()
    wheel = py_wheel(
        tmp_path, f"contain-{case.replace('_', '-')}", f"import sys\nsys.argv[0] = {tag!r}\n{code}"
    )
    res = run_analysis(wheel, tmp_path / "out", timeout_s=TIMEOUT_S)
    assert res.statuses["import"] == "error_timeout"
    phase = res.phase("import")
    assert phase["timed_out"] is True and phase["exit_code"] is None
    overrun = res.overrun_s("import", TIMEOUT_S)
    assert 0 <= overrun <= KILL_SLACK_S
    record(case, overrun_s=round(overrun, 2))


def _mem_available() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0
