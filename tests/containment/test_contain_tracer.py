"""Confusing the tracer: renaming, output floods, fake strace lines, thousands of short processes.

One package does all four (one analysis keeps the suite fast); each test checks one claim:
tracing stays correct and the result stays bounded, with the truncation marked.
"""

from __future__ import annotations

import base64
import os
import time
from collections import Counter
from pathlib import Path

import pytest
from containment_helpers import Analysis, marker, py_wheel, record, run_analysis

from osptrack.sandbox.bwrap import SandboxSpec, default_etc_files
from osptrack.sandbox.limits import Limits
from osptrack.sandbox.runner import Workspace, run_phase
from osptrack.trace.strace import strace_command

pytestmark = pytest.mark.sandbox

FLOOD_BYTES = 1 << 30  # per stream: 2 GiB in all
FORKS = 2000
FAKE_EXE = "/bin/osptrack-fake-evil"
# strace-looking text a package may print or put in file names, hoping to forge events
FAKE_LINE = f'4242 1700000000.000001 execve("{FAKE_EXE}", ["evil"], []) = 0'
# a tight loop of failing opens: each one is a traced syscall and a log line
FLOOD_CODE = "import os\nwhile True:\n    try:\n        os.open('/nonexistent/' + 'x' * 200, os.O_RDONLY)\n    except OSError:\n        pass\n"
WEIRD_NAMES = [
    f"x\n{FAKE_LINE}\n",
    'quote" = 0\n4243 1700000000.2 openat(AT_FDCWD, "/etc/shadow", O_RDONLY) = 3</etc/shadow>',
    "angle</etc/shadow>",
    "unfinished <unfinished ...>",
]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Analysis, str]:
    tmp = tmp_path_factory.mktemp("tracer")
    tag = marker()
    code = f"""
import ctypes, os, subprocess, sys
# 1. renaming: the kernel's comm and argv[0] change, the traced image does not
ctypes.CDLL(None).prctl(15, b"kworker/0:1", 0, 0, 0)
open(os.path.expanduser("~/{tag}-after-rename"), "w").close()
subprocess.run(["/bin/bash", "-c", "exec -a '[kthreadd]' sleep 0"])
# 2. floods: a GiB on each stream, then a last line that must survive as the tail
subprocess.run(["/bin/sh", "-c", "head -c {FLOOD_BYTES} /dev/zero; head -c {FLOOD_BYTES} /dev/zero >&2"])
# 3. fake strace lines: printed, and smuggled into file names
print({FAKE_LINE!r}, flush=True)
print({FAKE_LINE!r}, file=sys.stderr, flush=True)
for i, name in enumerate({WEIRD_NAMES!r}):
    open(os.path.expanduser("~/{tag}-") + str(i) + name.replace("/", "_"), "w").close()
# 4. thousands of short processes
subprocess.run(["/bin/sh", "-c", "i=0; while [ $i -lt {FORKS} ]; do /bin/true; i=$((i+1)); done"])
print("TAIL-{tag}", flush=True)
"""
    res = run_analysis(py_wheel(tmp, "contain-tracer", code), tmp / "out", timeout_s=120)
    return res, tag


def test_renamed_processes_are_traced_by_their_real_image(run: tuple[Analysis, str]) -> None:
    res, tag = run
    after = [
        e for e in res.events if e["kind"] == "file" and (e.get("path") or "").endswith(f"{tag}-after-rename")
    ]
    assert after and "python3" in (after[0]["exe"] or "")
    renamed = [
        e
        for e in res.events
        if e["kind"] == "process" and e["op"] == "exec" and e.get("argv") == ["[kthreadd]", "0"]
    ]
    assert renamed and any((e.get("path") or "").endswith("/sleep") and e["errno"] is None for e in renamed)


