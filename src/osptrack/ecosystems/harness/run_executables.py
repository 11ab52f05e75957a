"""Run a package's declared executables with --help, each bounded in time (inside the sandbox).

Shared by the execute phases of the ecosystems whose packages declare executables rather than
functions (package-analysis #63 asked for exactly this). Each run gets its own process group,
so whatever it spawned dies with it at the limit.
"""

import contextlib
import os
import signal
import subprocess
import sys

LIMIT_S = 20


def run_help(executables, prefix=()):
    """Run `[*prefix, exe, "--help"]` for each; print one line per run; return how many ran."""
    ran = 0
    for exe in executables:
        argv = [*prefix, exe, "--help"]
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, start_new_session=True)
        except OSError as exc:
            print(f"osptrack-execute: {exe}: cannot run: {exc}", file=sys.stderr)
            continue
        ran += 1
        try:
            code = proc.wait(timeout=LIMIT_S)
            print(f"osptrack-execute: {os.path.basename(exe)} --help: exit {code}", flush=True)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            print(f"osptrack-execute: {os.path.basename(exe)} --help: timed out", file=sys.stderr, flush=True)
    print(f"osptrack-execute: {ran} executables run", flush=True)
    return ran
