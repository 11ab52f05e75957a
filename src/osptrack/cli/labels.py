"""`osptrack labels ...` (issue 3 fills this in)."""

import typer

app = typer.Typer(no_args_is_help=True)
