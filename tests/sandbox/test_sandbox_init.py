"""The sandbox's pid 1: the built C init and the Python one behave alike (command from an fd,
PATH search, exit status, disguise), outside a sandbox; the run uses the built one."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from osptrack.run import HARNESS_DIR
from osptrack.sandbox import native
from osptrack.sandbox.bwrap import SandboxSpec, bwrap_argv

PY_INIT = ["/usr/bin/python3", "-I", "-S", str(HARNESS_DIR / "_sandbox_init.py")]


def _c_init() -> list[str]:
    binary = native.init_path()
    if binary is None:
        pytest.fail("the sandbox init is not built: run scripts/setup.sh")
    return [str(binary)]


@pytest.fixture(params=["c", "python"])
def init(request: pytest.FixtureRequest) -> list[str]:
    return _c_init() if request.param == "c" else PY_INIT


def _run(
    init: list[str], tmp_path: Path, command: list[str], **kw: object
) -> subprocess.CompletedProcess[bytes]:
    fd_file = tmp_path / "cmd"
    fd_file.write_bytes(b"".join(os.fsencode(a) + b"\0" for a in command))
    with fd_file.open("rb") as fh:
        return subprocess.run(
            [*kw.pop("prefix", []), *init, str(fh.fileno())],  # type: ignore[misc]
            pass_fds=(fh.fileno(),), capture_output=True, timeout=30, **kw,  # type: ignore[arg-type]
        )  # fmt: skip


def test_runs_the_command_argument_for_argument_with_its_exit_status(init: list[str], tmp_path: Path) -> None:
    proc = _run(init, tmp_path, ["/usr/bin/printf", "%s|", "a b", "", "é", "--x=1"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode() == "a b||é|--x=1|"
    assert _run(init, tmp_path, ["/bin/sh", "-c", "exit 7"]).returncode == 7
    assert _run(init, tmp_path, ["/bin/sh", "-c", "kill -TERM $$"]).returncode == 128 + 15


def test_searches_path_like_os_execvpe_and_reports_a_missing_command(init: list[str], tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    tool = bindir / "osptrack-tool"
    tool.write_text('#!/bin/sh\necho found "$@"\n')
    tool.chmod(0o755)
    env = {"PATH": f"{tmp_path / 'missing'}:{bindir}:/usr/bin:/bin"}
    proc = _run(init, tmp_path, ["osptrack-tool", "x"], env=env)
    assert (proc.returncode, proc.stdout) == (0, b"found x\n"), proc.stderr
    proc = _run(init, tmp_path, ["no-such-tool-here"], env=env)
    assert proc.returncode == 127
    assert proc.stderr == b"no-such-tool-here: No such file or directory\n"
    # the command gets the init's environment whole
    proc = _run(init, tmp_path, ["/bin/sh", "-c", "echo $OSPTRACK_X"], env={**env, "OSPTRACK_X": "a=b c"})
    assert proc.stdout == b"a=b c\n"


@pytest.mark.skipif(os.geteuid() != 0, reason="runs the init as nobody, which needs root")
def test_disguises_itself_before_the_command_runs(init: list[str], tmp_path: Path) -> None:
    """argv reads /sbin/init, comm systemd, environ zeroed, non-dumpable (its /proc entries
    turn root's, so the command, running as the same user, cannot read them)."""
    tmp_path.chmod(0o755)
    script = (
        "import json, os; p = os.getppid(); r = lambda n: open(f'/proc/{p}/{n}', 'rb').read()\n"
        "print(json.dumps({'cmdline': r('cmdline').decode('latin-1'), 'comm': r('comm').decode(),"
        " 'owner': os.stat(f'/proc/{p}/environ').st_uid}))"
    )
    proc = _run(
        init,
        tmp_path,
        ["/usr/bin/python3", "-I", "-c", script],
        env={"PATH": "/usr/bin:/bin", "OSPTRACK_SECRET": "s3cr3t"},
        prefix=["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"],
    )
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout)
    assert seen["cmdline"].split("\0")[0] == "/sbin/init" and "_sandbox_init" not in seen["cmdline"]
    assert seen["comm"] == "systemd\n"
    assert seen["owner"] == 0  # not dumpable: /proc/1/environ and friends are closed to the user