def test_floods_keep_the_tail_and_mark_the_truncation(run: tuple[Analysis, str]) -> None:
    res, tag = run
    phase = res.phase("import")
    assert phase["stdout_bytes"] > FLOOD_BYTES and phase["stderr_bytes"] > FLOOD_BYTES
    stdout = base64.b64decode(res.result["Analysis"]["import"]["Stdout"])
    assert len(stdout) == 4096 and f"TAIL-{tag}\n".encode() in stdout
    # bounded: the whole run folder stays small next to the 2 GiB the package wrote
    size = sum(p.stat().st_size for p in res.out.iterdir())
    assert size < 64 << 20
    record("tracer_flood", written_bytes=phase["stdout_bytes"] + phase["stderr_bytes"], run_folder_bytes=size)


def test_fake_strace_lines_forge_no_events(run: tuple[Analysis, str]) -> None:
    res, tag = run
    # a forged event would carry the fake path or the fake lines' 2023 timestamps (pids can be real)
    assert not any(e.get("path") == FAKE_EXE or e["t"] < 1_700_000_001 for e in res.events)
    assert not any(e.get("path") == "/etc/shadow" for e in res.events if e["phase"] == "import")
    created = {e["path"] for e in res.events if e["kind"] == "file" and f"{tag}-" in (e.get("path") or "")}
    for i, name in enumerate(WEIRD_NAMES):
        assert f"{res.run['persona']['home']}/{tag}-{i}{name.replace('/', '_')}" in created, name
    assert res.run["trace"]["valid"] is True


def test_thousands_of_short_processes_are_all_traced(run: tuple[Analysis, str]) -> None:
    res, _ = run
    execs = Counter(
        e.get("path")
        for e in res.events
        if e["kind"] == "process" and e["op"] == "exec" and e["errno"] is None
    )
    assert execs["/bin/true"] + execs["/usr/bin/true"] == FORKS
    assert res.run["phases"]["import"]["trace_dropped_lines"] == 0
    record("tracer_forks", forks=FORKS, traced=execs["/bin/true"] + execs["/usr/bin/true"])


def test_a_syscall_flood_is_cut_at_the_trace_log_cap(tmp_path: Path) -> None:
    """~10k traced calls/s would grow the host-side log (and events.jsonl) by GBs per phase."""
    cap = 8 << 20
    res = run_analysis(py_wheel(tmp_path, "contain-sysflood", FLOOD_CODE), tmp_path / "out", timeout_s=60,
                       limits=Limits(trace_log_bytes=cap))  # fmt: skip
    phase = res.phase("import")
    assert res.statuses["import"] == "error_analysis" and not phase["timed_out"]
    assert phase["wall_s"] < 15
    size = (res.out / "events.jsonl").stat().st_size
    # eBPF's log is denser than strace's (probes of plain paths are dropped in the kernel, so more
    # of its bytes become events): bounded by the cap, not by a fixed JSON-per-log-byte ratio.
    assert size < 8 * cap
    record("syscall_flood", wall_s=phase["wall_s"], events=phase["events"], events_jsonl_bytes=size)


def test_runner_marks_the_capped_trace(tmp_path: Path) -> None:
    """The runner's outcome says why the phase ended (run.py can copy it into run.json)."""
    limits = Limits(timeout_s=60, trace_log_bytes=1 << 20)
    with Workspace(limits) as ws:
        spec = SandboxSpec(home=ws.home, input_dir=ws.input, etc_files=default_etc_files("127.0.0.53"),
                           env={"PATH": "/usr/bin:/bin", "HOME": "/root"})  # fmt: skip
        out = run_phase("import", spec, ws, ["/usr/bin/python3", "-c", FLOOD_CODE], _as_nobody, limits, None,
                        f"t{os.getpid()}x{time.monotonic_ns()}")  # fmt: skip
    assert out.trace_capped and not out.timed_out
    assert out.wall_s < 15


def _as_nobody(log: Path) -> list[str]:
    """strace as run.py starts it: bwrap runs as host `nobody`."""
    return [*strace_command(log)[:-1], "-u", "nobody", "--"]
