"""strace's TZ comes from the runner's launch_env, not an `env` exec: the sandbox never sees it."""

from __future__ import annotations

import os
import shutil
import time

import pytest

from osptrack.sandbox.bwrap import SandboxSpec, default_etc_files
from osptrack.sandbox.limits import Limits
from osptrack.sandbox.runner import Workspace, run_phase
from osptrack.trace import strace
from osptrack.trace.tracers.strace import StraceTracer

pytestmark = pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")


def test_the_backend_starts_strace_itself_and_drops_tz_for_the_command(tmp_path) -> None:
    tracer = StraceTracer()
    argv = tracer.command(tmp_path / "log")
    assert argv[0] == strace.strace_binary()  # no `env TZ=UTC` exec in front
    assert tracer.launch_env == {"TZ": "UTC"}
    assert argv[argv.index("-E") + 1] == "TZ"  # strace unsets it for what it runs
    # Standalone callers (benchmarks, tests) still get the pinned TZ from the argv itself.
    assert strace.strace_command(tmp_path / "log")[1:3] == ["TZ=UTC", strace.strace_binary()]


@pytest.mark.sandbox
def test_the_traced_command_gets_exactly_the_sandbox_environment() -> None:
    limits = Limits(timeout_s=60)
    env = {"PATH": "/usr/bin:/bin", "HOME": "/root", "LANG": "en_US.UTF-8", "USER": "priya"}
    tracer = StraceTracer()
    with Workspace(limits) as ws:
        spec = SandboxSpec(
            home=ws.home, input_dir=ws.input, etc_files=default_etc_files("127.0.0.53"), env=env
        )
        # The initial environment block, as execve handed it over (before CPython's coercion).
        script = "import sys; sys.stdout.write(open('/proc/self/environ').read())"
        command = ["/usr/bin/python3", "-S", "-c", script]
        run_id = f"tz{os.getpid()}x{time.monotonic_ns()}"
        out = run_phase(
            "install", spec, ws, command, tracer.command, limits, None, run_id, launch_env=tracer.launch_env
        )
        assert out.exit_code == 0, out.stderr
        seen = dict(item.split("=", 1) for item in out.stdout.decode().split("\0") if item)
        log = out.trace_log.read_text()
    assert seen.pop("PWD") == "/root"  # bwrap's, from its --chdir
    assert seen == env  # no TZ, nothing else added or lost
    assert "execve(" in log and '"TZ=' not in log  # strace traced it, and no exec saw a TZ