def test_the_command_gets_default_signal_dispositions_from_the_built_init(tmp_path: Path) -> None:
    """CPython ignores SIGPIPE (and SIGXFSZ) and its os.execvpe kept them ignored for the
    command; a shell on a workstation, and the bare benchmark's subprocess, have the defaults."""
    proc = _run(_c_init(), tmp_path, ["/bin/sh", "-c", "grep SigIgn /proc/self/status"])
    ignored = int(proc.stdout.split()[1], 16)
    assert not ignored & (1 << (13 - 1)) and not ignored & (1 << (25 - 1))  # SIGPIPE, SIGXFSZ


def test_bwrap_runs_the_built_init_directly_and_the_python_one_with_python(tmp_path: Path) -> None:
    spec = SandboxSpec(home=tmp_path, input_dir=tmp_path, etc_files={}, env={}, init=native.BINARY_INIT)
    argv = bwrap_argv(spec, tmp_path / "etc", 3, ["true"], 4)
    assert argv[-3:] == ["--", native.BINARY_INIT, "4"]
    spec = SandboxSpec(home=tmp_path, input_dir=tmp_path, etc_files={}, env={}, init=native.PYTHON_INIT)
    argv = bwrap_argv(spec, tmp_path / "etc", 3, ["true"], 4)
    assert argv[-6:] == ["--", "/usr/bin/python3", "-I", "-S", native.PYTHON_INIT, "4"]


def test_binary_path_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OSPTRACK_INIT_BINARY", "")
    assert native.init_path() is None
    monkeypatch.setenv("OSPTRACK_INIT_BINARY", "/nonexistent/osptrack-init")
    assert native.init_path() is None


LAUNCH_PROBE = (
    "import os, resource; print(os.getppid() > 0, resource.getrlimit(resource.RLIMIT_FSIZE)[0],"
    " resource.getrlimit(resource.RLIMIT_CORE)[1], os.readlink('/proc/self/ns/net'),"
    " open('/proc/self/cgroup').read().strip())"
)


def _launcher() -> str:
    binary = native.launch_path()
    if binary is None:
        pytest.fail("the phase launcher is not built: run scripts/setup.sh")
    return str(binary)


