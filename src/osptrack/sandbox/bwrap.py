"""The bubblewrap command line: namespaces, a minimal read-only root, seccomp deny-list.

Layout inside the sandbox:
  /usr (+ merged-usr symlinks)   read-only, the system toolchains (Debian's python3, node, ...)
  /etc                            a tmpfs with generated passwd/hosts/resolv.conf plus the few
                                  host files toolchains need (certificates, alternatives), then
                                  remounted read-only
  /home/<user> (SandboxSpec.home_path)  the run's home: a host tmpfs with a size quota, seeded
                                  as a lived-in home with baits (persona.py); it persists across
                                  the phases of one run
  overlay files                   persona answers bound over single files: /sys/class/dmi/id/*,
                                  /proc/cpuinfo without `hypervisor`, systemd-detect-virt
pid 1 is `init` (SandboxSpec.init): osptrack.sandbox.native's static binary (or, where it is not
built, the harness's _sandbox_init.py), which looks like /sbin/init and runs the command.
The environment is bwrap's own (no --setenv), so no value is on any argv.
  /tmp, /var/tmp, /dev/shm        fresh tmpfs per phase, each with the /tmp quota; /dev read-only
  /input                          read-only: the archive, dependency folders, harness scripts
Nothing else of the host is visible: not /work, /root, /opt, /home, /var, /run or /sys.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

SANDBOX_UID = 0  # default inside the user namespace (the persona's is 1000); outside it is `nobody`
HOST_UID = 65534  # strace -u nobody: the sandbox never holds host root's uid
HOST_GID = 65534

# Host /etc entries toolchains need; everything else in /etc stays hidden.
HOST_ETC = (
    "alternatives",
    "ssl",
    "ca-certificates",
    "ca-certificates.conf",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "mime.types",
    "python3",
    "python3.11",
    "os-release",
    "debian_version",
    "gemrc",
    "php",
)

# Syscalls a package never needs and an escape often does. Two actions, because of how seccomp
# and strace interact: strace runs with --seccomp-bpf, and seccomp picks the strongest action of
# all filters (TRAP > ERRNO > TRACE), so a syscall that bwrap's filter fails with EPERM never
# reaches strace and the attempt would go unrecorded.
# - SECCOMP_TRAP: escape primitives no toolchain calls. They raise SIGSYS, which strace logs as
#   `--- SIGSYS {... si_syscall=__NR_ptrace ...}` (events.jsonl: op "signal"): denied *and*
#   recorded, at no tracing cost. The caller dies of SIGSYS unless it handles the signal; the
#   syscall never runs either way, and the filter holds even if strace is gone.
# - SECCOMP_ERRNO: syscalls runtimes probe as a matter of course (libuv tries io_uring, glibc's
#   ntp_gettime calls adjtimex), which must fail softly with EPERM instead of killing node or
#   python. io_uring is denied because its file and socket operations would bypass the tracer.
# Measured alternatives (strace 6.1, kernel 6.18): SECCOMP_RET_TRACE + `strace -e inject=...`
# also injects EPERM into bwrap's own mount/unshare setup (bwrap fails), and RET_TRACE without a
# tampering tracer *runs* the syscall (the kernel re-checks and allows): fail-open, rejected.
# Plain ptrace without --seccomp-bpf records the EPERM too, at about 4x instead of 1.6x cost.
SECCOMP_TRAP = (
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "bpf",
    "mount",
    "umount2",
    "pivot_root",
    "move_mount",
    "open_tree",
    "fsopen",
    "fsmount",
    "fsconfig",
    "fspick",
    "mount_setattr",
    "unshare",
    "setns",
    "keyctl",
    "add_key",
    "request_key",
    "init_module",
    "finit_module",
    "delete_module",
    "kexec_load",
    "kexec_file_load",
    "reboot",
    "swapon",
    "swapoff",
    "acct",
    "iopl",
    "ioperm",
    "open_by_handle_at",
)
SECCOMP_ERRNO = (
    "perf_event_open",
    "userfaultfd",
    "quotactl",
    "syslog",
    "name_to_handle_at",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
)
SECCOMP_DENY = SECCOMP_TRAP + SECCOMP_ERRNO
# Raw and packet sockets would let a package craft its own frames past the fake network. Without
# CAP_NET_RAW they already fail; trapping them records the attempt. Netlink is exempt: glibc's
# getaddrinfo opens a raw AF_NETLINK socket for every lookup.
SECCOMP_TRAP_SOCKETS = ("AF_PACKET", "SOCK_RAW")
# clone3 gets ENOSYS so libc falls back to clone, which strace follows.
SECCOMP_ENOSYS = ("clone3",)


@dataclass(frozen=True)
class SandboxSpec:
    home: Path  # host path mounted at home_path, writable
    input_dir: Path  # host path mounted at /input, read-only
    etc_files: dict[str, str]  # generated /etc files: name -> content
    env: dict[str, str]  # the whole environment, passed as bwrap's own (never on its argv)
    ro_binds: tuple[tuple[str, str], ...] = ()  # extra (host, sandbox) read-only binds
    chdir: str = "/root"
    hostname: str = "build"
    tmp_bytes: int = 1 << 30
    extra_etc: tuple[str, ...] = field(default=())
    home_path: str = "/root"
    uid: int = SANDBOX_UID
    gid: int = SANDBOX_UID
    # sandbox path -> (content, mode): single files bound read-only over what the host has
    overlay: dict[str, tuple[str, int]] = field(default_factory=dict)
    init: str | None = None  # sandbox path of the pid-1 script; None: bwrap's own reaper


# Bump when the filter's construction changes in a way the rule lists below do not show.
SECCOMP_FILTER_VERSION = "1"


def seccomp_cache_key() -> str:
    """Names the compiled filter by what goes into it: rules, socket constants, arch, versions."""
    from osptrack import __version__

    parts = (
        SECCOMP_FILTER_VERSION,
        __version__,
        os.uname().machine,
        SECCOMP_TRAP,
        SECCOMP_ERRNO,
        SECCOMP_ENOSYS,
        (socket.AF_PACKET, socket.AF_NETLINK, socket.SOCK_RAW, errno.EPERM, errno.ENOSYS),
    )
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:24]


def seccomp_cache_dir() -> Path:
    """$OSPTRACK_CACHE/seccomp (default /var/cache/osptrack), or the work root's if that is not writable."""
    cache = Path(os.environ.get("OSPTRACK_CACHE", "/var/cache/osptrack")) / "seccomp"
    try:
        cache.mkdir(parents=True, exist_ok=True, mode=0o755)
        if os.access(cache, os.W_OK | os.X_OK):
            return cache
    except OSError:
        pass
    from osptrack.sandbox.runner import work_root

    fallback = work_root() / "seccomp"
    fallback.mkdir(exist_ok=True, mode=0o755)
    return fallback


