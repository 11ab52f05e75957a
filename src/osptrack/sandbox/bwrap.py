"""The bubblewrap command line: namespaces, a minimal read-only root, seccomp deny-list.

Layout inside the sandbox:
  /usr (+ merged-usr symlinks)   read-only, the system toolchains (Debian's python3, node, ...)
  /etc                            read-only: the run's own folder (generated passwd/hosts/
                                  resolv.conf, copies of the few host files toolchains need,
                                  the host's symlinks into /usr), with the host folders it needs
                                  (certificates, alternatives) bound in it
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
import functools
import hashlib
import os
import shutil
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
    "locale.alias",  # gettext's and localedef's aliases; /usr/share/locale/locale.alias links here
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
    """The run's /etc, bound read-only as one folder: the generated files, copies of the host's
    files and its symlinks into /usr (HOST_ETC), and mount points for the host folders bwrap
    binds in it (`etc_binds`). One bind instead of a tmpfs, a remount and a bind per entry: each
    bind is a realpath of its source and target, a mount and a read of /proc/self/mountinfo in
    bwrap's traced set-up (docs/performance.md, "bwrap's set-up")."""
    etc_dir.mkdir(parents=True, exist_ok=True)
    # As bwrap's tmpfs was: the sandbox's user's, 0755 (read-only all the same).
    os.chown(etc_dir, HOST_UID, HOST_GID)
    etc_dir.chmod(0o755)
    for name in HOST_ETC + spec.extra_etc:
        if name not in spec.etc_files:
            _write_host_etc(name, etc_dir / name)
    for name, content in spec.etc_files.items():
        (etc_dir / name).write_text(content)
    _make_mount_points(spec, etc_dir, "/etc", etc_binds(etc_dir, spec))
    overlay = overlay_dir(etc_dir)
    overlay.mkdir(exist_ok=True)
    for inside, (content, mode) in spec.overlay.items():
        path = overlay / _flat(inside)
        path.write_text(content)
        path.chmod(mode)
    _write_usr_local(spec, etc_dir)


def _write_host_etc(name: str, path: Path) -> None:
    """Host /etc entry `name` in the run's /etc as the per-entry binds showed it: a symlink into
    /usr stays a symlink (the sandbox's user's, as bwrap's --symlink made it), a folder becomes a
    mount point for its bind, a file a copy (mode, owner and mtime kept); one the host lacks is
    absent."""
    host = f"/etc/{name}"
    if path.is_symlink() or path.is_file():
        path.unlink()  # from an earlier write; a folder is a mount point
    target = _usr_symlink(host)
    if target is not None:
        path.symlink_to(target)
        os.lchown(path, HOST_UID, HOST_GID)
    elif os.path.isdir(host):
        path.mkdir(exist_ok=True)
    elif os.path.exists(host):
        shutil.copy2(host, path)
        st = os.stat(host)
        os.chown(path, st.st_uid, st.st_gid)


def etc_binds(etc_dir: Path, spec: SandboxSpec) -> list[str]:
    """The host /etc folders bound into the run's /etc: those write_etc made mount points for."""
    return [
        f"/etc/{name}"
        for name in HOST_ETC + spec.extra_etc
        if name not in spec.etc_files and (etc_dir / name).is_dir() and not (etc_dir / name).is_symlink()
    ]


def _make_mount_points(spec: SandboxSpec, root: Path, prefix: str, bound: list[str]) -> None:
    """Mount points, in the read-only folder `root` bound at `prefix`, for the binds and overlay
    files below it (bwrap cannot make them in a read-only mount); those inside one of the
    `bound` host folders must be there already, as under the per-entry binds."""
    points = [(inside, Path(host).is_dir()) for host, inside in spec.ro_binds]
    points += [(inside, False) for inside in spec.overlay]
    for inside, is_dir in points:
        if not inside.startswith(prefix + "/") or any(inside.startswith(b + "/") for b in bound):
            continue
        point = root / inside.removeprefix(prefix + "/")
        if point.exists() or point.is_symlink():
            continue
        if is_dir:
            point.mkdir(parents=True, exist_ok=True)
        else:
            point.parent.mkdir(parents=True, exist_ok=True)
            point.touch()


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
    _make_mount_points(spec, root, USR_LOCAL, [])


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


def _source(path: str | Path, base: Path | None, home: Path) -> str:
    """`path` relative to `base` when it is below it, except anything inside the home, which the
    package writes (its own mount point, `home` itself, is osptrack's)."""
    path = Path(path)
    if base is None or not path.is_relative_to(base) or (path.is_relative_to(home) and path != home):
        return str(path)
    return str(path.relative_to(base))


def bwrap_argv(
    spec: SandboxSpec,
    etc_dir: Path,
    seccomp_fd: int,
    command: list[str],
    init_fd: int | None = None,
    base: Path | None = None,
) -> list[str]:
    """The bwrap invocation. The network namespace is joined by the caller (see runner).

    With `spec.init`, `command` is not on the argv: the init reads it from `init_fd`. With `base`,
    bind sources below it are given relative to it, and the caller runs bwrap with `base` as its
    working directory: bwrap realpath()s every source, and glibc's realpath readlink()s each
    component of the name it is given but not those of the working directory it starts from,
    so a source five levels deep cost six traced readlinks and now costs one or two."""
    src = functools.partial(_source, base=base, home=spec.home)
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
    argv += ["--remount-ro", "/dev", "--ro-bind", src(etc_dir), "/etc"]
    for host in etc_binds(etc_dir, spec):
        argv += ["--ro-bind", host, host]
    argv += ["--size", str(spec.tmp_bytes), "--tmpfs", "/tmp"]
    argv += ["--size", str(spec.tmp_bytes), "--tmpfs", "/var/tmp"]
    argv += ["--bind", src(spec.home), spec.home_path]
    argv += ["--ro-bind", src(spec.input_dir), "/input"]
    for host, inside in spec.ro_binds:
        argv += ["--ro-bind", src(host), inside]
    overlay = overlay_dir(etc_dir)
    for inside in sorted(spec.overlay):
        argv += ["--ro-bind", src(overlay / _flat(inside)), inside]
    argv += ["--chdir", spec.chdir]
    if spec.init is not None and init_fd is not None:
        argv.append("--as-pid-1")  # the init below is pid 1, not bwrap's reaper (its argv is ours)
    argv += ["--seccomp", str(seccomp_fd), "--"]
    if spec.init is not None and init_fd is not None:
        if spec.init.endswith(".py"):  # the Python init, where the built one is missing
            return [*argv, "/usr/bin/python3", "-I", "-S", spec.init, str(init_fd)]
        return [*argv, spec.init, str(init_fd)]
    return [*argv, *command]
