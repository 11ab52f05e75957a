"""Outliving the phase: a double-forked setsid daemon, a SIGTERM ignorer, a late-writing nohup child.

After the run no process of the sandbox is alive, and what it scheduled never writes anywhere on
the host, not even after the time it was scheduled for.
"""

from __future__ import annotations

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
