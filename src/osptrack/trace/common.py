"""What the tracers, their parsers, the digest and the run share, in a module that imports only
dataclasses: the run's start-up imports it before the first phase, and the parsers (msgspec,
strace's regexes) load later, in the thread that reads the phase's trace (docs/performance.md,
"What a cold analyze imports before its first phase")."""

from __future__ import annotations

from dataclasses import dataclass, field

KIND_FILE = "file"
KIND_PROCESS = "process"
KIND_NETWORK = "network"

# The sandbox's pid 1 (sandbox/bwrap.py SandboxSpec.init; run.py passes one, trace.refine drops
# both): the built one (osptrack.sandbox.native) or, where it is not built, the Python one.
INIT = "/input/harness/_sandbox_init.py"
INITS = (INIT, "/input/harness/_sandbox_init")

ARG_CAP = 512  # characters kept per raw argument string in an event's `args`


@dataclass
class ParseStats:
    lines: int = 0
    events: int = 0
    dropped: int = 0  # lines we could not understand
    ignored: int = 0  # understood, deliberately not emitted (exit_group, chdir, SIGCHLD, ...)
    unfinished: int = 0  # calls that never resumed (emitted with ret=None when parsable)
    pid_guesses: int = 0  # children whose parent the log could not prove (chosen by pid order)
    truncated: bool = False  # the log's last line was cut off (no newline)
    dropped_samples: list[str] = field(default_factory=list)
