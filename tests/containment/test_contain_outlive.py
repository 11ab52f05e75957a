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


def test_daemons_die_with_the_run_and_never_write_later(tmp_path: Path) -> None:
    tag = marker()
    late = f"/tmp/{tag}-late /var/tmp/{tag}-late /root/{tag}-late {tmp_path}/{tag}-late"
    script = (
        f"( setsid sh -c 'exec -a {tag}-daemon sleep 120' & ) ; "
        f"sh -c 'trap \"\" TERM HUP INT; exec -a {tag}-noterm sleep 120' & "
        f"( nohup sh -c 'sleep {LATE_S}; for f in {late}; do echo late > $f; done; exec -a {tag}-nohup sleep 120' "
        ">/dev/null 2>&1 & ) ; echo started"
    )
    wheel = shell_wheel(tmp_path, "contain-daemons", script)
    t0 = time.monotonic()
    res = run_analysis(wheel, tmp_path / "out", timeout_s=TIMEOUT_S)
    # The import itself returns at once, but strace (and so the phase) lasts while any
    # traced process lives: the daemons keep the phase open until the timeout kill.
    assert res.statuses["import"] in ("error_timeout", "completed")
    overrun = res.overrun_s("import", TIMEOUT_S)
    assert overrun <= 10
    assert processes_with(tag) == []
    argv = [" ".join(e.get("argv") or []) for e in res.events if e["kind"] == "process" and e["op"] == "exec"]
    assert any("setsid" in a for a in argv) and any("nohup" in a for a in argv)  # they did start
    # Wait out the nohup child's schedule, then look for its files everywhere it aimed.
    time.sleep(max(0.0, LATE_S + 1.5 - (time.monotonic() - t0)))
    assert processes_with(tag) == []
    roots = [Path("/tmp"), Path("/var/tmp"), Path("/root"), tmp_path, WORK_ROOT, REPO]
    assert files_named(tag, roots, max_depth=2) == []
    record("outlive_daemons", overrun_s=round(overrun, 2), status=res.statuses["import"])
