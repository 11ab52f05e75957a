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
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from osptrack.trace import follow
from osptrack.trace.ebpf import loader_path
from osptrack.trace.ebpf.log import LOG_MAGIC, EbpfLogReader, EbpfStats, parse_log
from osptrack.trace.events import Event
from osptrack.trace.strace import ParseStats


@functools.cache
def _check() -> tuple[bool, str]:
    loader = loader_path()
    if loader is None:
        return False, "the loader is not built (bash scripts/setup.sh builds osptrack-ebpf)"
    if os.geteuid() != 0:
        return False, "loading BPF programs needs root"
    if not Path("/sys/kernel/btf/vmlinux").exists():
        return False, "the kernel has no BTF (/sys/kernel/btf/vmlinux)"
    try:
        done = subprocess.run([str(loader), "--check"], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"{loader} --check failed: {exc}"
    if done.returncode != 0:
        last = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
        return False, f"the kernel refused the BPF programs: {last[0]}"
    if done.stdout.split() != [b"ok", f"{LOG_MAGIC:x}".encode()]:
        # Built from older sources (bin/ is not in git): its logs would not read here.
        return False, f"{loader} is from another build of osptrack (bash scripts/setup.sh rebuilds it)"
    return True, f"kernel {os.uname().release} loads the tracepoint programs"


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

    def parse(self, log: Path, phase: str, stats: ParseStats) -> Iterator[Event]:
        return parse_log(log, phase, stats=stats if isinstance(stats, EbpfStats) else None)

    def follow(self, log: Path, phase: str, stats: ParseStats, done: threading.Event) -> Iterator[Event]:
        # Records are decoded as they come; the events, sorted by start, come once the log is whole.
        reader = EbpfLogReader(phase, stats if isinstance(stats, EbpfStats) else None)
        return reader.read_chunks(follow.chunks(log, done))

    def lost(self, stats: ParseStats) -> int:
        return stats.lost if isinstance(stats, EbpfStats) else 0
