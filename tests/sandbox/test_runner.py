"""The sandbox runner on its own: isolation, limits and the timeout kill (no fake network)."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from osptrack.sandbox.baits import make_baits
from osptrack.sandbox.bwrap import HOST_GID, HOST_UID, SandboxSpec, default_etc_files
from osptrack.sandbox.limits import Limits
from osptrack.sandbox.runner import PhaseOutcome, Workspace, run_phase

pytestmark = pytest.mark.sandbox


def plain_strace(log: Path) -> list[str]:
    return ["strace", "-f", "-qq", "-o", str(log), "-u", "nobody", "-e", "trace=execve"]


def run(script: str, limits: Limits, owners: dict[str, int] | None = None) -> PhaseOutcome:
    with Workspace(limits) as ws:
        make_baits().plant(ws.home, HOST_UID, HOST_GID)
        spec = SandboxSpec(
            home=ws.home,
            input_dir=ws.input,
            etc_files=default_etc_files("127.0.0.53"),
            env={"PATH": "/usr/bin:/bin", "HOME": "/root"},
        )
        run_id = f"t{os.getpid()}x{time.monotonic_ns()}"
        # bash, not dash: the daemon test renames its processes with `exec -a`
        outcome = run_phase(
            "install", spec, ws, ["/bin/bash", "-c", script], plain_strace, limits, None, run_id
        )
        if owners is not None:  # host-side owners of what the sandbox wrote into its home
            owners.update({p.name: p.stat().st_uid for p in ws.home.iterdir()})
        return outcome


def test_host_paths_are_invisible_and_root_is_nobody_outside() -> None:
    secret = Path("/root/osptrack-sentinel-secret")
    secret.write_text("host secret")
    owners: dict[str, int] = {}
    try:
        out = run(
            "ls -1 / ; echo ---; cat /root/osptrack-sentinel-secret; id -u; touch /root/written; "
            "python3 -c 'import ctypes; print(\"ptrace\", ctypes.CDLL(None).ptrace(0,0,0,0))'",
            Limits(timeout_s=30),
            owners,
        )
    finally:
        secret.unlink()
    text = out.stdout.decode()
    # ptrace is an escape primitive: seccomp traps it (SIGSYS), so python dies before printing.
    assert out.exit_code == 128 + 31, out.stderr
    top = set(text.split("---")[0].split())
    assert not top & {"work", "opt", "home", "run", "sys", "srv", "mnt", "boot"}
    assert "host secret" not in text
    assert text.split("---")[1].split()[0] == "0"
    assert owners["written"] == HOST_UID  # uid 0 inside is nobody on the host
    assert "ptrace" not in text


def test_timeout_kills_daemons_and_sigterm_ignorers() -> None:
    marker = f"osptrack-daemon-{os.getpid()}"
    script = (
        f"setsid bash -c 'exec -a {marker} sleep 300' & "
        f"bash -c 'trap \"\" TERM; exec -a {marker} sleep 300' & "
        f"(nohup bash -c 'exec -a {marker} sleep 300' >/dev/null 2>&1 &); sleep 1; "
        f"pgrep -fc '^{marker} '; sleep 300"
    )
    t0 = time.monotonic()
    out = run(script, Limits(timeout_s=2))
    took = time.monotonic() - t0
    assert out.timed_out and out.exit_code is None
    assert took < 2 + 10
    time.sleep(0.2)
    alive = [p for p in os.listdir("/proc") if p.isdigit() and marker.encode() in _cmdline(p)]
    assert alive == []
    assert out.stdout.split() == [b"3"], (out.stdout, out.stderr)  # all three daemons were running


def test_output_flood_is_bounded() -> None:
    out = run("head -c 50000000 /dev/zero | tr '\\0' x; echo; echo END", Limits(timeout_s=60))
    assert out.stdout_bytes > 50_000_000
    assert len(out.stdout) == 4096 and out.stdout.endswith(b"END\n")


def test_memory_limit_stops_a_balloon() -> None:
    out = run(
        "python3 -c 'x=[]\nwhile True: x.append(bytearray(50_000_000))'",
        Limits(timeout_s=60, memory_bytes=256 << 20),
    )
    assert not out.timed_out
    assert out.exit_code != 0 and out.oom_killed
    assert out.peak_memory is not None and out.peak_memory <= (256 << 20) + (8 << 20)


def _cmdline(pid: str) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def test_workspace_home_is_a_bounded_private_tmpfs_removed_at_exit() -> None:
    """The home tmpfs is mounted and detached by the syscalls themselves, with the same options
    the `mount` command gave it."""
    limits = Limits(home_bytes=8 << 20)
    with Workspace(limits) as ws:
        mounts = [
            line.split()
            for line in Path("/proc/self/mounts").read_text().splitlines()
            if line.split()[1] == str(ws.home)
        ]
        assert len(mounts) == 1
        source, _, fstype, opts = mounts[0][:4]
        assert (source, fstype) == ("osptrack-home", "tmpfs")
        assert {"nosuid", "nodev", "size=8192k", "mode=700", "uid=65534", "gid=65534"} <= set(opts.split(","))
        root, home = ws.root, ws.home
    assert ws.wait_removed(30)
    assert not os.path.ismount(home) and not root.exists()


def test_workspace_folder_goes_in_the_background_and_at_once_after_a_failure() -> None:
    limits = Limits(home_bytes=8 << 20)
    with Workspace(limits) as ws:
        (ws.logs / "install.strace").write_bytes(b"x" * 100_000)
        home = ws.home
    assert not os.path.ismount(home)  # unmounted before __exit__ returns
    assert ws.wait_removed(30) and not ws.root.exists()
    with pytest.raises(RuntimeError), Workspace(limits) as failed:
        raise RuntimeError("a phase failed")
    assert not failed.root.exists()  # removed before the exception left the with-block


def test_etc_is_written_once_per_run_unless_it_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    import osptrack.sandbox.runner as runner_mod

    writes: list[Path] = []
    base = runner_mod.write_etc
    monkeypatch.setattr(runner_mod, "write_etc", lambda spec, etc: (writes.append(etc), base(spec, etc)))
    limits = Limits()
    with Workspace(limits) as ws:
        specs = [
            SandboxSpec(
                home=ws.home,
                input_dir=ws.input,
                etc_files=default_etc_files(resolver),
                env={"PATH": "/usr/bin:/bin", "HOME": "/root"},
            )
            for resolver in ("127.0.0.53", "127.0.0.53", "10.0.0.53")
        ]
        for i, spec in enumerate(specs):
            run_id = f"t{os.getpid()}x{time.monotonic_ns()}"
            outcome = run_phase(
                "install", spec, ws, ["/bin/cat", "/etc/resolv.conf"], plain_strace, limits, None, run_id
            )
            resolver = "10.0.0.53" if i == 2 else "127.0.0.53"
            assert f"nameserver {resolver}".encode() in outcome.stdout
    assert len(writes) == 2  # the second phase's identical files were not written again


@pytest.mark.skipif(not os.path.islink("/etc/localtime"), reason="the host's /etc/localtime is no symlink")
def test_etc_symlinks_into_usr_stay_symlinks() -> None:
    """/etc/localtime bound as a copy made ICU (node, npm) read all of /usr/share/zoneinfo to
    name the zone; the sandbox gets the host's symlink instead, with the same content."""
    script = "readlink /etc/localtime; sha256sum < /etc/localtime; test -L /etc/localtime && echo link"
    out = run(script, Limits()).stdout.decode().split("\n")
    host = Path("/etc/localtime")
    assert out[0] == os.readlink(host)
    assert out[1].split()[0] == hashlib.sha256(host.read_bytes()).hexdigest()
    assert out[2] == "link"
