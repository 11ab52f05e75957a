"""The `osptrack` console script: answers `--version` before importing click and rich (outside
the cli package, whose __init__ imports click), and leaves `analyze` without the interpreter's
teardown.

Scripts probe for osptrack with `osptrack --version`; importing the CLI framework costs several
times more than the answer, so everything else goes on to `osptrack.cli.main`.
"""

from __future__ import annotations

import sys
from typing import NoReturn

# Commands after which the process ends at once (see `run`): the per-package command, whose
# import closure (registry service, fake network, cryptography...) takes longer to tear down
# than the summary takes to print. Not the commands that run worker pools, databases or writers.
FAST_EXIT_COMMANDS = frozenset({"analyze"})


def main() -> None:
    if sys.argv[1:] == ["--version"]:
        from osptrack import __version__

        print(f"osptrack {__version__}")
        return
    from osptrack.cli import main as cli_main

    cli_main()


def run() -> NoReturn:
    """The console script (and `python -m osptrack.cli`): main(), then exit.

    After `analyze`, the interpreter's finalization (tearing down ~450 modules, a last garbage
    collection) took 0.4-0.6 s under load, longer than everything the command does after the
    analysis. When only the main thread is left, the atexit handlers run and stdout and stderr
    are flushed as at a normal exit, and the process then ends with os._exit: the run folder is
    complete by then (written and renamed into place before analyze() returns). main() itself
    exits normally, so code that calls it in-process (tests) continues.
    """
    try:
        main()
        code: int = 0
    except SystemExit as exc:
        if not isinstance(exc.code, int | None):
            raise  # a message: Python prints it and exits 1
        code = exc.code or 0
    command = next((a for a in sys.argv[1:] if not a.startswith("-")), None)
    if command in FAST_EXIT_COMMANDS:
        _exit_now(code)
    sys.exit(code)


def _exit_now(code: int) -> None:
    """os._exit after what a normal exit does that matters here; returns when it cannot be sure."""
    import atexit
    import os
    import threading

    run_exitfuncs = getattr(atexit, "_run_exitfuncs", None)  # CPython's own, used at shutdown
    if threading.active_count() != 1 or run_exitfuncs is None:
        return  # non-daemon threads to join, or another interpreter: the normal way
    run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        return  # a closed pipe or stream: let the normal exit report it as it would
    os._exit(code)
