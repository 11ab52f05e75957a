"""The strace backend: ptrace from outside, with seccomp-bpf stops (osptrack.trace.strace)."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

from osptrack.trace import follow
from osptrack.trace.events import Event
from osptrack.trace.strace import STRACE_ENV, ParseStats, parse_file_lines, parse_log, strace_command


class StraceTracer:
    name = "strace"
    # Put in strace's own environment by the runner (and dropped by `-E TZ` for the sandbox).
    launch_env: dict[str, str] = STRACE_ENV

    def available(self) -> tuple[bool, str]:
        path = shutil.which("strace")
        return (True, path) if path else (False, "strace is not installed")

    def command(self, log: Path, user: str | None = "nobody", probes: bool = True) -> list[str]:
        prefix = strace_command(log, probes=probes, env_wrapper=False)
        if user is None:
            return prefix
        return [*prefix[:-1], "-u", user, "--"]

    def new_stats(self) -> ParseStats:
        return ParseStats()

    def parse(self, log: Path, phase: str, stats: ParseStats) -> Iterator[Event]:
        return parse_log(log, phase, stats=stats)

    def follow(self, log: Path, phase: str, stats: ParseStats, done: threading.Event) -> Iterator[Event]:
        return parse_file_lines(follow.lines(log, done), phase, stats=stats)

    def lost(self, stats: ParseStats) -> int:
        return 0  # ptrace stops the tracee: nothing is dropped (a flood is capped, and said so)
