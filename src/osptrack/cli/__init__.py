"""The `osptrack` command. Each sub-command group lives in its own module; no logic here."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Annotated

import typer

from osptrack import __version__
from osptrack.errors import BadInput

HELP = """Run an open-source package once in a sandbox and record what it does.

osptrack installs, imports and exercises a package from PyPI, npm, RubyGems, Packagist,
crates.io or NuGet inside bubblewrap, traced by strace, with a fake network, and writes the
files, sockets, commands and DNS lookups of each phase in OpenSSF package-analysis's format.

Start with `osptrack doctor`, then for example
`osptrack analyze pypi six==1.16.0 --online`.
"""

EPILOG = (
    "Exit codes: 0 done; 1 a batch had failed packages; 2 bad input or a usage mistake "
    "(one line on stderr, nothing written); 130 interrupted."
)

app = typer.Typer(
    no_args_is_help=False,  # a bare `osptrack` is a one-line usage error, as any other
    add_completion=False,
    help=HELP,
    epilog=EPILOG,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# typer ships its own copy of click (typer._click), whose exceptions are not click's: take the
# base class from one typer exposes rather than importing either module by name.
ClickError: type[Exception] = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


def _print_version(value: bool) -> None:
    if value:
        print(f"osptrack {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    pass


# Command name -> the module that defines it (and registers it on `app`).
GROUPS = {
    "analyze": "analyze",
    "doctor": "analyze",
    "batch": "batch",
    "dataset": "dataset",
    "labels": "labels",
    "hunt": "hunt",
    "diff": "diff",
    "report": "report",
    "model": "model",
}
_registered: set[str] = set()


def _register(argv: list[str] | None = None) -> None:
    """Add the command groups to `app`: only the one argv names, when it names one.

    `osptrack analyze ...` then imports the analyze module alone, not batch's progress bars or
    the dataset commands; help, a typo or no command register every group (in a fixed order, so
    help lists them alike). The groups import their libraries inside each command. Each group
    once per process (tests call main() repeatedly).
    """
    command = next((a for a in argv or () if not a.startswith("-")), None)
    wanted = [GROUPS[command]] if command in GROUPS else list(GROUPS.values())
    for module in dict.fromkeys(wanted):
        if module not in _registered:
            _registered.add(module)
            _REGISTER[module]()


def _add(module: str, name: str | None = None, help: str | None = None) -> Callable[[], None]:
    def register() -> None:
        # Imported here so one group's import error names itself.
        mod = importlib.import_module(f"osptrack.cli.{module}")
        if name is None:
            mod.register(app)
        else:
            app.add_typer(mod.app, name=name, help=help)

    return register


_REGISTER: dict[str, Callable[[], None]] = {
    "analyze": _add("analyze"),
    "batch": _add("batch"),
    "dataset": _add("dataset", "dataset", "Build, describe and de-noise the labelled dataset."),
    "labels": _add("labels", "labels", "Known-malicious labels from OSV and other sources."),
    "hunt": _add("hunt"),
    "diff": _add("diff"),
    "report": _add("report"),
    "model": _add("model", "model", "Train and evaluate a classifier on a dataset."),
}


def usage_message(exc: Exception) -> str:
    """One line for any of click's errors: what is wrong, and where to read more."""
    ctx = getattr(exc, "ctx", None)
    where = ctx.command_path if ctx is not None else "osptrack"
    format_message = getattr(exc, "format_message", None)
    text = format_message() if format_message is not None else str(exc)
    commands = getattr(ctx.command, "commands", None) if ctx is not None else None
    if commands and text.strip() == "Missing command.":
        text = f"missing command: one of {', '.join(sorted(commands))}"
    text = " ".join(text.split())
    return f"osptrack: error: {text} (see '{where} --help')"


def main() -> None:
    if sys.argv[1:] == ["--version"]:
        # Answer without loading the command modules: scripts call this to probe for osptrack.
        print(f"osptrack {__version__}")
        return
    _register(sys.argv[1:])
    try:
        # Without standalone mode click returns typer.Exit's code instead of exiting with it,
        # and raises its usage errors here instead of printing a multi-line box.
        code = app(standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except BadInput as exc:
        # Plain print: rich would wrap a long message onto two lines.
        message = " ".join(str(exc).split())
        print(f"osptrack: error: {message}", file=sys.stderr)
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        print("osptrack: interrupted", file=sys.stderr)
        sys.exit(130)
    except ClickError as exc:
        print(usage_message(exc), file=sys.stderr)
        sys.exit(2)
