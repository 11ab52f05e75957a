"""The `osptrack` command. Each sub-command group lives in its own module; no logic here."""

from __future__ import annotations

import sys

import typer

from osptrack.errors import BadInput

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)


def _register() -> None:
    # Imported here so `osptrack --help` stays cheap and one group's import error names itself.
    from osptrack.cli import analyze, batch, dataset, diff, hunt, labels

    analyze.register(app)
    app.add_typer(labels.app, name="labels", help="Known-malicious labels from OSV and other sources.")
    app.add_typer(dataset.app, name="dataset", help="Build and describe the labelled dataset.")
    batch.register(app)
    hunt.register(app)
    diff.register(app)


def main() -> None:
    _register()
    try:
        # Without standalone mode click returns typer.Exit's code instead of exiting with it.
        code = app(standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except BadInput as exc:
        # Plain print: rich would wrap a long message onto two lines.
        message = " ".join(str(exc).split())
        print(f"osptrack: error: {message}", file=sys.stderr)
        sys.exit(2)
    except typer.Abort:
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as exc:  # click's own usage errors
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(2)
        raise
