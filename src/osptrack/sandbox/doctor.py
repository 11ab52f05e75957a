"""`osptrack doctor`'s sandbox checks: each one tries the thing the sandbox needs, not a proxy for it.

A binary is looked up on PATH; namespaces are created with util-linux's `unshare`; a cgroup is
made and removed exactly as a run makes it; the seccomp deny-list is compiled and the kernel
asked whether it filters. Each check takes milliseconds and leaves nothing behind.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Check:
    name: str
    ready: bool
    detail: str  # what was found, when ready
    fix: str  # what to do, when missing
    required: bool = True  # False: without it runs go on, with less fidelity (shown as degraded)


def _binary(name: str, binary: str, package: str, version_args: tuple[str, ...]) -> Check:
    path = shutil.which(binary)
    if path is None:
        return Check(name, False, "", f"apt-get install -y {package}")
    try:
        out = subprocess.run([path, *version_args], capture_output=True, text=True, timeout=10)
        first = (out.stdout or out.stderr).strip().splitlines()
        version = first[0] if first else ""
    except (OSError, subprocess.TimeoutExpired):
        version = ""
    return Check(name, True, f"{path} {version}".strip(), "")


def _unshare(name: str, flag: str, fix: str) -> Check:
    unshare = shutil.which("unshare")
    if unshare is None:
        return Check(name, False, "", "apt-get install -y util-linux (for the check)")
    try:
        proc = subprocess.run([unshare, flag, "true"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Check(name, False, "", f"{exc}; {fix}")
    if proc.returncode == 0:
        return Check(name, True, f"unshare {flag} works", "")
    reason = " ".join(proc.stderr.split())[:120]
    return Check(name, False, "", f"{reason}; {fix}")


def _root() -> Check:
    if os.geteuid() == 0:
        return Check("root", True, "running as root", "")
    return Check(
        "root", False, "", "run osptrack as root: it creates network namespaces, cgroups and a tmpfs home"
    )


def _cgroups() -> Check:
    from osptrack.sandbox.limits import CGROUP_ROOT, Limits, RunCgroup

    name = "cgroups"
    fix = (
        "mount cgroup v2 at /sys/fs/cgroup and delegate its controllers "
        "(echo +memory +pids > /sys/fs/cgroup/cgroup.subtree_control), "
        "or mount the v1 memory, pids and freezer hierarchies"
    )
    try:
        with RunCgroup(f"osptrack-doctor-{uuid.uuid4().hex[:8]}", Limits()) as cgroup:
            version = cgroup.version
            dirs = dict(cgroup.dirs)
            if version == 2:
                unified = dirs["unified"]
                missing = [f for f in ("memory.max", "pids.max") if not (unified / f).exists()]
            else:
                missing = []
    except OSError as exc:
        return Check(name, False, "", f"cannot make a cgroup under {CGROUP_ROOT} ({exc.strerror}); {fix}")
    if version == 0:
        return Check(name, False, "", f"no cgroup v1 or v2 hierarchy under {CGROUP_ROOT}; {fix}")
    if missing:
        return Check(name, False, "", f"cgroup v2 without {', '.join(missing)} (not delegated); {fix}")
    if version == 2:
        return Check(name, True, "cgroup v2, memory and pids delegated", "")
    return Check(name, True, "cgroup v1: memory, pids, freezer", "")


def _seccomp() -> Check:
    name = "seccomp"
    fix = "apt-get install -y libseccomp2; the kernel needs CONFIG_SECCOMP_FILTER"
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        status = ""
    if "Seccomp:" not in status:
        return Check(name, False, "", f"the kernel does not report seccomp; {fix}")
    try:
        from osptrack.sandbox.bwrap import SECCOMP_DENY, seccomp_filter_file

        compiled = seccomp_filter_file()  # cached for the runs (keyed by its rules and arch)
        size = compiled.stat().st_size
    except (ImportError, OSError, RuntimeError) as exc:
        return Check(name, False, "", f"cannot compile the deny-list ({exc}); {fix}")
    return Check(
        name, True, f"deny-list of {len(SECCOMP_DENY)} syscalls compiled ({size} bytes BPF, {compiled})", ""
    )


def _tracer() -> Check:
    """Which tracer `--tracer auto` will use, and why (eBPF where it loads, strace otherwise)."""
    from osptrack.trace.tracers import choose
    from osptrack.trace.tracers.ebpf import refresh_check

    refresh_check()  # live: runs keep the loader's answer per build and boot, doctor asks again
    choice = choose("auto")
    ok, why = choice.tracer.available()
    if not ok:
        return Check("tracer", False, "", f"{why}; apt-get install -y strace, or bash scripts/setup.sh")
    return Check("tracer", True, f"{choice.tracer.name} ({choice.reason})", "")


def _wake_latency() -> Check:
    """Whether runs can ask idle CPUs to poll (optional: only how fast a traced run goes depends on it)."""
    from osptrack.sandbox import wakeup

    fd, state = wakeup.request()
    if fd is None:
        return Check("low wake latency", True, f"{state}: runs are slower where idle CPUs halt (VMs)", "")
    os.close(fd)
    return Check(
        "low wake latency", True, f"runs hold {wakeup.DEVICE} at 0 (idle CPUs poll while one runs)", ""
    )


def _persona_locales() -> Check:
    """Whether each locale the persona's environment names exists inside the sandbox (built once
    per host into the cache, as runs build it)."""
    from osptrack.sandbox import locales
    from osptrack.sandbox.persona import choose_persona

    name = "persona locales"
    state = locales.view(locales.named(choose_persona().env())).locales
    missing = {n: why for n, why in state.items() if why.startswith("missing")}
    if missing:
        whys = "; ".join(f"{n} {why}" for n, why in missing.items())
        fix = f"{whys}; apt-get install -y {locales.SOURCES_PACKAGE} (glibc's locale sources)"
        return Check(name, False, "", fix, required=False)
    return Check(name, True, ", ".join(f"{n} ({how})" for n, how in state.items()) or "none named", "")


CHECKS: tuple[Callable[[], Check], ...] = (
    lambda: _binary("bubblewrap", "bwrap", "bubblewrap", ("--version",)),
    lambda: _binary("strace", "strace", "strace", ("-V",)),
    lambda: _binary("nft", "nft", "nftables", ("--version",)),
    lambda: _binary("ip", "ip", "iproute2", ("-V",)),
    _root,
    lambda: _unshare(
        "user namespaces",
        "--user",
        "sysctl -w user.max_user_namespaces=15000 (and kernel.unprivileged_userns_clone=1 on Debian)",
    ),
    lambda: _unshare(
        "network namespaces",
        "--net",
        "run as root on a kernel with CONFIG_NET_NS (in a container: --privileged or CAP_SYS_ADMIN)",
    ),
    _cgroups,
    _seccomp,
    _tracer,
    _wake_latency,
    _persona_locales,
)


def sandbox_checks() -> list[Check]:
    return [check() for check in CHECKS]