def _trusted(path: Path) -> bool:
    """A cached filter counts only if we own it, nobody else may write it, and it holds whole
    BPF instructions (8 bytes each): a weaker filter planted there would weaken every sandbox."""
    try:
        st = path.stat()
    except OSError:
        return False
    return st.st_uid == os.geteuid() and not st.st_mode & 0o022 and st.st_size > 0 and st.st_size % 8 == 0


def compile_seccomp_filter() -> bytes:
    """The deny-list as a BPF program (libseccomp via pyseccomp: imported here, it costs ~20 ms)."""
    import pyseccomp

    flt = pyseccomp.SyscallFilter(defaction=pyseccomp.ALLOW)
    for name in SECCOMP_TRAP:
        flt.add_rule(pyseccomp.TRAP, name)
    flt.add_rule(pyseccomp.TRAP, "socket", pyseccomp.Arg(0, pyseccomp.EQ, socket.AF_PACKET))
    flt.add_rule(
        pyseccomp.TRAP,
        "socket",
        pyseccomp.Arg(0, pyseccomp.NE, socket.AF_NETLINK),
        pyseccomp.Arg(1, pyseccomp.MASKED_EQ, 0xF, socket.SOCK_RAW),
    )
    for name in SECCOMP_ERRNO:
        flt.add_rule(pyseccomp.ERRNO(errno.EPERM), name)
    for name in SECCOMP_ENOSYS:
        flt.add_rule(pyseccomp.ERRNO(errno.ENOSYS), name)
    with tempfile.TemporaryFile() as fh:  # export_bpf wants a real fd; gone when closed
        flt.export_bpf(fh)
        fh.seek(0)
        return fh.read()


