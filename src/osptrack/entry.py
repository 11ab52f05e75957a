"""The `osptrack` console script: answers `--version` before importing click and rich (outside
the cli package, whose __init__ imports click), hands `analyze` to the resident analyze server
when one is warm (osptrack.server; OSPTRACK_SERVER=0 turns it off), and leaves `analyze` without
the interpreter's teardown.

Scripts probe for osptrack with `osptrack --version`; importing the CLI framework costs several
times more than the answer, so everything else goes on to `osptrack.cli.main`.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing itself costs the console script ~5 ms of imports
if TYPE_CHECKING:
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


def run(server: bool = True) -> NoReturn:
    """The console script (and `python -m osptrack.cli`, with server=False): main(), then exit.

    `analyze` goes to the resident server first (osptrack.server.client): when it accepts, this
    process only relays signals and exits as the server's child did; when it does not (none
    warm yet, not root, stale code...), the request runs here as it always did.

    After `analyze`, the interpreter's finalization (tearing down ~450 modules, a last garbage
    collection) took 0.4-0.6 s under load, longer than everything the command does after the
    analysis. When only the main thread is left, the atexit handlers run and stdout and stderr
    are flushed as at a normal exit, and the process then ends with os._exit: the run folder is
    complete by then (written and renamed into place before analyze() returns). main() itself
    exits normally, so code that calls it in-process (tests) continues.
    """
    if server and _command() == "analyze":
        from osptrack.server.client import serve

        status = serve(sys.argv)
        if status is not None:
            _exit_as(status)
    end(call_main())


def _command() -> str | None:
    return next((a for a in sys.argv[1:] if not a.startswith("-")), None)


def call_main() -> int:
    """main(), and the exit code it asked for."""
    try:
        main()
    except SystemExit as exc:
        if not isinstance(exc.code, int | None):
            raise  # a message: Python prints it and exits 1
        return exc.code or 0
    return 0


def end(code: int) -> NoReturn:
    if _command() in FAST_EXIT_COMMANDS:
        _exit_now(code)
    sys.exit(code)


def _exit_as(status: int) -> NoReturn:
    """Exit as the server's child did: its code, or its signal re-raised on this process with
    the default action, so the shell sees what a direct run would have given."""
    import os

    if os.WIFSIGNALED(status):
        import _signal

        sig = os.WTERMSIG(status)
        sys.stdout.flush()
        sys.stderr.flush()
        _signal.signal(sig, _signal.SIG_DFL)
        _signal.pthread_sigmask(_signal.SIG_UNBLOCK, [sig])
        os.kill(os.getpid(), sig)
        code = 128 + sig  # a signal whose default is not to die (SIGCHLD...): as a shell shows it
    else:
        code = os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 70
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
