"""The eBPF backend: tracepoints in the kernel, no ptrace (osptrack.trace.ebpf).

`osptrack-ebpf` (built by scripts/setup.sh from osptrack/trace/ebpf/) runs resident, one per
machine and loader build: loading and verifying the programs takes ~0.2 s, a client that hands
it one phase's command starts in ~1 ms. The first run starts it (detached, under a lock); it
exits after IDLE_EXIT_S without runs. Each phase's client forks the command, has the resident
tracer follow it and its descendants in the kernel, and the binary log is read by
osptrack.trace.ebpf.log. Available when the loader is built, we are root, and
`osptrack-ebpf --check` loads and attaches (BTF, tp_btf tracepoints, ring buffer).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import socket
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from osptrack.trace import follow
from osptrack.trace.common import ParseStats
from osptrack.trace.ebpf import LOG_MAGIC, EbpfStats, loader_path

if TYPE_CHECKING:
    from osptrack.trace.events import Event


@functools.cache
def _check() -> tuple[bool, str]:
    loader = loader_path()
    if loader is None:
        return False, "the loader is not built (bash scripts/setup.sh builds osptrack-ebpf)"
    if os.geteuid() != 0:
        return False, "loading BPF programs needs root"
    if not Path("/sys/kernel/btf/vmlinux").exists():
        return False, "the kernel has no BTF (/sys/kernel/btf/vmlinux)"
    cache = _check_cache(loader)
    answer = _read_cached(cache) if cache is not None else None
    if answer is None:
        try:
            done = subprocess.run([str(loader), "--check"], capture_output=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return False, f"{loader} --check failed: {exc}"
        last = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
        answer = (done.returncode, done.stdout.decode(errors="replace"), last[0])
        if done.returncode == 0 and cache is not None:
            _write_cached(cache, answer)
    returncode, stdout, last_line = answer
    if returncode != 0:
        return False, f"the kernel refused the BPF programs: {last_line}"
    if stdout.split() != ["ok", f"{LOG_MAGIC:x}"]:
        # Built from older sources (bin/ is not in git): its logs would not read here.
        return False, f"{loader} is from another build of osptrack (bash scripts/setup.sh rebuilds it)"
    return True, f"kernel {os.uname().release} loads the tracepoint programs"


# `osptrack-ebpf --check` loads and attaches the programs: ~80 ms per process. Its answer holds
# for one loader build on one boot of the kernel, so a successful one is kept, keyed by both, in
# RUN_DIR (/run: gone at reboot; root's only). A refusal is not kept: it may be transient (memory,
# a busy kernel), and costs only machines that trace with strace anyway. `osptrack doctor` asks
# the loader again (refresh_check).
CHECK_FORMAT = 1
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def _check_cache(loader: Path) -> Path | None:
    """Where the answer for this loader build and boot is kept (None if either is unknown)."""
    try:
        st = loader.stat()
        boot = BOOT_ID.read_text().strip()
    except OSError:
        return None
    build = f"{loader.resolve()}:{st.st_dev}:{st.st_ino}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_size}"
    key = hashlib.sha256(f"{CHECK_FORMAT}\n{build}\n{boot}".encode()).hexdigest()[:16]
    return RUN_DIR / f"ebpf-check-{key}.json"


def _root_only(st: os.stat_result) -> bool:
    return st.st_uid == 0 and not st.st_mode & 0o022


def _read_cached(path: Path) -> tuple[int, str, str] | None:
    """The kept answer; None unless folder and file are root's, writable by nobody else, and whole."""
    try:
        folder = os.lstat(path.parent)
        if not stat.S_ISDIR(folder.st_mode) or not _root_only(folder):
            return None
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or not _root_only(st) or st.st_size > 4096:
            return None
        doc = json.loads(os.read(fd, 4096))
    except (OSError, ValueError):
        return None
    finally:
        os.close(fd)
    if not isinstance(doc, dict):
        return None
    code, out, last = doc.get("returncode"), doc.get("stdout"), doc.get("stderr_last")
    if not isinstance(code, int) or not isinstance(out, str) or not isinstance(last, str):
        return None
    return code, out, last