def seccomp_filter_file() -> Path:
    """The compiled deny-list, a BPF file bwrap reads via --seccomp: compiled once per machine.

    Cached as <cache dir>/<key>.bpf, written to a temp file in the same folder and renamed into
    place, so concurrent batch workers either find a whole file or each write their own whole
    copy (same bytes) and the last rename wins. Nothing is left in /tmp.
    """
    global _SECCOMP_PATH
    if _SECCOMP_PATH is not None and _trusted(_SECCOMP_PATH):
        return _SECCOMP_PATH
    folder = seccomp_cache_dir()
    path = folder / f"filter-{seccomp_cache_key()}.bpf"
    if not _trusted(path):
        data = compile_seccomp_filter()
        fd, tmp = tempfile.mkstemp(prefix=".filter-", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    _SECCOMP_PATH = path
    return path


_SECCOMP_PATH: Path | None = None


def write_etc(spec: SandboxSpec, etc_dir: Path) -> None:
    etc_dir.mkdir(parents=True, exist_ok=True)
    for name, content in spec.etc_files.items():
        (etc_dir / name).write_text(content)
    overlay = overlay_dir(etc_dir)
    overlay.mkdir(exist_ok=True)
    for inside, (content, mode) in spec.overlay.items():
        path = overlay / _flat(inside)
        path.write_text(content)
        path.chmod(mode)
    _write_usr_local(spec, etc_dir)


def overlay_dir(etc_dir: Path) -> Path:
    return etc_dir.parent / "overlay"


# A fresh Debian's /usr/local: the host's own (its tools, CUDA, docker) is no business of the
# package and tells it whose machine this is.
USR_LOCAL = "/usr/local"
USR_LOCAL_DIRS = ("bin", "etc", "games", "include", "lib", "sbin", "share", "src")


def usr_local_dir(etc_dir: Path) -> Path:
    return etc_dir.parent / "usr-local"


def _write_usr_local(spec: SandboxSpec, etc_dir: Path) -> None:
    """The empty /usr/local, with the mount points the persona's binds need (it is bound read-only,
    so bwrap could not make them inside)."""
    root = usr_local_dir(etc_dir)
    for name in USR_LOCAL_DIRS:
        (root / name).mkdir(parents=True, exist_ok=True)
    (root / "man").unlink(missing_ok=True)
    (root / "man").symlink_to("share/man")
    points = [(inside, Path(host).is_dir()) for host, inside in spec.ro_binds]
    points += [(inside, False) for inside in spec.overlay]
    for inside, is_dir in points:
        if not inside.startswith(USR_LOCAL + "/"):
            continue
        point = root / inside.removeprefix(USR_LOCAL + "/")
        if is_dir:
            point.mkdir(parents=True, exist_ok=True)
        else:
            point.parent.mkdir(parents=True, exist_ok=True)
            point.touch()


def _flat(inside: str) -> str:
    return inside.strip("/").replace("/", "__")


def default_etc_files(resolver: str, hostname: str = "build") -> dict[str, str]:
    return {
        "passwd": "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
        "group": "root:x:0:\nnogroup:x:65534:\n",
        "hosts": f"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n127.0.1.1\t{hostname}\n",
        "hostname": f"{hostname}\n",
        "resolv.conf": f"nameserver {resolver}\noptions timeout:2 attempts:1\n",
        "nsswitch.conf": "passwd: files\ngroup: files\nhosts: files dns\n",
    }


def _usr_symlink(path: str) -> str | None:
    """The link text of a host /etc entry that is a symlink into /usr (which the sandbox has),
    so the sandbox gets the same symlink rather than a bound copy of its target.

    A bind follows the link: /etc/localtime became a regular file, and ICU (node, npm) then
    finds the zone's name by reading every file under /usr/share/zoneinfo and comparing it,
    about 1,400 traced reads per node process. A workstation's /etc/localtime is a symlink."""
    if not os.path.islink(path):
        return None
    target = os.path.realpath(path)
    if not target.startswith("/usr/") or not os.path.isfile(target):
        return None
    return os.readlink(path)


def bwrap_argv(
    spec: SandboxSpec, etc_dir: Path, seccomp_fd: int, command: list[str], init_fd: int | None = None
) -> list[str]:
    """The bwrap invocation. The network namespace is joined by the caller (see runner).

    With `spec.init`, `command` is not on the argv: the init reads it from `init_fd`."""
    argv = [
        "bwrap",
        "--unshare-user",
        "--uid",
        str(spec.uid),
        "--gid",
        str(spec.gid),
        "--disable-userns",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--hostname",
        spec.hostname,
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
        "--ro-bind",
        "/usr",
        "/usr",
        "--ro-bind",
        str(usr_local_dir(etc_dir)),
        USR_LOCAL,
    ]
    for link in ("bin", "sbin", "lib", "lib64", "lib32", "libx32"):
        if Path(f"/{link}").is_symlink():
            argv += ["--symlink", os.readlink(f"/{link}"), f"/{link}"]
        elif Path(f"/{link}").is_dir():
            argv += ["--ro-bind", f"/{link}", f"/{link}"]
    # bwrap's /dev is a tmpfs without a size: /dev/shm gets the /tmp quota, and /dev itself is
    # made read-only once set up (writes there were bounded only by the memory cgroup).
    argv += ["--proc", "/proc", "--dev", "/dev", "--size", str(spec.tmp_bytes), "--tmpfs", "/dev/shm"]
    argv += ["--remount-ro", "/dev", "--tmpfs", "/etc"]
    for name in HOST_ETC + spec.extra_etc:
        host = f"/etc/{name}"
        target = _usr_symlink(host)
        if target is not None:
            argv += ["--symlink", target, host]
        elif os.path.lexists(host):
            argv += ["--ro-bind", host, host]
    for name in sorted(spec.etc_files):
        argv += ["--ro-bind", str(etc_dir / name), f"/etc/{name}"]
    argv += ["--remount-ro", "/etc"]
    argv += ["--size", str(spec.tmp_bytes), "--tmpfs", "/tmp"]
    argv += ["--size", str(spec.tmp_bytes), "--tmpfs", "/var/tmp"]
    argv += ["--bind", str(spec.home), spec.home_path]
    argv += ["--ro-bind", str(spec.input_dir), "/input"]
    for host, inside in spec.ro_binds:
        argv += ["--ro-bind", host, inside]
    overlay = overlay_dir(etc_dir)
    for inside in sorted(spec.overlay):
        argv += ["--ro-bind", str(overlay / _flat(inside)), inside]
    argv += ["--chdir", spec.chdir]
    if spec.init is not None and init_fd is not None:
        argv.append("--as-pid-1")  # the init below is pid 1, not bwrap's reaper (its argv is ours)
    argv += ["--seccomp", str(seccomp_fd), "--"]
    if spec.init is not None and init_fd is not None:
        if spec.init.endswith(".py"):  # the Python init, where the built one is missing
            return [*argv, "/usr/bin/python3", "-I", "-S", spec.init, str(init_fd)]
        return [*argv, spec.init, str(init_fd)]
    return [*argv, *command]
