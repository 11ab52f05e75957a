"""`osptrack dataset ...` (issue 4 fills this in)."""

import typer

app = typer.Typer(no_args_is_help=True)