def _write_cached(path: Path, answer: tuple[int, str, str]) -> None:
    """Atomically (temp file, rename). Other builds' answers stay (several checkouts share the
    machine, each with its loader); /run is emptied at boot and each answer is ~80 bytes."""
    returncode, stdout, last = answer
    data = json.dumps({"returncode": returncode, "stdout": stdout, "stderr_last": last}).encode()
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        RUN_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except OSError:  # a read-only /run: ask the loader next time
        with contextlib.suppress(OSError):
            tmp.unlink()


def refresh_check() -> None:
    """Forget the kept answer, in this process and on disk: the next check asks the loader."""
    _check.cache_clear()
    loader = loader_path()
    cache = _check_cache(loader) if loader is not None else None
    if cache is not None:
        with contextlib.suppress(OSError):
            cache.unlink()


RUN_DIR = Path(os.environ.get("OSPTRACK_EBPF_RUN_DIR", "/run/osptrack"))
IDLE_EXIT_S = 600
START_TIMEOUT_S = 30.0


def socket_path(loader: Path) -> Path:
    """One resident tracer per loader build: a rebuilt loader gets a fresh one."""
    st = loader.stat()
    tag = hashlib.sha256(f"{loader}:{st.st_ino}:{st.st_mtime_ns}:{st.st_size}".encode()).hexdigest()[:12]
    return RUN_DIR / f"ebpf-{tag}.sock"


def _listening(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as sock:
        try:
            sock.connect(str(path))
        except OSError:
            return False
    return True


def ensure_server(loader: Path) -> Path:
    """The resident tracer's socket, starting the tracer if none is listening."""
    path = socket_path(loader)
    if _listening(path):
        return path
    RUN_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    RUN_DIR.chmod(0o700)  # root's only: the socket lets its user trace any process
    with open(RUN_DIR / "ebpf.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one starter at a time (batch workers start together)
        if _listening(path):
            return path
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        log = open(RUN_DIR / f"{path.stem}.log", "ab")  # noqa: SIM115 - handed to the daemon
        with log:
            subprocess.Popen(
                [str(loader), "--serve", str(path), "--idle-exit", str(IDLE_EXIT_S)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, close_fds=True,
            )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _listening(path):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the resident eBPF tracer did not start (see {RUN_DIR / path.stem}.log)")
            time.sleep(0.01)
    return path


class EbpfTracer:
    name = "ebpf"

    def available(self) -> tuple[bool, str]:
        return _check()

    def command(self, log: Path, user: str | None = "nobody", probes: bool = True) -> list[str]:
        loader = loader_path()
        if loader is None:
            raise RuntimeError("osptrack-ebpf is not built")
        server = ensure_server(loader)
        user_args = ["-u", user] if user else []
        return [
            str(loader),
            "--server",
            str(server),
            *user_args,
            *([] if probes else ["--no-probes"]),
            "-o",
            str(log),
            "--",
        ]

    def new_stats(self) -> ParseStats:
        return EbpfStats()

    # The reader (and msgspec) loads with the first log read: in the digest's thread, while the
    # phase runs, not before it starts.
    def parse(self, log: Path, phase: str, stats: ParseStats) -> Iterator[Event]:
        from osptrack.trace.ebpf.log import parse_log

        return parse_log(log, phase, stats=stats if isinstance(stats, EbpfStats) else None)

    def follow(self, log: Path, phase: str, stats: ParseStats, done: threading.Event) -> Iterator[Event]:
        # Records are decoded as they come; the events, sorted by start, come once the log is whole.
        from osptrack.trace.ebpf.log import EbpfLogReader

        reader = EbpfLogReader(phase, stats if isinstance(stats, EbpfStats) else None)
        return reader.read_chunks(follow.chunks(log, done))

    def lost(self, stats: ParseStats) -> int:
        return stats.lost if isinstance(stats, EbpfStats) else 0
