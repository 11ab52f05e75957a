"""The `osptrack` command. Each sub-command group lives in its own module; no logic here."""

from __future__ import annotations

import sys

import click

from osptrack import __version__
from osptrack.cli.base import CONTEXT_SETTINGS, LazyGroup
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

# Command name -> the click command, imported when argv names it (help imports them all). The
# groups import their libraries inside each command.
COMMANDS = {
    "analyze": "osptrack.cli.analyze:analyze_command",
    "doctor": "osptrack.cli.analyze:doctor_command",
    "batch": "osptrack.cli.batch:batch_command",
    "hunt": "osptrack.cli.hunt:hunt_command",
    "diff": "osptrack.cli.diff:diff_command",
    "report": "osptrack.cli.report:report_command",
    "dataset": "osptrack.cli.dataset:app",
    "labels": "osptrack.cli.labels:app",
    "model": "osptrack.cli.model:app",
}


def _print_version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        print(f"osptrack {__version__}")
        ctx.exit()


@click.group(
    "osptrack",
    cls=LazyGroup,
    lazy=COMMANDS,
    help=HELP,
    epilog=EPILOG,
    context_settings=CONTEXT_SETTINGS,
)
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Print the version and exit.",
)
def app() -> None:
    pass


def usage_message(exc: click.ClickException) -> str:
    """One line for any of click's errors: what is wrong, and where to read more."""
    ctx = getattr(exc, "ctx", None)
    where = ctx.command_path if ctx is not None else "osptrack"
    text = exc.format_message()
    if ctx is not None and isinstance(ctx.command, click.Group) and text.strip() == "Missing command.":
        text = f"missing command: one of {', '.join(sorted(ctx.command.list_commands(ctx)))}"
    text = " ".join(text.split())
    return f"osptrack: error: {text} (see '{where} --help')"


def main() -> None:
    if sys.argv[1:] == ["--version"]:
        # Answer without loading the command modules: scripts call this to probe for osptrack.
        print(f"osptrack {__version__}")
        return
    try:
        # Without standalone mode click returns an Exit's code instead of exiting with it, and
        # raises its usage errors here instead of printing usage and the error on three lines.
        code = app.main(prog_name="osptrack", standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except BadInput as exc:
        # Plain print: rich would wrap a long message onto two lines.
        message = " ".join(str(exc).split())
        print(f"osptrack: error: {message}", file=sys.stderr)
        sys.exit(2)
    except (click.Abort, KeyboardInterrupt):
        print("osptrack: interrupted", file=sys.stderr)
        sys.exit(130)
    except click.ClickException as exc:
        print(usage_message(exc), file=sys.stderr)
        sys.exit(2)
