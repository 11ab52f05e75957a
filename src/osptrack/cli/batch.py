"""`osptrack batch` (issue 6 fills this in)."""

import typer


def register(app: typer.Typer) -> None:
    pass