def test_launcher_sets_limits_and_execs_the_tracer_with_its_arguments() -> None:
    proc = subprocess.run(
        [_launcher(), str(os.getpid()), "-1", "12345", "-", "--", "/usr/bin/python3", "-I", "-c", LAUNCH_PROBE],
        capture_output=True, timeout=30, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    fields = proc.stdout.split()
    assert fields[:3] == ["True", "12345", "0"]
    assert fields[3] == os.readlink("/proc/self/ns/net")  # -1: stays in ours


def test_launcher_refuses_to_run_anything_when_a_step_fails(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    cmd = ["/bin/sh", "-c", f"touch {marker}"]
    bad_fd = subprocess.run(
        [_launcher(), str(os.getpid()), "97", "1000", "-", "--", *cmd], capture_output=True, timeout=30
    )
    assert bad_fd.returncode == 125 and b"setns" in bad_fd.stderr
    bad_parent = subprocess.run(
        [_launcher(), "1", "-1", "1000", "-", "--", *cmd], capture_output=True, timeout=30
    )
    assert bad_parent.returncode == 1
    bad_cgroup = subprocess.run(
        [_launcher(), str(os.getpid()), "-1", "1000", "x", "--", *cmd], capture_output=True, timeout=30
    )
    assert bad_cgroup.returncode == 125
    assert not marker.exists()
    missing = subprocess.run(
        [_launcher(), str(os.getpid()), "-1", "1000", "-", "--", "no-such-tracer-here"], capture_output=True
    )
    assert missing.returncode == 127 and b"no-such-tracer-here: No such file or directory" in missing.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="makes a network namespace and a cgroup, which needs root")
def test_launcher_joins_the_namespace_and_cgroup_it_is_given(tmp_path: Path) -> None:
    from osptrack.sandbox.limits import Limits, RunCgroup

    ns_pid = subprocess.Popen(["unshare", "--net", "sleep", "30"])
    try:
        ns_path = f"/proc/{ns_pid.pid}/ns/net"
        for _ in range(100):
            if os.readlink(ns_path) != os.readlink("/proc/self/ns/net"):
                break
            time.sleep(0.01)
        fd = os.open(ns_path, os.O_RDONLY)
        with RunCgroup(f"osptrack-test-launch-{os.getpid()}", Limits()) as cg:
            cg_fds = cg.attach_fds()
            try:
                proc = subprocess.run(
                    [_launcher(), str(os.getpid()), str(fd), "4096", ",".join(map(str, cg_fds)) or "-", "--",
                     "/usr/bin/python3", "-I", "-c", LAUNCH_PROBE],
                    capture_output=True, timeout=30, text=True, pass_fds=(fd, *cg_fds),
                )  # fmt: skip
            finally:
                cg.close_fds()
                os.close(fd)
            assert proc.returncode == 0, proc.stderr
            fields = proc.stdout.split()
            assert fields[3] == os.readlink(ns_path)
            if cg_fds:
                assert f"osptrack-test-launch-{os.getpid()}" in proc.stdout  # every controller's line
    finally:
        ns_pid.kill()
        ns_pid.wait()


@pytest.mark.sandbox
@pytest.mark.parametrize("built", [True, False])
def test_a_phase_is_spawned_by_the_launcher_or_else_a_preexec_fn(
    built: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from osptrack.sandbox import runner
    from osptrack.sandbox.bwrap import default_etc_files
    from osptrack.sandbox.limits import Limits

    if not built:
        monkeypatch.setenv("OSPTRACK_LAUNCH_BINARY", "")
    launcher = _launcher() if built else None
    seen: list[tuple[str, object]] = []
    real = subprocess.Popen

    def spy(args: list[str], *a: object, **k: object) -> subprocess.Popen[bytes]:
        seen.append((args[0], k.get("preexec_fn")))
        return real(args, *a, **k)  # type: ignore[call-overload, no-any-return]

    monkeypatch.setattr(runner.subprocess, "Popen", spy)
    limits = Limits(timeout_s=30, file_size_bytes=1 << 20)
    with runner.Workspace(limits) as ws:
        spec = SandboxSpec(
            home=ws.home,
            input_dir=ws.input,
            etc_files=default_etc_files("127.0.0.53"),
            env={"PATH": "/usr/bin:/bin", "HOME": "/root"},
        )
        prefix = ["strace", "-f", "-qq", "-o", "/dev/null", "-u", "nobody", "-e", "trace=execve"]
        script = "ulimit -f; ulimit -c; head -c 2000000 /dev/zero > /tmp/big; echo $?"
        outcome = runner.run_phase(
            "install", spec, ws, ["/bin/bash", "-c", script], lambda log: prefix, limits, None,
            f"t{os.getpid()}x{time.monotonic_ns()}",
        )  # fmt: skip
    assert seen[0][0] == (launcher or "strace")
    assert (seen[0][1] is None) == built
    # the same limits either way: 1 MiB in bash's 1024-byte blocks, no core, the write cut at the limit
    assert outcome.stdout.decode().split()[:2] == ["1024", "0"], outcome.stderr
    assert outcome.stdout.decode().split()[2] != "0"


def test_the_built_init_hands_on_the_environment_the_python_one_does(tmp_path: Path) -> None:
    """CPython's locale coercion (PEP 538) adds LC_CTYPE=C.UTF-8 when the locale LANG names does
    not load and LC_ALL is unset; the Python init handed it on, and so does the built one."""
    for env in (
        {"PATH": "/usr/bin:/bin", "LANG": "xx_XX.UTF-8", "OSPTRACK_X": "1"},
        {"PATH": "/usr/bin:/bin", "LANG": "xx_XX.UTF-8", "LC_ALL": "C.UTF-8"},
        {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
    ):
        seen = [
            _run(init, tmp_path, ["/usr/bin/env"], env=env).stdout.decode() for init in (_c_init(), PY_INIT)
        ]
        assert seen[0] == seen[1], env
    assert seen[0].splitlines()[-1] == "LANG=C.UTF-8"  # a locale that loads: nothing added
    coerced = _run(_c_init(), tmp_path, ["/usr/bin/env"], env={"PATH": "/usr/bin", "LANG": "xx_XX.UTF-8"})
    assert coerced.stdout.decode().splitlines()[-1] == "LC_CTYPE=C.UTF-8"
